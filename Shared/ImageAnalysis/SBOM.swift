import Foundation
import GantryModel

/// What an SBOM describes: one image and what was found in it.
public struct SBOMSubject: Sendable {
    /// A display name, for example `registry/repo:tag` or an archive's file name.
    public var name: String
    /// The image manifest digest, when known.
    public var digest: Digest?
    public var inventory: ImageInventory
    /// Findings to carry as CycloneDX `vulnerabilities[]` (CycloneDX VEX); empty for a plain inventory.
    public var findings: [VulnerabilityFinding]

    public init(name: String, digest: Digest?, inventory: ImageInventory, findings: [VulnerabilityFinding] = []) {
        self.name = name
        self.digest = digest
        self.inventory = inventory
        self.findings = findings
    }
}

/// SBOM documents for a scanned image, in the two standard JSON forms.
///
/// - CycloneDX 1.6 JSON (https://cyclonedx.org/docs/1.6/json/): the image as `metadata.component`
///   (type `container`), the OS as a component of type `operating-system`, each package as a `library`
///   with its purl, licenses and `gantry:location`; findings as `vulnerabilities[]` with `ratings`,
///   `affects` → the component's `bom-ref`, `analysis.state` and the fixed version as `recommendation`.
/// - SPDX 2.3 JSON (https://spdx.github.io/spdx-spec/v2.3/): a document DESCRIBES the image package,
///   which CONTAINS one package per installed package, each with a purl external reference
///   (SPDX 2.3, Annex F "External Repository Identifiers").
public enum SBOM {
    /// The producing tool's name and version, recorded in both formats.
    public static let toolName = "gantry"
    public static let toolVersion = "0.1.0"

    /// A CycloneDX 1.6 JSON document.
    public static func cycloneDX(_ subject: SBOMSubject, timestamp: Date = Date(), serial: UUID = UUID()) throws -> Data {
        var components: [[String: Any]] = []
        var references: [String: String] = [:]  // purl -> bom-ref
        if let os = subject.inventory.operatingSystem {
            components.append([
                "type": "operating-system", "bom-ref": "os:\(os.id)", "name": os.id,
                "version": os.versionID ?? "unknown", "description": os.prettyName ?? os.id,
            ])
        }
        for (index, package) in subject.inventory.packages.enumerated() {
            let reference = "pkg-\(index + 1):\(package.purl)"
            references[package.purl] = reference
            var component: [String: Any] = [
                "type": "library", "bom-ref": reference, "name": package.name, "version": package.version,
                "purl": package.purl,
                "properties": properties(package),
            ]
            if let licenses = package.licenses, !licenses.isEmpty {
                component["licenses"] = licenses.map { ["expression": $0] }
            }
            components.append(component)
        }
        var document: [String: Any] = [
            "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
            "bomFormat": "CycloneDX", "specVersion": "1.6", "serialNumber": "urn:uuid:\(serial.uuidString.lowercased())",
            "version": 1,
            "metadata": [
                "timestamp": iso8601(timestamp),
                "tools": ["components": [["type": "application", "name": toolName, "version": toolVersion]]],
                "component": [
                    "type": "container", "bom-ref": "image", "name": subject.name,
                    "version": subject.digest?.description ?? "unknown",
                ] as [String: Any],
            ] as [String: Any],
            "components": components,
        ]
        if !subject.findings.isEmpty {
            document["vulnerabilities"] = subject.findings.map { finding -> [String: Any] in
                let purl = finding.purl ?? subject.inventory.packages.first {
                    $0.name == finding.packageName && $0.version == finding.installedVersion
                }?.purl
                // Ratings: the chosen severity (with its rater), then each CVSS score (CycloneDX 1.6
                // `ratings[].method` CVSSv31 / CVSSv4).
                var ratings: [[String: Any]] = [["source": ["name": finding.severitySource ?? finding.source],
                                                 "severity": finding.severity.rawValue.lowercased(), "method": "other"]]
                if let score = finding.cvssV3Score {
                    var rating: [String: Any] = ["score": score, "method": "CVSSv31", "severity": cycloneDXSeverity(score)]
                    if let vector = finding.cvssV3Vector { rating["vector"] = vector }
                    ratings.append(rating)
                }
                if let score = finding.cvssV4Score {
                    var rating: [String: Any] = ["score": score, "method": "CVSSv4", "severity": cycloneDXSeverity(score)]
                    if let vector = finding.cvssV4Vector { rating["vector"] = vector }
                    ratings.append(rating)
                }
                var analysis: [String: Any] = ["state": "exploitable",
                                               "detail": "installed \(finding.packageName) \(finding.installedVersion)"
                                                   + (finding.statement.map { "; \($0)" } ?? "")]
                switch finding.fixState {
                case "wontFix": analysis["response"] = ["will_not_fix"]
                case "fixed", nil where finding.fixedVersion != nil: analysis["response"] = ["update"]
                default: break
                }
                var vulnerability: [String: Any] = [
                    "bom-ref": "vuln:\(finding.vulnerabilityID):\(finding.packageName):\(finding.installedVersion)",
                    "id": finding.vulnerabilityID,
                    "source": ["name": finding.source],
                    "ratings": ratings,
                    "affects": [["ref": purl.flatMap { references[$0] } ?? "image"]],
                    "analysis": analysis,
                ]
                if let description = finding.title ?? finding.description { vulnerability["description"] = description }
                if let published = finding.published { vulnerability["published"] = published }
                if let links = finding.links, !links.isEmpty {
                    vulnerability["advisories"] = links.prefix(10).map { ["url": $0] }
                }
                if let fixed = finding.fixedVersion {
                    vulnerability["recommendation"] = "Upgrade \(finding.packageName) to \(fixed) or later."
                } else {
                    vulnerability["recommendation"] = "No fixed version of \(finding.packageName) is available"
                        + (finding.fixState.map { " (\($0))" } ?? "") + "."
                }
                let aliases = (finding.aliases ?? finding.cves).filter { $0 != finding.vulnerabilityID }
                if !aliases.isEmpty {
                    vulnerability["references"] = aliases.map { ["id": $0, "source": ["name": $0.hasPrefix("CVE-") ? "NVD" : "OSV"]] }
                }
                return vulnerability
            }
        }
        return try JSONSerialization.data(withJSONObject: document, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    }

    /// An SPDX 2.3 JSON document.
    public static func spdx(_ subject: SBOMSubject, timestamp: Date = Date(), namespace: UUID = UUID()) throws -> Data {
        var packages: [[String: Any]] = [[
            "SPDXID": "SPDXRef-Image", "name": subject.name, "versionInfo": subject.digest?.description ?? "NOASSERTION",
            "downloadLocation": "NOASSERTION", "filesAnalyzed": false, "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION", "copyrightText": "NOASSERTION", "primaryPackagePurpose": "CONTAINER",
        ]]
        var relationships: [[String: Any]] = [[
            "spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": "SPDXRef-Image",
        ]]
        if let os = subject.inventory.operatingSystem {
            packages.append([
                "SPDXID": "SPDXRef-OperatingSystem", "name": os.id, "versionInfo": os.versionID ?? "NOASSERTION",
                "downloadLocation": "NOASSERTION", "filesAnalyzed": false, "licenseConcluded": "NOASSERTION",
                "licenseDeclared": "NOASSERTION", "copyrightText": "NOASSERTION", "primaryPackagePurpose": "OPERATING-SYSTEM",
                "description": os.prettyName ?? os.id,
            ])
            relationships.append(["spdxElementId": "SPDXRef-Image", "relationshipType": "CONTAINS",
                                  "relatedSpdxElement": "SPDXRef-OperatingSystem"])
        }
        for (index, package) in subject.inventory.packages.enumerated() {
            let identifier = "SPDXRef-Package-\(package.ecosystem.filter { $0.isLetter || $0.isNumber })-\(index + 1)"
            packages.append([
                "SPDXID": identifier, "name": package.name, "versionInfo": package.version,
                "downloadLocation": "NOASSERTION", "filesAnalyzed": false, "licenseConcluded": "NOASSERTION",
                // Declared licenses are free text in several ecosystems: only SPDX-looking ones are kept.
                "licenseDeclared": spdxLicense(package.licenses) ?? "NOASSERTION",
                "copyrightText": "NOASSERTION", "primaryPackagePurpose": "LIBRARY",
                "sourceInfo": "acquired package info from /\(package.location)",
                "externalRefs": [["referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                                  "referenceLocator": package.purl]],
            ])
            relationships.append(["spdxElementId": "SPDXRef-Image", "relationshipType": "CONTAINS",
                                  "relatedSpdxElement": identifier])
        }
        let safeName = subject.name.map { $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" ? $0 : "-" }
        let document: [String: Any] = [
            "spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT", "name": subject.name,
            "documentNamespace": "https://gantry.invalid/spdx/\(String(safeName))-\(namespace.uuidString.lowercased())",
            "creationInfo": ["created": iso8601(timestamp), "creators": ["Tool: \(toolName)-\(toolVersion)"]],
            "packages": packages, "relationships": relationships,
        ]
        return try JSONSerialization.data(withJSONObject: document, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    }

    private static func properties(_ package: InstalledPackage) -> [[String: String]] {
        var properties = [["name": "gantry:location", "value": "/\(package.location)"],
                          ["name": "gantry:ecosystem", "value": package.ecosystem]]
        if let source = package.sourceName, source != package.name {
            properties.append(["name": "gantry:sourceName", "value": source])
        }
        if let version = package.sourceVersion { properties.append(["name": "gantry:sourceVersion", "value": version]) }
        for (key, value) in (package.metadata ?? [:]).sorted(by: { $0.key < $1.key }) {
            properties.append(["name": "gantry:\(key)", "value": value])
        }
        return properties
    }

    /// A single declared license that is an SPDX expression over well-known SPDX license identifiers
    /// (SPDX 2.3 Annex D: `id (AND|OR|WITH id)*`, parentheses allowed); nil otherwise, so free text such as
    /// "MIT License" or "BSD-like" never makes an invalid document.
    static func spdxLicense(_ licenses: [String]?) -> String? {
        guard let licenses, licenses.count == 1, let license = licenses.first, license.count <= 200 else { return nil }
        let tokens = license.replacingOccurrences(of: "(", with: " ").replacingOccurrences(of: ")", with: " ")
            .split(separator: " ").map(String.init)
        guard !tokens.isEmpty, tokens.count % 2 == 1 else { return nil }
        for (index, token) in tokens.enumerated() {
            if index % 2 == 1 {
                guard ["AND", "OR", "WITH"].contains(token) else { return nil }
            } else {
                guard knownLicenses.contains(token) || token.hasPrefix("LicenseRef-") else { return nil }
            }
        }
        return license
    }

    /// Identifiers from the SPDX License List that package metadata commonly declares.
    static let knownLicenses: Set<String> = [
        "0BSD", "AFL-2.1", "AGPL-3.0-only", "AGPL-3.0-or-later", "Apache-1.1", "Apache-2.0", "Artistic-2.0",
        "BSD-1-Clause", "BSD-2-Clause", "BSD-3-Clause", "BSL-1.0", "CC0-1.0", "CC-BY-4.0", "CDDL-1.0", "EPL-1.0",
        "EPL-2.0", "GPL-2.0-only", "GPL-2.0-or-later", "GPL-3.0-only", "GPL-3.0-or-later", "ISC",
        "LGPL-2.0-only", "LGPL-2.0-or-later", "LGPL-2.1-only", "LGPL-2.1-or-later", "LGPL-3.0-only",
        "LGPL-3.0-or-later", "MIT", "MIT-0", "MPL-1.1", "MPL-2.0", "OpenSSL", "PHP-3.01", "PostgreSQL",
        "PSF-2.0", "Python-2.0", "Ruby", "Unlicense", "Vim", "W3C", "WTFPL", "X11", "Zlib", "zlib-acknowledgement",
        "Classpath-exception-2.0", "LLVM-exception", "GCC-exception-3.1",
    ]

    private static func iso8601(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }
}

/// The CycloneDX severity word of a CVSS base score's band (CVSS v3.1 §5, v4.0 §6).
private func cycloneDXSeverity(_ score: Double) -> String {
    switch score {
    case ..<0.1: "none"
    case ..<4.0: "low"
    case ..<7.0: "medium"
    case ..<9.0: "high"
    default: "critical"
    }
}
