import FindingsPolicyAPI
import Foundation

/// A finding to export with what it needs: its image, tags, exemption and, for VEX, the statement behind it.
struct ExportRow: Sendable {
    var row: SubAssessmentRow
    var tags: Components.Schemas.ImageTags?
    /// The VEX statement that suppresses the finding (for CycloneDX's analysis), when VEX does.
    var vexStatement: VEXStatement?
}

/// Writes findings as SARIF 2.1.0, CycloneDX 1.6 VEX and CSV.
struct FindingsExport: Sendable {
    let policy: SeverityPolicy
    let toolVersion = "0.2.0"

    /// The image as a purl (purl-spec `oci` type): name the repository's last segment, version the digest,
    /// `repository_url` the registry host and repository.
    static func imagePURL(host: String, image: ImageKey) -> String {
        let name = image.repository.split(separator: "/").last.map(String.init) ?? image.repository
        let digest = image.digest.replacingOccurrences(of: ":", with: "%3A")
        return "pkg:oci/\(name.lowercased())@\(digest)?repository_url=\(host)/\(image.repository)"
    }

    /// The package's purl as the scanner gave it, else its name and version.
    static func packageReference(_ finding: Finding) -> String {
        finding.purl ?? "\(finding.packageName)@\(finding.installedVersion)"
    }

    // MARK: SARIF

    /// A SARIF 2.1.0 log (OASIS SARIF v2.1.0 errata 01): one run of the tool `Gantry`; one `reportingDescriptor` per
    /// vulnerability ID (`rules`), one `result` per finding with `level` from the banded severity (High → error,
    /// Medium → warning, Low → note), the image purl as the artifact location and the package as a logical location;
    /// an exempt finding carries an accepted `external` suppression with its justification. `security-severity`
    /// (the CVSS base score) is the property code-scanning services read.
    func sarif(_ rows: [ExportRow]) -> SARIF.Log {
        var rules: [SARIF.Rule] = []
        var ruleIndex: [String: Int] = [:]
        var results: [SARIF.Result] = []
        for export in rows {
            let finding = export.row.finding
            let band = policy.band(finding.severity)
            if ruleIndex[finding.vulnerabilityId] == nil {
                ruleIndex[finding.vulnerabilityId] = rules.count
                let title = FindingText.displayName(of: finding)
                var properties = SARIF.Properties(tags: ["security", "vulnerability", FindingText.category(of: finding)])
                properties.securitySeverity = finding.cvssV3Score.map { String(format: "%.1f", $0) }
                properties.severity = finding.severity.rawValue
                rules.append(.init(
                    id: finding.vulnerabilityId, name: finding.vulnerabilityId,
                    shortDescription: .init(text: title), fullDescription: .init(text: finding.description ?? title),
                    helpUri: finding.links?.first ?? (finding.vulnerabilityId.hasPrefix("CVE-")
                        ? "https://nvd.nist.gov/vuln/detail/\(finding.vulnerabilityId)" : nil),
                    help: .init(text: FindingText.remediation(of: finding, subAssessmentName: export.row.name,
                                                              operatingSystem: export.row.operatingSystem).text),
                    defaultConfiguration: .init(level: Self.level(band)), properties: properties))
            }
            let image = export.row.image
            let message = "\(finding.packageName) \(finding.installedVersion) is affected by \(finding.vulnerabilityId)"
                + (finding.fixedVersion.map { "; fixed in \($0)" } ?? "; no fix is available")
            var properties = SARIF.Properties(tags: [])
            properties.tags = nil
            properties.severity = finding.severity.rawValue
            properties.imageDigest = image.digest
            properties.repository = image.repository
            properties.registry = export.row.registryHost
            properties.currentTags = export.tags?.current.map(\.tag)
            properties.previousTags = export.tags?.previous.map(\.tag)
            properties.fixedVersion = finding.fixedVersion
            properties.patchable = finding.patchable
            results.append(.init(
                ruleId: finding.vulnerabilityId, ruleIndex: ruleIndex[finding.vulnerabilityId]!, level: Self.level(band),
                message: .init(text: message),
                locations: [.init(
                    physicalLocation: .init(artifactLocation: .init(uri: Self.imagePURL(host: export.row.registryHost, image: image))),
                    logicalLocations: [.init(name: finding.packageName, fullyQualifiedName: Self.packageReference(finding),
                                             kind: "module")])],
                partialFingerprints: ["gantrySubAssessment/v1": export.row.name.uuidString.lowercased()],
                suppressions: export.row.exemptRuleID.map { _ in
                    [.init(kind: "external", status: "accepted", justification: export.row.justification ?? "")]
                },
                properties: properties))
        }
        return SARIF.Log(runs: [.init(tool: .init(driver: .init(name: "Gantry", informationUri: "https://github.com/gantry",
                                                                  version: toolVersion, rules: rules)),
                                      results: results)])
    }

    static func level(_ band: Components.Schemas.SeverityBand) -> String {
        switch band {
        case .high: "error"
        case .medium: "warning"
        case .low: "note"
        }
    }

    // MARK: CycloneDX

    /// A CycloneDX 1.6 BOM (JSON) in the VEX style: components for each image (`container`) and affected package
    /// (`library`), one vulnerability per finding with `affects` naming the package component, ratings from CVSS,
    /// and `analysis.state`: `in_triage` for a finding that counts, `not_affected` (with the OpenVEX justification
    /// mapped to CycloneDX's) or `resolved` for one a VEX statement suppresses, `exploitable` with response
    /// `will_not_fix` for one a disable rule accepts (the rule's justification in `detail`).
    func cycloneDX(_ rows: [ExportRow], serialNumber: UUID = UUID(), now: Date = Date()) -> CycloneDX.BOM {
        var components: [CycloneDX.Component] = []
        var seen = Set<String>()
        var vulnerabilities: [CycloneDX.Vulnerability] = []
        for export in rows {
            let finding = export.row.finding
            let image = export.row.image
            let imageRef = Self.imagePURL(host: export.row.registryHost, image: image)
            if seen.insert(imageRef).inserted {
                var properties = [CycloneDX.Property(name: "gantry:registry", value: export.row.registryHost)]
                properties += (export.tags?.current ?? []).map { .init(name: "gantry:tag", value: $0.tag) }
                properties += (export.tags?.previous ?? []).map { .init(name: "gantry:previousTag", value: $0.tag) }
                components.append(.init(type: "container", bomRef: imageRef, name: image.repository, version: image.digest,
                                        purl: imageRef, properties: properties))
            }
            let packageRef = imageRef + "#" + Self.packageReference(finding)
            if seen.insert(packageRef).inserted {
                components.append(.init(type: "library", bomRef: packageRef, name: finding.packageName,
                                        version: finding.installedVersion, purl: finding.purl, properties: nil))
            }
            var ratings: [CycloneDX.Rating] = []
            if let score = finding.cvssV3Score {
                let method = finding.cvssV3Vector?.hasPrefix("CVSS:3.1") ?? false ? "CVSSv31" : "CVSSv3"
                ratings.append(.init(score: score, severity: Self.severity(finding.severity), method: method, vector: finding.cvssV3Vector))
            }
            if let score = finding.cvssV4Score {
                ratings.append(.init(score: score, severity: Self.severity(finding.severity), method: "CVSSv4", vector: finding.cvssV4Vector))
            }
            if ratings.isEmpty { ratings.append(.init(score: nil, severity: Self.severity(finding.severity), method: nil, vector: nil)) }
            let analysis: CycloneDX.Analysis
            if let statement = export.vexStatement {
                analysis = .init(state: statement.status == .fixed ? "resolved" : "not_affected",
                                 justification: statement.status == .fixed ? nil : statement.justification.flatMap(Self.justification),
                                 response: nil, detail: export.row.justification)
            } else if export.row.exemptRuleID != nil {
                analysis = .init(state: "exploitable", justification: nil, response: ["will_not_fix"], detail: export.row.justification)
            } else {
                analysis = .init(state: "in_triage", justification: nil, response: finding.patchable ? ["update"] : nil,
                                 detail: finding.fixedVersion.map { "upgrade \(finding.packageName) to \($0) or later" })
            }
            let link = finding.links?.first ?? (finding.vulnerabilityId.hasPrefix("CVE-")
                ? "https://nvd.nist.gov/vuln/detail/\(finding.vulnerabilityId)" : nil)
            vulnerabilities.append(.init(
                bomRef: "finding:" + export.row.name.uuidString.lowercased(), id: finding.vulnerabilityId,
                source: .init(name: finding.source, url: link), ratings: ratings,
                description: finding.description ?? finding.title, recommendation: finding.fixedVersion.map {
                    "Upgrade \(finding.packageName) to \($0) or later."
                },
                published: finding.published.flatMap(Views.date).map(Self.timestamp), analysis: analysis,
                affects: [.init(ref: packageRef)]))
        }
        return CycloneDX.BOM(serialNumber: "urn:uuid:" + serialNumber.uuidString.lowercased(),
                             metadata: .init(timestamp: Self.timestamp(now),
                                             tools: .init(components: [.init(type: "application", bomRef: nil, name: "Gantry",
                                                                             version: toolVersion, purl: nil, properties: nil)])),
                             components: components, vulnerabilities: vulnerabilities)
    }

    static func timestamp(_ date: Date) -> String { ISO8601DateFormatter().string(from: date) }

    /// CycloneDX 1.6 `severity` values.
    static func severity(_ severity: Severity) -> String {
        switch severity {
        case .critical: "critical"
        case .high: "high"
        case .medium: "medium"
        case .low: "low"
        case .negligible: "info"
        case .unknown: "unknown"
        }
    }

    /// OpenVEX justifications as CycloneDX 1.6 `impactAnalysisJustification` (CISA's VEX status justifications
    /// mapping); nil for one without a counterpart (or a CSAF flag label that is not OpenVEX).
    static func justification(_ openVEX: String) -> String? {
        switch openVEX {
        case "component_not_present", "vulnerable_code_not_present": "code_not_present"
        case "vulnerable_code_not_in_execute_path": "code_not_reachable"
        case "vulnerable_code_cannot_be_controlled_by_adversary", "inline_mitigations_already_exist": "protected_by_mitigating_control"
        default: nil
        }
    }

    // MARK: CSV

    static let csvHeader = [
        "registry", "repository", "imageDigest", "tags", "previousTags", "vulnerabilityId", "packageName", "installedVersion",
        "fixedVersion", "severity", "severityBand", "cvssV3", "patchable", "status", "exemptBy", "justification", "title",
    ]

    /// RFC 4180 CSV: a header row, CRLF after every record, a field quoted when it holds a comma, a double quote,
    /// CR or LF, with its double quotes doubled. Tags are space-separated inside their field.
    func csv(_ rows: [ExportRow]) -> String {
        var text = Self.csvRecord(Self.csvHeader)
        for export in rows {
            let finding = export.row.finding
            let exemptBy = export.row.exemptRuleID == nil ? "" : (export.row.byVEX ? "vex" : "rule")
            text += Self.csvRecord([
                export.row.registryHost, export.row.image.repository, export.row.image.digest,
                (export.tags?.current ?? []).map(\.tag).joined(separator: " "),
                (export.tags?.previous ?? []).map(\.tag).joined(separator: " "),
                finding.vulnerabilityId, finding.packageName, finding.installedVersion, finding.fixedVersion ?? "",
                finding.severity.rawValue, policy.band(finding.severity).rawValue,
                finding.cvssV3Score.map { String(format: "%.1f", $0) } ?? "", finding.patchable ? "true" : "false",
                export.row.exemptRuleID == nil ? "Unhealthy" : "NotApplicable", exemptBy, export.row.justification ?? "",
                FindingText.displayName(of: finding),
            ])
        }
        return text
    }

    static func csvRecord(_ fields: [String]) -> String {
        fields.map { field in
            guard field.contains(where: { $0 == "," || $0 == "\"" || $0 == "\r" || $0 == "\n" || $0 == "\r\n" }) else { return field }
            return "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }.joined(separator: ",") + "\r\n"
    }
}

/// The parts of SARIF 2.1.0 this service writes (OASIS SARIF v2.1.0, sections 3.13–3.27).
enum SARIF {
    struct Log: Codable, Sendable {
        var schema = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
        var version = "2.1.0"
        var runs: [Run]
        enum CodingKeys: String, CodingKey { case schema = "$schema", version, runs }
    }
    struct Run: Codable, Sendable {
        var tool: Tool
        var results: [Result]
    }
    struct Tool: Codable, Sendable { var driver: Driver }
    struct Driver: Codable, Sendable {
        var name: String
        var informationUri: String
        var version: String
        var rules: [Rule]
    }
    struct Message: Codable, Sendable { var text: String }
    struct Configuration: Codable, Sendable { var level: String }
    struct Rule: Codable, Sendable {
        var id: String
        var name: String
        var shortDescription: Message
        var fullDescription: Message
        var helpUri: String?
        var help: Message
        var defaultConfiguration: Configuration
        var properties: Properties
    }
    struct Properties: Codable, Sendable {
        var tags: [String]?
        var securitySeverity: String?
        var severity: String?
        var imageDigest: String?
        var repository: String?
        var registry: String?
        var currentTags: [String]?
        var previousTags: [String]?
        var fixedVersion: String?
        var patchable: Bool?
        enum CodingKeys: String, CodingKey {
            case tags, securitySeverity = "security-severity", severity, imageDigest, repository, registry, currentTags,
                 previousTags, fixedVersion, patchable
        }
    }
    struct ArtifactLocation: Codable, Sendable { var uri: String }
    struct PhysicalLocation: Codable, Sendable { var artifactLocation: ArtifactLocation }
    struct LogicalLocation: Codable, Sendable {
        var name: String
        var fullyQualifiedName: String
        var kind: String
    }
    struct Location: Codable, Sendable {
        var physicalLocation: PhysicalLocation
        var logicalLocations: [LogicalLocation]
    }
    struct Suppression: Codable, Sendable {
        var kind: String
        var status: String
        var justification: String
    }
    struct Result: Codable, Sendable {
        var ruleId: String
        var ruleIndex: Int
        var level: String
        var message: Message
        var locations: [Location]
        var partialFingerprints: [String: String]
        var suppressions: [Suppression]?
        var properties: Properties
    }
}

/// The parts of CycloneDX 1.6 (JSON) this service writes (bom-1.6.schema.json).
enum CycloneDX {
    struct BOM: Codable, Sendable {
        var bomFormat = "CycloneDX"
        var specVersion = "1.6"
        var serialNumber: String
        var version = 1
        var metadata: Metadata
        var components: [Component]
        var vulnerabilities: [Vulnerability]
    }
    struct Metadata: Codable, Sendable {
        var timestamp: String
        var tools: Tools
    }
    struct Tools: Codable, Sendable { var components: [Component] }
    struct Property: Codable, Sendable {
        var name: String
        var value: String
    }
    struct Component: Codable, Sendable {
        var type: String
        var bomRef: String?
        var name: String
        var version: String?
        var purl: String?
        var properties: [Property]?
        enum CodingKeys: String, CodingKey { case type, bomRef = "bom-ref", name, version, purl, properties }
    }
    struct Source: Codable, Sendable {
        var name: String
        var url: String?
    }
    struct Rating: Codable, Sendable {
        var score: Double?
        var severity: String
        var method: String?
        var vector: String?
    }
    struct Analysis: Codable, Sendable {
        var state: String
        var justification: String?
        var response: [String]?
        var detail: String?
    }
    struct Affect: Codable, Sendable { var ref: String }
    struct Vulnerability: Codable, Sendable {
        var bomRef: String
        var id: String
        var source: Source
        var ratings: [Rating]
        var description: String?
        var recommendation: String?
        var published: String?
        var analysis: Analysis
        var affects: [Affect]
        enum CodingKeys: String, CodingKey {
            case bomRef = "bom-ref", id, source, ratings, description, recommendation, published, analysis, affects
        }
    }
}
