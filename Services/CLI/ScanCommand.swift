import ArgumentParser
import enum Crypto.Curve25519
import Foundation
import GantryModel
import ImageAnalysis
import VulnerabilityDB

/// Output formats of `gantry scan` and `gantry sbom`.
enum ReportFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json
    case cycloneDXJSON = "cyclonedx-json"
    case spdxJSON = "spdx-json"
    case sarif
}

/// The image arguments `gantry scan` and `gantry sbom` share.
struct ImageOptions: ParsableArguments {
    @Argument(help: "oci-archive:FILE, docker-archive:FILE, oci-dir:DIR or HOST/REPO[:TAG|@DIGEST].")
    var image: String
    @Option(help: "os/architecture[/variant] to take from an image index.")
    var platform = "linux/amd64"
    @Flag(help: "Speak plain HTTP to the registry.")
    var insecure = false

    func load() async throws -> ImageSource {
        try await ImageSource.load(image, platform: platform, insecure: insecure)
    }
}

/// `gantry sbom IMAGE`: the inventory of an image as CycloneDX 1.6 or SPDX 2.3 JSON (or a table / Gantry JSON),
/// with no service or database.
struct SBOMCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sbom", abstract: "Print the SBOM of an image (oci-archive:, docker-archive:, oci-dir: or a registry reference).")

    @OptionGroup var source: ImageOptions
    @Option(help: "cyclonedx-json, spdx-json, json or table.")
    var format: ReportFormat = .cycloneDXJSON

    func validate() throws {
        if format == .sarif { throw ValidationError("sarif reports findings; use `gantry scan --format sarif`") }
    }

    func run() async throws {
        let source = try await self.source.load()
        let subject = SBOMSubject(name: source.name, digest: source.digest, inventory: try source.inventory())
        print(try Report.render(subject, format: format))
    }
}

/// `gantry scan IMAGE --feeds PATH`: analyses and matches an image offline, with the scanner's own code,
/// against a signed feed bundle or a file or directory of feed files (formats recognised from content).
struct ScanCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scan", abstract: "Scan an image offline against local feeds and print the findings.")

    @OptionGroup var source: ImageOptions
    @Option(help: "A feed bundle (gantry feeds bundle), a feed file, or a directory of feed files (for example ../shared/corpus/3-vuln-feeds).")
    var feeds: String
    @Option(help: "Base64 Ed25519 public key that must have signed a bundle (default: GANTRY_FEEDS_PUBLIC_KEY).")
    var publicKey: String?
    @Option(help: "table, json, cyclonedx-json, spdx-json or sarif.")
    var format: ReportFormat = .table

    func run() async throws {
        let source = try await self.source.load()
        let inventory = try source.inventory()
        let (store, feedNotes) = try FeedOptions.loadStore(feeds, publicKey: publicKey)
        var findings: [VulnerabilityFinding] = []
        var notes = feedNotes
        if inventory.notApplicable == nil {
            let result = try await Matcher.match(inventory, store: store)
            findings = result.findings
            notes += result.notes
            if result.namespaces.isEmpty {
                notes.append("no vulnerability data in \(feeds) covers this image; nothing was matched")
            }
        }
        print(try Report.render(SBOMSubject(name: source.name, digest: source.digest, inventory: inventory, findings: findings),
                                format: format, notes: notes))
    }
}

/// Loading a local knowledge base for offline commands.
enum FeedOptions {
    /// The trusted key from `--public-key` or `GANTRY_FEEDS_PUBLIC_KEY`; nil when neither is set.
    static func trustedKey(_ option: String?) throws -> Curve25519.Signing.PublicKey? {
        guard let text = option ?? ProcessInfo.processInfo.environment["GANTRY_FEEDS_PUBLIC_KEY"], !text.isEmpty else { return nil }
        guard let raw = Data(base64Encoded: text), raw.count == 32,
              let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw) else {
            throw CLIError("the feed public key must be the base64 of a raw 32-byte Ed25519 public key")
        }
        return key
    }

    /// An in-memory knowledge base from a bundle (verified with the trusted key) or from feed files.
    static func loadStore(_ path: String, publicKey: String?) throws -> (InMemoryVulnerabilityStore, [String]) {
        let url = URL(fileURLWithPath: path)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw CLIError("\(path) does not exist")
        }
        if !isDirectory.boolValue, FeedBundle.looksLikeBundle(at: url) {
            guard let key = try trustedKey(publicKey) else {
                throw CLIError("\(path) is a feed bundle; give the key that signed it with --public-key or GANTRY_FEEDS_PUBLIC_KEY")
            }
            let bundle = try FeedBundle.read(at: url, trustedKey: key)
            return (InMemoryVulnerabilityStore(documents: bundle.documents),
                    ["feeds: bundle of \(bundle.documents.count) documents signed by \(bundle.manifest.keyID), created \(bundle.manifest.created.formatted(.iso8601))"])
        }
        let result = try FeedLoader.load(url)
        var notes: [String] = []
        if !result.skipped.isEmpty {
            notes.append("feeds: \(result.skipped.count) files under \(path) are not feeds Gantry reads and were skipped")
        }
        return (InMemoryVulnerabilityStore(documents: result.documents), notes)
    }
}

/// Renders inventories and findings.
enum Report {
    static func render(_ subject: SBOMSubject, format: ReportFormat, notes: [String] = []) throws -> String {
        switch format {
        case .cycloneDXJSON: return String(decoding: try SBOM.cycloneDX(subject), as: UTF8.self)
        case .spdxJSON: return String(decoding: try SBOM.spdx(subject), as: UTF8.self)
        case .sarif: return String(decoding: try sarif(subject), as: UTF8.self)
        case .json:
            struct Output: Encodable {
                var image: String
                var digest: String?
                var inventory: ImageInventory
                var findings: [VulnerabilityFinding]
                var notes: [String]
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            return String(decoding: try encoder.encode(Output(image: subject.name, digest: subject.digest?.description,
                                                              inventory: subject.inventory, findings: subject.findings,
                                                              notes: notes)), as: UTF8.self)
        case .table:
            var lines: [String] = []
            let os = subject.inventory.operatingSystem
            lines.append("\(subject.name)  OS: \(os?.prettyName ?? os?.id ?? "unknown")  packages: \(subject.inventory.packages.count)")
            if let reason = subject.inventory.notApplicable { lines.append("not applicable: \(reason.rawValue)") }
            if subject.findings.isEmpty {
                lines.append("no findings")
            } else {
                lines.append(pad(["VULNERABILITY", "PACKAGE", "INSTALLED", "FIXED IN", "SEVERITY"]))
                for finding in subject.findings {
                    lines.append(pad([finding.vulnerabilityID, finding.packageName, finding.installedVersion,
                                      finding.fixedVersion ?? "(no fix)", finding.severity.rawValue]))
                }
            }
            lines += (subject.inventory.notes + notes).map { "note: \($0)" }
            return lines.joined(separator: "\n")
        }
    }

    private static func pad(_ columns: [String]) -> String {
        zip(columns, [20, 24, 20, 20, 10]).map { $0.padding(toLength: max($1, $0.count + 1), withPad: " ", startingAt: 0) }
            .joined().trimmingCharacters(in: .whitespaces)
    }

    /// SARIF 2.1.0 (OASIS, sections 3.13 run, 3.27 result, 3.49 reportingDescriptor): one rule per
    /// vulnerability, one result per affected package, located at the package's metadata file.
    static func sarif(_ subject: SBOMSubject) throws -> Data {
        var rules: [String: [String: Any]] = [:]
        var results: [[String: Any]] = []
        for finding in subject.findings {
            rules[finding.vulnerabilityID] = [
                "id": finding.vulnerabilityID,
                "shortDescription": ["text": "\(finding.vulnerabilityID) in \(finding.sourceName ?? finding.packageName)"],
                "fullDescription": ["text": finding.title ?? finding.description ?? finding.vulnerabilityID],
                "helpUri": finding.vulnerabilityID.hasPrefix("CVE-")
                    ? "https://nvd.nist.gov/vuln/detail/\(finding.vulnerabilityID)" : "https://osv.dev/vulnerability/\(finding.vulnerabilityID)",
                // GitHub code scanning reads `security-severity` as a CVSS score: the real one where known.
                "properties": ["security-severity": finding.cvssV3Score.map { String(format: "%.1f", $0) }
                    ?? finding.cvssV4Score.map { String(format: "%.1f", $0) } ?? securitySeverity(finding.severity)],
            ]
            let location = subject.inventory.packages.first { $0.name == finding.packageName }?.location ?? "image"
            results.append([
                "ruleId": finding.vulnerabilityID,
                "level": level(finding.severity),
                "message": ["text": "\(finding.packageName) \(finding.installedVersion) is affected by \(finding.vulnerabilityID)"
                    + (finding.fixedVersion.map { "; upgrade to \($0)" } ?? "; no fix is available")],
                "locations": [["physicalLocation": ["artifactLocation": ["uri": location]]]],
            ])
        }
        let document: [String: Any] = [
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0",
            "runs": [[
                "tool": ["driver": ["name": SBOM.toolName, "version": SBOM.toolVersion,
                                    "informationUri": "https://github.com/gantry", "rules": rules.keys.sorted().compactMap { rules[$0] }]],
                "results": results,
            ] as [String: Any]],
        ]
        return try JSONSerialization.data(withJSONObject: document, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    }

    private static func level(_ severity: Severity) -> String {
        switch severity {
        case .critical, .high: "error"
        case .medium: "warning"
        default: "note"
        }
    }

    private static func securitySeverity(_ severity: Severity) -> String {
        switch severity {
        case .critical: "9.5"
        case .high: "8.0"
        case .medium: "5.5"
        case .low: "2.0"
        default: "0.0"
        }
    }
}
