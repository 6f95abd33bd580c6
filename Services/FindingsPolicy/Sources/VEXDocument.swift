import FindingsPolicyAPI
import Foundation
import GantryRuntime

typealias VEXStatement = Components.Schemas.VexStatement
typealias VEXProduct = Components.Schemas.VexProduct

/// A VEX document reduced to what matching needs: its identity and its statements.
struct ParsedVEX: Sendable, Equatable {
    var format: Components.Schemas.VexDocument.FormatPayload
    /// OpenVEX `@id`, or CSAF `document.tracking.id`.
    var documentID: String
    var author: String?
    var version: String?
    var issuedAt: Date?
    var statements: [VEXStatement]
}

/// Parses OpenVEX 0.2.0 (https://github.com/openvex/spec, `OPENVEX-SPEC.md` v0.2.0) and CSAF 2.0 VEX
/// (OASIS CSAF 2.0, section 4.5 "Profile 5: VEX") documents from their JSON.
///
/// The format is told by the document itself: an `@context` under `https://openvex.dev/ns` is OpenVEX,
/// a `document.csaf_version` is CSAF. Everything a statement needs to be applied safely is checked:
/// - Throws: `ProblemError` 400 naming the offending field for JSON that does not parse, a document of neither
///   format, an OpenVEX context other than v0.2.0, a CSAF category other than `csaf_vex`, a statement without a
///   vulnerability or products, an unknown status, an OpenVEX `not_affected` statement with neither
///   `justification` nor `impact_statement` (spec: "MUST"), an OpenVEX justification outside the spec's five,
///   or a CSAF product ID that the product tree does not define.
enum VEXParser {
    static let maxStatements = 10_000

    static func parse(_ data: Data) throws -> ParsedVEX {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw ProblemError.badRequest("the VEX document is not JSON: \(error.localizedDescription)")
        }
        guard let top = object as? [String: Any] else { throw ProblemError.badRequest("the VEX document is not a JSON object") }
        if let context = top["@context"] as? String, context.hasPrefix("https://openvex.dev/ns") {
            guard context == "https://openvex.dev/ns/v0.2.0" || context == "https://openvex.dev/ns" else {
                throw ProblemError.badRequest("@context '\(context.prefix(100))' is not OpenVEX v0.2.0 (https://openvex.dev/ns/v0.2.0)")
            }
            return try openVEX(data)
        }
        if let document = top["document"] as? [String: Any], document["csaf_version"] != nil {
            return try csaf(data)
        }
        throw ProblemError.badRequest(
            "the document is neither OpenVEX (@context https://openvex.dev/ns/v0.2.0) nor CSAF (document.csaf_version)")
    }

    // MARK: OpenVEX

    private struct OpenVEX: Decodable {
        struct Vulnerability: Decodable {
            var id: String?
            var name: String
            var aliases: [String]?
            enum CodingKeys: String, CodingKey { case id = "@id", name, aliases }
        }
        struct Identifiers: Decodable {
            var purl: String?
        }
        struct Component: Decodable {
            var id: String?
            var identifiers: Identifiers?
            var hashes: [String: String]?
            enum CodingKeys: String, CodingKey { case id = "@id", identifiers, hashes }
        }
        struct Product: Decodable {
            var id: String?
            var identifiers: Identifiers?
            var hashes: [String: String]?
            var subcomponents: [Component]?
            enum CodingKeys: String, CodingKey { case id = "@id", identifiers, hashes, subcomponents }
        }
        struct Statement: Decodable {
            var vulnerability: Vulnerability
            var products: [Product]?
            var status: String
            var justification: String?
            var impact_statement: String?
        }
        var id: String
        var author: String
        var timestamp: String
        var version: Int?
        var statements: [Statement]
        enum CodingKeys: String, CodingKey { case id = "@id", author, timestamp, version, statements }
    }

    /// OpenVEX v0.2.0, section "Status Justifications".
    static let openVEXJustifications: Set<String> = [
        "component_not_present", "vulnerable_code_not_present", "vulnerable_code_not_in_execute_path",
        "vulnerable_code_cannot_be_controlled_by_adversary", "inline_mitigations_already_exist",
    ]

    private static func openVEX(_ data: Data) throws -> ParsedVEX {
        let document: OpenVEX
        do {
            document = try JSONDecoder().decode(OpenVEX.self, from: data)
        } catch let error as DecodingError {
            throw ProblemError.badRequest("the OpenVEX document does not parse: \(describe(error))")
        }
        guard !document.statements.isEmpty else { throw ProblemError.badRequest("statements: an OpenVEX document needs at least one") }
        guard document.statements.count <= maxStatements else {
            throw ProblemError.badRequest("statements: more than \(maxStatements)")
        }
        var statements: [VEXStatement] = []
        for (index, statement) in document.statements.enumerated() {
            let field = "statements[\(index)]"
            let name = statement.vulnerability.name.trimmingCharacters(in: .whitespaces)
            guard !name.isEmpty else { throw ProblemError.badRequest("\(field).vulnerability.name must not be empty") }
            guard let status = VEXStatement.StatusPayload(rawValue: statement.status) else {
                throw ProblemError.badRequest(
                    "\(field).status '\(statement.status.prefix(40))' is not one of not_affected, affected, fixed, under_investigation")
            }
            if let justification = statement.justification, !openVEXJustifications.contains(justification) {
                throw ProblemError.badRequest("\(field).justification '\(justification.prefix(60))' is not an OpenVEX justification")
            }
            if status == .notAffected && statement.justification == nil && (statement.impact_statement ?? "").isEmpty {
                throw ProblemError.badRequest("\(field): a not_affected statement needs a justification or an impact_statement")
            }
            let products = (statement.products ?? []).map { product in
                VEXProduct(id: product.id ?? product.identifiers?.purl ?? "",
                           purls: [product.identifiers?.purl, product.id.flatMap { $0.hasPrefix("pkg:") ? $0 : nil }]
                               .compactMap { $0 }.uniqued(),
                           hashes: hashes(product.hashes, id: product.id),
                           subcomponents: (product.subcomponents ?? []).compactMap { $0.identifiers?.purl ?? $0.id })
            }.filter { !$0.id.isEmpty }
            guard !products.isEmpty else { throw ProblemError.badRequest("\(field).products: a statement needs at least one product") }
            statements.append(.init(
                vulnerability: name, aliases: aliases([name, statement.vulnerability.id].compactMap { $0 } + (statement.vulnerability.aliases ?? []),
                                                      excluding: name),
                status: status, justification: statement.justification, impactStatement: statement.impact_statement,
                products: products))
        }
        return ParsedVEX(format: .openvex, documentID: document.id, author: document.author, version: document.version.map(String.init),
                         issuedAt: Views.date(document.timestamp), statements: statements)
    }

    /// `sha256:…` digests from OpenVEX hashes (`sha-256` keys) or an `@id` that is a digest.
    private static func hashes(_ hashes: [String: String]?, id: String?) -> [String] {
        var digests = (hashes ?? [:]).compactMap { key, value in
            key.lowercased().replacingOccurrences(of: "-", with: "") == "sha256" ? "sha256:" + value.lowercased() : nil
        }
        if let id, id.hasPrefix("sha256:") { digests.append(id.lowercased()) }
        return digests.uniqued()
    }

    // MARK: CSAF

    private struct CSAF: Decodable {
        struct Helper: Decodable {
            var purl: String?
            var purls: [String]?
            var cpe: String?
        }
        struct FullProductName: Decodable {
            var name: String
            var product_id: String
            var product_identification_helper: Helper?
        }
        final class Branch: Decodable {
            var product: FullProductName?
            var branches: [Branch]?
        }
        struct Relationship: Decodable {
            var full_product_name: FullProductName
            var product_reference: String
            var relates_to_product_reference: String
        }
        struct ProductTree: Decodable {
            var branches: [Branch]?
            var full_product_names: [FullProductName]?
            var relationships: [Relationship]?
        }
        struct Publisher: Decodable { var name: String }
        struct Tracking: Decodable {
            var id: String
            var version: String?
            var current_release_date: String?
        }
        struct Document: Decodable {
            var category: String
            var csaf_version: String
            var publisher: Publisher
            var tracking: Tracking
        }
        struct ID: Decodable { var text: String }
        struct Flag: Decodable {
            var label: String
            var product_ids: [String]?
        }
        struct Threat: Decodable {
            var category: String
            var details: String
            var product_ids: [String]?
        }
        struct Vulnerability: Decodable {
            var cve: String?
            var ids: [ID]?
            var product_status: [String: [String]]?
            var flags: [Flag]?
            var threats: [Threat]?
        }
        var document: Document
        var product_tree: ProductTree?
        var vulnerabilities: [Vulnerability]?
    }

    /// CSAF 2.0 section 3.2.3.3.1 product status groups, as VEX statuses.
    private static let csafStatuses: [(String, VEXStatement.StatusPayload)] = [
        ("known_not_affected", .notAffected), ("fixed", .fixed), ("first_fixed", .fixed),
        ("known_affected", .affected), ("first_affected", .affected), ("last_affected", .affected),
        ("under_investigation", .underInvestigation),
    ]

    private static func csaf(_ data: Data) throws -> ParsedVEX {
        let document: CSAF
        do {
            document = try JSONDecoder().decode(CSAF.self, from: data)
        } catch let error as DecodingError {
            throw ProblemError.badRequest("the CSAF document does not parse: \(describe(error))")
        }
        guard document.document.csaf_version == "2.0" else {
            throw ProblemError.badRequest("document.csaf_version '\(document.document.csaf_version.prefix(20))' is not 2.0")
        }
        guard document.document.category == "csaf_vex" else {
            throw ProblemError.badRequest(
                "document.category '\(document.document.category.prefix(60))' is not csaf_vex (CSAF 2.0 section 4.5, profile VEX)")
        }
        // Every product the tree defines, by ID: a relationship's product is its component's package.
        var products: [String: VEXProduct] = [:]
        func add(_ name: CSAF.FullProductName) {
            let helper = name.product_identification_helper
            products[name.product_id] = .init(id: name.product_id, name: name.name,
                                              purls: ([helper?.purl].compactMap { $0 } + (helper?.purls ?? [])).uniqued(),
                                              hashes: [], subcomponents: [])
        }
        func walk(_ branches: [CSAF.Branch]?) {
            for branch in branches ?? [] {
                if let product = branch.product { add(product) }
                walk(branch.branches)
            }
        }
        walk(document.product_tree?.branches)
        document.product_tree?.full_product_names?.forEach(add)
        var cpes: [String: String] = [:]
        func cpe(_ name: CSAF.FullProductName) { if let value = name.product_identification_helper?.cpe { cpes[name.product_id] = value } }
        func walkCPEs(_ branches: [CSAF.Branch]?) {
            for branch in branches ?? [] {
                if let product = branch.product { cpe(product) }
                walkCPEs(branch.branches)
            }
        }
        walkCPEs(document.product_tree?.branches)
        document.product_tree?.full_product_names?.forEach(cpe)
        // A relationship puts a package on a platform: the package's purl, the platform's CPE.
        for relationship in document.product_tree?.relationships ?? [] {
            let component = products[relationship.product_reference]
            products[relationship.full_product_name.product_id] = .init(
                id: relationship.full_product_name.product_id, name: component?.name ?? relationship.full_product_name.name,
                purls: component?.purls ?? [], hashes: [], subcomponents: [],
                platform: cpes[relationship.relates_to_product_reference] ?? relationship.relates_to_product_reference)
        }
        guard let vulnerabilities = document.vulnerabilities, !vulnerabilities.isEmpty else {
            throw ProblemError.badRequest("vulnerabilities: a CSAF VEX document needs at least one (CSAF 2.0 section 4.5)")
        }
        var statements: [VEXStatement] = []
        for (index, vulnerability) in vulnerabilities.enumerated() {
            let field = "vulnerabilities[\(index)]"
            let ids = ([vulnerability.cve].compactMap { $0 } + (vulnerability.ids ?? []).map(\.text))
                .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            guard let name = ids.first else { throw ProblemError.badRequest("\(field) has neither cve nor ids") }
            let productStatus = vulnerability.product_status ?? [:]
            if productStatus.isEmpty { throw ProblemError.badRequest("\(field).product_status is missing (CSAF 2.0 section 4.5)") }
            for (group, status) in csafStatuses {
                guard let ids = productStatus[group], !ids.isEmpty else { continue }
                var byJustification: [String: [VEXProduct]] = [:]
                for productID in ids.uniqued() {
                    guard let product = products[productID] else {
                        throw ProblemError.badRequest("\(field).product_status.\(group): product '\(productID.prefix(100))' is not in the product_tree")
                    }
                    // CSAF 2.0 section 4.5: a known_not_affected product needs an impact statement (flag or threat).
                    let flag = vulnerability.flags?.first { $0.product_ids?.contains(productID) ?? false }?.label
                    let threat = vulnerability.threats?.first { $0.category == "impact" && ($0.product_ids?.contains(productID) ?? false) }?.details
                    let justification = status == .notAffected ? (flag ?? "") + "\u{1F}" + (threat ?? "") : "\u{1F}"
                    byJustification[justification, default: []].append(product)
                }
                for (key, products) in byJustification.sorted(by: { $0.key < $1.key }) {
                    let parts = key.split(separator: "\u{1F}", omittingEmptySubsequences: false).map(String.init)
                    statements.append(.init(vulnerability: name, aliases: aliases(ids, excluding: name), status: status,
                                            justification: parts[0].isEmpty ? nil : parts[0],
                                            impactStatement: parts.count > 1 && !parts[1].isEmpty ? parts[1] : nil,
                                            products: products))
                }
            }
            guard statements.count <= maxStatements else { throw ProblemError.badRequest("more than \(maxStatements) statements") }
        }
        let tracking = document.document.tracking
        return ParsedVEX(format: .csaf, documentID: tracking.id, author: document.document.publisher.name, version: tracking.version,
                         issuedAt: tracking.current_release_date.flatMap(Views.date), statements: statements)
    }

    // MARK: Helpers

    /// IDs other than `name`, with the CVE IDs inside alias URLs (`https://www.cve.org/CVERecord?id=CVE-…`) too.
    static func aliases(_ values: [String], excluding name: String) -> [String] {
        var result: [String] = []
        for value in values {
            result.append(value)
            if let range = value.range(of: #"CVE-[0-9]{4}-[0-9]{4,}"#, options: [.regularExpression, .caseInsensitive]) {
                result.append(value[range].uppercased())
            }
        }
        return result.filter { $0.caseInsensitiveCompare(name) != .orderedSame }.uniqued()
    }

    private static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let text = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return text.hasPrefix(".") ? String(text.dropFirst()) : text
        }
        switch error {
        case .keyNotFound(let key, let context):
            let at = path(context)
            return "\(at.isEmpty ? "" : at + ".")\(key.stringValue) is missing"
        case .typeMismatch(let type, let context), .valueNotFound(let type, let context):
            return "\(path(context)) is not a \(type)"
        case .dataCorrupted(let context):
            return "\(path(context)): \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }
}

extension Array where Element: Hashable {
    /// The elements in order, each once.
    func uniqued() -> [Element] {
        var seen = Set<Element>()
        return filter { seen.insert($0).inserted }
    }
}
