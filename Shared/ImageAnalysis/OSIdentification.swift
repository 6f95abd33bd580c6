import GantryModel

/// Identifies an image's operating system from its release files, and flags releases past their end
/// of life (`EndOfLife`).
///
/// In order:
/// 1. `etc/os-release`, else `usr/lib/os-release` (os-release(5): the former takes precedence);
///    `ID` (default `linux`), `VERSION_ID`, `PRETTY_NAME`.
///    - Alpine without `VERSION_ID`: `etc/alpine-release`.
///    - Debian without `VERSION_ID` (testing and unstable have none): `etc/debian_version`, see
///      `debianVersion(_:)`.
///    - Distroless (GoogleContainerTools/distroless): os-release says `ID=debian` with
///      `PRETTY_NAME="Distroless"` or a distroless `HOME_URL`, or the image has dpkg `status.d` stanzas
///      and no `var/lib/dpkg/status`; the OS stays `debian` with its version, and the pretty name says
///      "Distroless" and the Debian release.
/// 2. Without os-release: `etc/alpine-release`; `etc/lsb-release` (`DISTRIB_ID`, `DISTRIB_RELEASE`,
///    `DISTRIB_DESCRIPTION`, as Ubuntu before 12.04 ships it); `etc/redhat-release` (Red Hat Enterprise
///    Linux, CentOS, Rocky, AlmaLinux, Fedora, Oracle Linux, Amazon Linux; "NAME release VERSION (CODENAME)");
///    `etc/debian_version`.
/// Each fallback used is said in the notes.
enum OSIdentification {
    static let osReleasePath = "etc/os-release"
    static let osReleaseFallbackPath = "usr/lib/os-release"
    static let alpineReleasePath = "etc/alpine-release"
    static let debianVersionPath = "etc/debian_version"
    static let redhatReleasePath = "etc/redhat-release"
    /// CentOS keeps the same line here too; images trimmed to it (and old CentOS 5/6) may have only this one.
    static let centosReleasePath = "etc/centos-release"
    static let lsbReleasePath = "etc/lsb-release"

    /// Every file read.
    static let paths: Set<String> = [osReleasePath, osReleaseFallbackPath, alpineReleasePath, debianVersionPath,
                                     redhatReleasePath, centosReleasePath, lsbReleasePath]

    /// The OS of `filesystem`, with its end-of-life flag as of `today` (`YYYY-MM-DD`); nil when no file identifies one.
    static func identify(_ filesystem: MergedFilesystem, today: String = EndOfLife.today(),
                         notes: inout [String]) -> OperatingSystem? {
        // The end-of-life flag is in the result, not the notes: reports show it from there.
        identifyRelease(filesystem, notes: &notes).map { EndOfLife.annotate($0, today: today) }
    }

    private static func text(_ filesystem: MergedFilesystem, _ path: String) -> String? {
        filesystem.file(path)
            .map { String(decoding: $0, as: UTF8.self).trimmedWhitespace() }
            .flatMap { $0.isEmpty ? nil : $0 }
    }

    private static func identifyRelease(_ filesystem: MergedFilesystem, notes: inout [String]) -> OperatingSystem? {
        let alpineRelease = text(filesystem, alpineReleasePath)
        guard let bytes = filesystem.file(osReleasePath) ?? filesystem.file(osReleaseFallbackPath) else {
            return identifyWithoutOSRelease(filesystem, alpineRelease: alpineRelease, notes: &notes)
        }
        let fields = OSRelease.parse(bytes)
        // os-release(5): ID defaults to "linux" when absent.
        let id = (fields["ID"].flatMap { $0.isEmpty ? nil : $0 } ?? "linux").lowercased()
        var versionID = fields["VERSION_ID"].flatMap { $0.isEmpty ? nil : $0 }
        var prettyName = fields["PRETTY_NAME"].flatMap { $0.isEmpty ? nil : $0 }
        if versionID == nil, id == "alpine", let alpineRelease {
            versionID = alpineRelease
            notes.append("os-release has no VERSION_ID; taken from /\(alpineReleasePath)")
        }
        if id == "debian" {
            if versionID == nil {
                if let debianVersion = text(filesystem, debianVersionPath) {
                    let debian = Self.debianVersion(debianVersion)
                    versionID = debian.versionID
                    if prettyName == nil || debian.versionID == nil { prettyName = debian.prettyName }
                    notes.append(debian.versionID == nil
                        ? "Debian \(debianVersion) is testing/unstable: it has no release number; its packages are matched without a release"
                        : "os-release has no VERSION_ID; taken from /\(debianVersionPath)")
                } else {
                    notes.append("Debian without VERSION_ID or /\(debianVersionPath): testing/unstable or an unknown release")
                }
            }
            let distrolessOSRelease = prettyName == "Distroless"
                || fields["HOME_URL"]?.contains("distroless") == true
            let statusDirectoryOnly = !filesystem.fileExists(DPKGCataloger.statusPath)
                && !filesystem.files(under: DPKGCataloger.statusDirectory).isEmpty
            if distrolessOSRelease || statusDirectoryOnly {
                // Keep the Debian release (VERSION is "Debian GNU/Linux 11 (bullseye)" in distroless
                // images, "11 (bullseye)" in Debian's own os-release).
                let release = fields["VERSION"].map { $0.hasPrefix("Debian") ? $0 : "Debian GNU/Linux \($0)" }
                    ?? versionID.map { "Debian GNU/Linux \($0)" } ?? "Debian GNU/Linux"
                prettyName = "Distroless (\(release))"
                notes.append("distroless image based on \(release)")
            }
        }
        return OperatingSystem(id: id, versionID: versionID, prettyName: prettyName)
    }

    private static func identifyWithoutOSRelease(_ filesystem: MergedFilesystem, alpineRelease: String?,
                                                 notes: inout [String]) -> OperatingSystem? {
        if let alpineRelease {
            notes.append("no os-release file; operating system taken from /\(alpineReleasePath)")
            return OperatingSystem(id: "alpine", versionID: alpineRelease, prettyName: "Alpine Linux v\(alpineRelease)")
        }
        if let bytes = filesystem.file(lsbReleasePath), let os = lsbRelease(OSRelease.parse(bytes)) {
            notes.append("no os-release file; operating system taken from /\(lsbReleasePath)")
            return os
        }
        for path in [redhatReleasePath, centosReleasePath] {
            if let line = text(filesystem, path), let os = redhatRelease(line) {
                notes.append("no os-release file; operating system taken from /\(path)")
                return os
            }
        }
        if let debianVersion = text(filesystem, debianVersionPath) {
            let debian = Self.debianVersion(debianVersion)
            notes.append("no os-release file; operating system taken from /\(debianVersionPath)"
                + (debian.versionID == nil ? " (\(debianVersion): testing/unstable, no release number)" : ""))
            return OperatingSystem(id: "debian", versionID: debian.versionID, prettyName: debian.prettyName)
        }
        return nil
    }

    /// Reads `/etc/debian_version`: a point release (`9.12`, `12.7`, `6.0.10`) gives the major release as
    /// `VERSION_ID` (as Debian's os-release states it); a codename pair such as `bookworm/sid` (testing
    /// and unstable, also what Ubuntu ships there) gives no version and a pretty name that says so.
    static func debianVersion(_ value: String) -> (versionID: String?, prettyName: String) {
        let trimmed = value.trimmedWhitespace()
        let components = trimmed.split(separator: ".")
        if let major = components.first, !major.isEmpty, major.allSatisfy(\.isNumber),
           components.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isNumber) }) {
            return (String(major), "Debian GNU/Linux \(trimmed)")
        }
        return (nil, "Debian GNU/Linux \(trimmed) (testing/unstable)")
    }

    /// An OS from lsb-release fields (`DISTRIB_ID`, `DISTRIB_RELEASE`, `DISTRIB_DESCRIPTION`); nil without `DISTRIB_ID`.
    static func lsbRelease(_ fields: [String: String]) -> OperatingSystem? {
        guard let distributor = fields["DISTRIB_ID"], !distributor.isEmpty else { return nil }
        let release = fields["DISTRIB_RELEASE"].flatMap { $0.isEmpty ? nil : $0 }
        let description = fields["DISTRIB_DESCRIPTION"].flatMap { $0.isEmpty ? nil : $0 }
        return OperatingSystem(id: distributor.lowercased(), versionID: release,
                               prettyName: description ?? ([distributor, release].compactMap { $0 }.joined(separator: " ")))
    }

    /// An OS from a redhat-release line such as `CentOS Linux release 7.9.2009 (Core)` or `Red Hat
    /// Enterprise Linux Server release 7.9 (Maipo)`; `ID` as the distribution's os-release spells it.
    /// `VERSION_ID` is what that os-release would say: the major version for CentOS and Fedora (CentOS
    /// 7.9.2009 says `7`), major.minor for the others. Nil for a line naming no known distribution.
    static func redhatRelease(_ line: String) -> OperatingSystem? {
        let lower = line.lowercased()
        let known: [(prefix: String, id: String, majorOnly: Bool)] = [
            ("red hat enterprise linux", "rhel", false), ("centos", "centos", true), ("rocky linux", "rocky", false),
            ("almalinux", "almalinux", false), ("fedora", "fedora", true), ("oracle linux", "ol", false),
            ("amazon linux", "amzn", false),
        ]
        let words = lower.split(separator: " ")
        guard let match = known.first(where: { lower.hasPrefix($0.prefix) }),
              let releaseWord = words.firstIndex(of: "release"), releaseWord + 1 < words.count
        else { return nil }
        let version = words[releaseWord + 1].prefix { $0.isNumber || $0 == "." }
        let parts = version.split(separator: ".")
        guard let major = parts.first else { return nil }
        let versionID = match.majorOnly ? String(major) : parts.prefix(2).joined(separator: ".")
        return OperatingSystem(id: match.id, versionID: versionID, prettyName: line.trimmedWhitespace())
    }
}
