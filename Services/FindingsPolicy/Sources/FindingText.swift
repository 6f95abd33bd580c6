import FindingsPolicyAPI
import Foundation

/// The words findings-policy shows for a finding: its display name, category, impact and remediation.
enum FindingText {
    /// The recommendation every unhealthy image gets (the seed product's wording).
    static let recommendation = "Container registry images should have vulnerability findings resolved"

    /// Package managers of operating-system packages: their findings are fixed by the image's base, not its application.
    static let osEcosystems: Set<String> = ["apk", "dpkg", "rpm"]

    /// The feed's one-line title, else "ID in package version".
    static func displayName(of finding: Finding) -> String {
        if let title = finding.title?.trimmingCharacters(in: .whitespacesAndNewlines), !title.isEmpty { return title }
        return "\(finding.vulnerabilityId) in \(finding.packageName) \(finding.installedVersion)"
    }

    /// The distribution or ecosystem a finding belongs to: the namespace's name before its release
    /// (`alpine:v3.7` → `alpine`, `pypi` → `pypi`), else the package's ecosystem, else the feed's name.
    static func category(of finding: Finding) -> String {
        if let namespace = finding.namespace, let name = namespace.split(separator: ":").first, !name.isEmpty {
            return String(name).lowercased()
        }
        if let ecosystem = finding.ecosystem, !ecosystem.isEmpty { return ecosystem.lowercased() }
        return String(finding.source.split(separator: ":").first ?? Substring(finding.source)).lowercased()
    }

    /// True for a package of the operating system (as opposed to an application dependency).
    static func isOSPackage(_ finding: Finding, hasOperatingSystem: Bool) -> Bool {
        if let ecosystem = finding.ecosystem { return osEcosystems.contains(ecosystem.lowercased()) }
        return hasOperatingSystem && finding.namespace?.contains(":") != false
    }

    /// Severity, CVSS, exploitation evidence: why the finding matters, in one line.
    static func impact(of finding: Finding, band: SeverityBand) -> String {
        var parts = ["\(finding.severity.rawValue) severity" + (finding.severitySource.map { " (rated by \($0))" } ?? "")
                     + (finding.severity.rawValue == band.rawValue ? "" : ", banded \(band.rawValue)")]
        if let score = finding.cvssV3Score { parts.append("CVSS 3.x base score \(format(score))") }
        if let score = finding.cvssV4Score { parts.append("CVSS 4.0 base score \(format(score))") }
        if finding.knownExploited == true { parts.append("known to be exploited (CISA KEV)") }
        if let epss = finding.epss { parts.append("EPSS \(format(epss * 100))% probability of exploitation in 30 days") }
        return parts.joined(separator: "; ")
    }

    /// What to do about a finding: upgrade to the fixed version, or — where no fix exists — that fact, the
    /// publisher's state and statement, and the base-image or mitigation advice that applies.
    static func remediation(of finding: Finding, subAssessmentName: UUID,
                            operatingSystem: Components.Schemas.OperatingSystem?) -> Components.Schemas.Remediation {
        let package = finding.packageName
        let os = operatingSystem.map { $0.prettyName ?? [$0.id, $0.versionId].compactMap { $0 }.joined(separator: " ") }
        let osPackage = isOSPackage(finding, hasOperatingSystem: operatingSystem != nil)
        var text: String
        if let fixed = finding.fixedVersion {
            text = "Upgrade \(package) from \(finding.installedVersion) to \(fixed) or later"
            if osPackage {
                text += upgradeCommand(finding).map { " (\($0) in the image build)" } ?? ""
                text += ", or rebuild the image on an updated \(os ?? "base image") that ships it."
            } else {
                text += " in the application's dependency manifest, then rebuild the image."
            }
        } else {
            text = "No fixed version of \(package) is available"
            switch finding.fixState {
            case .wontFix: text += ": the publisher will not fix it in this release."
            case .endOfLife: text += ": the release is end of life and receives no more fixes."
            case .deferred: text += ": the publisher has deferred the fix."
            default: text += " yet."
            }
            if let statement = finding.statement, !statement.isEmpty { text += " Publisher's statement: \(statement)" }
            if osPackage {
                if finding.fixState == .endOfLife {
                    text += " Rebuild the image on a supported release of its base image\(os.map { " (it is \($0))" } ?? "")."
                } else {
                    text += " Rebuild on a newer base image release where it is fixed, or remove \(package) if the application does not need it; rescans pick up a fix when one is published."
                }
            } else {
                text += " Replace or remove the dependency \(package), or apply the advisory's mitigation; rescans pick up a fix when one is published."
            }
            text += " If the risk is accepted, record that in a disable rule with its justification."
        }
        return .init(subAssessmentName: subAssessmentName.uuidString.lowercased(), vulnerabilityId: finding.vulnerabilityId,
                     packageName: package, installedVersion: finding.installedVersion, fixedVersion: finding.fixedVersion,
                     patchable: finding.patchable, action: finding.fixedVersion == nil ? .noFixAvailable : .upgrade,
                     fixState: finding.fixState?.rawValue, statement: finding.fixedVersion == nil ? finding.statement : nil,
                     text: text)
    }

    /// The package manager's upgrade command for an OS package, where the ecosystem says which one.
    private static func upgradeCommand(_ finding: Finding) -> String? {
        switch finding.ecosystem?.lowercased() {
        case "apk": "`apk add --no-cache --upgrade \(finding.packageName)`"
        case "dpkg": "`apt-get install --only-upgrade \(finding.packageName)`"
        case "rpm": "`dnf upgrade \(finding.packageName)` (`yum update` on older releases)"
        default: nil
        }
    }

    static func format(_ value: Double) -> String {
        value == value.rounded() ? String(format: "%.1f", value) : String(format: "%g", (value * 100).rounded() / 100)
    }
}
