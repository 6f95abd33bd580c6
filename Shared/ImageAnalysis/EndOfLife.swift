import Foundation
import GantryModel

/// End-of-life dates of the distribution releases Gantry scans, and whether a release is past its date.
///
/// "End of life" is the last day the distribution itself publishes security updates for free; paid
/// extensions (Ubuntu Pro/ESM, Freexian ELTS, RHEL ELS, SUSE LTSS) are not counted. Sources, by `ID`:
/// - `alpine`: https://alpinelinux.org/releases/ ("End of support" per branch);
/// - `debian`: https://wiki.debian.org/LTS (end of Debian LTS, the last period with DLA advisories;
///   regular security support, https://www.debian.org/releases/, ends about two years earlier);
/// - `ubuntu`: https://ubuntu.com/about/release-cycle (end of standard support);
/// - `rhel` (also UBI, whose os-release says `rhel`):
///   https://access.redhat.com/support/policy/updates/errata (end of Maintenance Support);
/// - `centos`: https://www.centos.org/centos-linux-eol/ and https://www.centos.org/centos-stream/
///   (8 is CentOS Linux 8; 9 can only be CentOS Stream 9);
/// - `rocky`: https://wiki.rockylinux.org/rocky/version/; `almalinux`: https://wiki.almalinux.org/release-notes/;
/// - `amzn`: https://aws.amazon.com/amazon-linux-2/faqs/ (Amazon Linux 2, and the Amazon Linux AMI
///   2018.03) and https://docs.aws.amazon.com/linux/al2023/ug/release-cadence.html;
/// - `sles`: https://www.suse.com/lifecycle/ (end of general support per service pack, `VERSION_ID` 15.x).
/// A release not in the table (newer than it, or a distribution it does not cover) has no date, and
/// `endOfLife` stays nil: unknown, never guessed.
enum EndOfLife {
    /// `ID` → release key → end-of-life date (`YYYY-MM-DD`).
    static let dates: [String: [String: String]] = [
        "alpine": [
            "3.0": "2016-05-01", "3.1": "2016-11-01", "3.2": "2017-05-01", "3.3": "2017-11-01", "3.4": "2018-05-01",
            "3.5": "2018-11-01", "3.6": "2019-05-01", "3.7": "2019-11-01", "3.8": "2020-05-01", "3.9": "2020-11-01",
            "3.10": "2021-05-01", "3.11": "2021-11-01", "3.12": "2022-05-01", "3.13": "2022-11-01",
            "3.14": "2023-05-01", "3.15": "2023-11-01", "3.16": "2024-05-23", "3.17": "2024-11-22",
            "3.18": "2025-05-09", "3.19": "2025-11-01", "3.20": "2026-04-01", "3.21": "2026-11-01",
            "3.22": "2027-05-01",
        ],
        "debian": [
            "6": "2016-02-29", "7": "2018-05-31", "8": "2020-06-30", "9": "2022-06-30", "10": "2024-06-30",
            "11": "2026-08-31", "12": "2028-06-30", "13": "2030-06-30",
        ],
        "ubuntu": [
            "10.04": "2015-04-30", "12.04": "2017-04-28", "14.04": "2019-04-25", "16.04": "2021-04-30",
            "18.04": "2023-05-31", "20.04": "2025-05-29", "22.04": "2027-06-01", "24.04": "2029-05-31",
            "20.10": "2021-07-22", "21.04": "2022-01-20", "21.10": "2022-07-14", "22.10": "2023-07-20",
            "23.04": "2024-01-25", "23.10": "2024-07-11", "24.10": "2025-07-10", "25.04": "2026-01-15",
        ],
        "rhel": ["5": "2017-03-31", "6": "2020-11-30", "7": "2024-06-30", "8": "2029-05-31", "9": "2032-05-31",
                 "10": "2035-05-31"],
        "centos": ["5": "2017-03-31", "6": "2020-11-30", "7": "2024-06-30", "8": "2021-12-31", "9": "2027-05-31"],
        "rocky": ["8": "2029-05-31", "9": "2032-05-31"],
        "almalinux": ["8": "2029-03-01", "9": "2032-05-31"],
        "amzn": ["2018.03": "2023-12-31", "2": "2026-06-30", "2023": "2029-06-30"],
        "sles": [
            "12.5": "2024-10-31", "15": "2019-12-31", "15.1": "2021-01-31", "15.2": "2021-12-31", "15.3": "2022-12-31",
            "15.4": "2023-12-31", "15.5": "2024-12-31", "15.6": "2025-12-31", "15.7": "2031-07-31",
        ],
    ]

    /// The key `dates` uses for a `VERSION_ID`: major.minor for Alpine, Ubuntu and SLES, the major
    /// version for Debian and the Enterprise Linux family, the whole value for Amazon Linux.
    static func releaseKey(id: String, versionID: String) -> String {
        let parts = versionID.split(separator: ".").map(String.init)
        switch id {
        case "alpine", "ubuntu", "sles": return parts.prefix(2).joined(separator: ".")
        case "amzn": return versionID
        default: return parts.first ?? versionID
        }
    }

    /// The end-of-life date of a release, or nil when unknown.
    static func date(id: String, versionID: String?) -> String? {
        guard let versionID, let table = dates[id] else { return nil }
        return table[releaseKey(id: id, versionID: versionID)]
    }

    /// `operatingSystem` with `endOfLife` and `endOfLifeDate` set as of `today` (`YYYY-MM-DD`, UTC):
    /// a release is past its end of life from the day after its date.
    static func annotate(_ operatingSystem: OperatingSystem, today: String = today()) -> OperatingSystem {
        var result = operatingSystem
        result.endOfLifeDate = date(id: operatingSystem.id, versionID: operatingSystem.versionID)
        result.endOfLife = result.endOfLifeDate.map { today > $0 }
        return result
    }

    /// Today's date in UTC, `YYYY-MM-DD`.
    static func today(now: Date = Date()) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.formatOptions = [.withFullDate]
        return formatter.string(from: now)
    }
}
