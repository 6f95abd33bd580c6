import FindingsPolicyAPI
import Foundation

/// A package URL split into its parts (purl specification, "PURL specification": `pkg:type/namespace/name@version?qualifiers#subpath`),
/// each percent-decoded; type lowercased.
struct ParsedPackageURL: Equatable, Sendable {
    var type: String
    var namespace: String?
    var name: String
    var version: String?
    var qualifiers: [String: String]

    /// Nil for text that is not a purl.
    init?(_ text: String) {
        guard text.lowercased().hasPrefix("pkg:") else { return nil }
        var rest = Substring(text.dropFirst(4))
        while rest.hasPrefix("/") { rest = rest.dropFirst() }
        if let hash = rest.firstIndex(of: "#") { rest = rest[..<hash] }
        var qualifiers: [String: String] = [:]
        if let question = rest.firstIndex(of: "?") {
            for pair in rest[rest.index(after: question)...].split(separator: "&") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                guard parts.count == 2 else { continue }
                qualifiers[parts[0].lowercased()] = String(parts[1]).removingPercentEncoding ?? String(parts[1])
            }
            rest = rest[..<question]
        }
        var version: String?
        if let at = rest.lastIndex(of: "@"), rest[..<at].contains("/") {
            version = String(rest[rest.index(after: at)...]).removingPercentEncoding
            rest = rest[..<at]
        }
        var segments = rest.split(separator: "/").map { String($0).removingPercentEncoding ?? String($0) }
        guard segments.count >= 2, let name = segments.popLast(), !name.isEmpty else { return nil }
        type = segments.removeFirst().lowercased()
        namespace = segments.isEmpty ? nil : segments.joined(separator: "/")
        self.name = name
        self.version = version
        self.qualifiers = qualifiers
    }
}

/// A VEX document attached to a subscription, as matching uses it.
struct AttachedVEX: Sendable, Equatable {
    var id: UUID
    var documentID: String
    var statements: [VEXStatement]
}

/// Why a finding is suppressed by VEX: the document and the words of the statement.
struct VEXSuppression: Sendable, Equatable {
    var documentID: UUID
    var justification: String
}

/// The attached VEX documents of a subscription applied to one image.
///
/// A statement suppresses a finding when its status is `not_affected` or `fixed`, it names the finding's
/// vulnerability (its ID, a CVE of it or an alias, ignoring case), and one of its products is
/// - the image (an `sha256:` hash or `@id`, or a `pkg:oci` purl whose version is the digest, or a versionless
///   `pkg:oci` purl naming the repository): every finding then, or only those of its subcomponents when it has any;
/// - the finding's package (a purl): same type and name (or source package name for `arch=source`), the version
///   when the purl has one (an epoch `0:` ignored), the namespace for language ecosystems and `arch` when both
///   have it. OS package namespaces are not compared: vendors name them differently (`redhat`, `rhel`);
/// - a CSAF product without purl whose name is the package's.
/// A CSAF product on a platform (a relationship) matches only findings of that platform: a mainline RHEL CPE's
/// `rhel:<major>` must be the finding's namespace; any other platform matches only findings without one.
/// Documents apply in attach order; the first matching statement wins.
struct ScopedVEX: Sendable {
    var documents: [AttachedVEX]
    var image: ImageKey
    var registryHost: String

    static let none = ScopedVEX(documents: [], image: ImageKey(registryID: UUID(), repository: "", digest: ""), registryHost: "")

    func suppression(of finding: Finding) -> VEXSuppression? {
        guard let (document, statement) = statement(of: finding) else { return nil }
        var words = "VEX \(document.documentID): \(statement.status.rawValue)"
        if let justification = statement.justification { words += " (\(justification))" }
        if let impact = statement.impactStatement { words += ": \(impact)" }
        return VEXSuppression(documentID: document.id, justification: words)
    }

    /// The first `not_affected` or `fixed` statement that matches the finding, with its document.
    func statement(of finding: Finding) -> (AttachedVEX, VEXStatement)? {
        for document in documents {
            for statement in document.statements where statement.status == .notAffected || statement.status == .fixed {
                guard VEXMatcher.names(statement, finding) else { continue }
                if statement.products.contains(where: { VEXMatcher.matches($0, finding: finding, image: image, host: registryHost) }) {
                    return (document, statement)
                }
            }
        }
        return nil
    }
}

enum VEXMatcher {
    static func names(_ statement: VEXStatement, _ finding: Finding) -> Bool {
        let known = [finding.vulnerabilityId] + finding.cves + (finding.aliases ?? [])
        let named = [statement.vulnerability] + statement.aliases
        return named.contains { name in known.contains { $0.caseInsensitiveCompare(name) == .orderedSame } }
    }

    static func matches(_ product: VEXProduct, finding: Finding, image: ImageKey, host: String) -> Bool {
        if let platform = product.platform, let namespace = finding.namespace, platformNamespace(platform) != namespace.lowercased() {
            return false
        }
        if isImage(product, image: image, host: host) {
            guard let subcomponents = product.subcomponents, !subcomponents.isEmpty else { return true }
            return subcomponents.contains { ParsedPackageURL($0).map { package($0, finding) } ?? false }
        }
        let purls = (product.purls ?? []).compactMap(ParsedPackageURL.init)
        if purls.contains(where: { $0.type != "oci" && package($0, finding) }) { return true }
        if purls.isEmpty, product.hashes?.isEmpty ?? true, let name = product.name {
            return [finding.packageName, finding.sourceName].compactMap { $0 }
                .contains { $0.caseInsensitiveCompare(name) == .orderedSame }
        }
        return false
    }

    /// Whether the product is the image: its digest, or an OCI purl of it (purl-spec `oci` type: the name is the
    /// repository's last segment, `repository_url` the full one, the version the digest).
    static func isImage(_ product: VEXProduct, image: ImageKey, host: String) -> Bool {
        let digest = image.digest.lowercased()
        if (product.hashes ?? []).contains(where: { $0.lowercased() == digest }) || product.id.lowercased() == digest { return true }
        if product.id == "\(host)/\(image.repository)@\(image.digest)" { return true }
        for purl in (product.purls ?? []).compactMap(ParsedPackageURL.init) where purl.type == "oci" {
            let lastSegment = image.repository.split(separator: "/").last.map(String.init) ?? image.repository
            guard purl.name.lowercased() == lastSegment.lowercased() else { continue }
            if let url = purl.qualifiers["repository_url"] {
                let full = url.lowercased()
                guard full == "\(host)/\(image.repository)".lowercased() || full.hasSuffix("/" + image.repository.lowercased())
                        || full == image.repository.lowercased() else { continue }
            }
            guard let version = purl.version else { return true }
            if version.lowercased() == digest { return true }
        }
        return false
    }

    /// `rhel:<major>` for a mainline RHEL platform CPE (`cpe:/o:redhat:enterprise_linux:6`, `cpe:2.3:o:redhat:enterprise_linux:9:…`),
    /// the namespace the scanner gives RHEL findings; nil for any other platform (layered products, extended streams),
    /// whose statements then apply only to findings without a namespace.
    static func platformNamespace(_ cpe: String) -> String? {
        let fields: [Substring]
        if cpe.hasPrefix("cpe:/") {
            fields = cpe.dropFirst(5).split(separator: ":", omittingEmptySubsequences: false)
        } else if cpe.hasPrefix("cpe:2.3:") {
            fields = cpe.dropFirst(8).split(separator: ":", omittingEmptySubsequences: false)
        } else {
            return nil
        }
        guard fields.count >= 4, fields[1] == "redhat", fields[2] == "enterprise_linux" else { return nil }
        let major = fields[3].prefix { $0.isASCII && $0.isNumber }
        return major.isEmpty ? nil : "rhel:\(major)"
    }

    static let osTypes: Set<String> = ["deb", "rpm", "apk", "alpm"]

    /// Whether a package purl names the finding's package.
    static func package(_ purl: ParsedPackageURL, _ finding: Finding) -> Bool {
        let own = finding.purl.flatMap(ParsedPackageURL.init)
        let source = purl.qualifiers["arch"].map { ["source", "src"].contains($0.lowercased()) } ?? false
        let names = source ? [finding.sourceName ?? finding.packageName] : [finding.packageName, own?.name].compactMap { $0 }
        guard names.contains(where: { $0.caseInsensitiveCompare(purl.name) == .orderedSame }) else { return false }
        if let own {
            guard own.type == purl.type else { return false }
            if !osTypes.contains(purl.type), (own.namespace ?? "").lowercased() != (purl.namespace ?? "").lowercased() { return false }
            if !source, let mine = own.qualifiers["arch"], let theirs = purl.qualifiers["arch"], mine != theirs { return false }
        }
        guard let version = purl.version else { return true }
        let installed = [finding.installedVersion, own?.version].compactMap { $0 }
        // A source package's version is its binaries' in dpkg and rpm unless rebuilt: the installed one stands for it.
        return installed.contains { epochless($0) == epochless(version) }
    }

    private static func epochless(_ version: String) -> String {
        version.hasPrefix("0:") ? String(version.dropFirst(2)) : version
    }
}
