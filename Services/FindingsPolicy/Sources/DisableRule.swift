import FindingsPolicyAPI
import Foundation
import GantryModel
import GantryRuntime

typealias Finding = Components.Schemas.Finding
typealias RuleCriteria = Components.Schemas.RuleCriteria

/// An image as findings-policy keys it: a digest in a repository of a registry.
struct ImageKey: Hashable, Sendable, CustomStringConvertible {
    var registryID: UUID
    var repository: String
    var digest: String

    var description: String { "\(repository)@\(digest) in registry \(registryID.uuidString.lowercased())" }
}

/// Which images a disable rule applies to.
struct RuleScope: Hashable, Sendable {
    var kind: Components.Schemas.RuleScopeKind
    var registryID: UUID?
    var repository: String?
    var digest: String?

    /// True when `image` lies inside the scope.
    func applies(to image: ImageKey) -> Bool {
        if let registryID, registryID != image.registryID { return false }
        if let repository, repository != image.repository { return false }
        if let digest, digest != image.digest { return false }
        return true
    }

    var schema: Components.Schemas.RuleScope {
        .init(kind: kind, registryId: registryID?.uuidString.lowercased(), repository: repository, imageDigest: digest)
    }
}

/// A stored disable rule.
struct DisableRule: Sendable, Equatable {
    var id: UUID
    var subscriptionID: UUID
    var scope: RuleScope
    var criteria: RuleCriteria
    var justification: String
    var expiresAt: Date?
    /// When the expiry check processed the rule; nil while it applies.
    var expiredAt: Date?
    var createdAt: Date
    var createdBy: String
    var updatedAt: Date
    var updatedBy: String

    /// True when the rule exempts findings at `now`.
    func isActive(at now: Date) -> Bool {
        expiredAt == nil && (expiresAt.map { $0 > now } ?? true)
    }

    func schema(now: Date = Date()) -> Components.Schemas.DisableRule {
        .init(id: id.uuidString.lowercased(), subscriptionId: subscriptionID.uuidString.lowercased(), scope: scope.schema,
              criteria: criteria, justification: justification, expiresAt: expiresAt,
              state: isActive(at: now) ? .active : .expired, createdAt: createdAt, createdBy: createdBy,
              updatedAt: updatedAt, updatedBy: updatedBy)
    }
}

/// Whether a disable rule's criteria match a finding (findings-policy.yaml, description: "Disable rules").
///
/// A finding matches when it satisfies every criterion the rule sets; a list criterion is satisfied when any
/// of its values is. Text comparisons ignore case. Criteria are the seed product's (finding ID, category,
/// security check, CVSS v3 range, severity, patchable) plus Gantry's CVE and package name.
enum RuleMatcher {
    static func matches(_ criteria: RuleCriteria, _ finding: Finding) -> Bool {
        if let ids = criteria.findingIds, !ids.contains(where: { same($0, finding.vulnerabilityId) }) { return false }
        if let cves = criteria.cves {
            let known = [finding.vulnerabilityId] + finding.cves + (finding.aliases ?? [])
            guard cves.contains(where: { cve in known.contains { same($0, cve) } }) else { return false }
        }
        if let categories = criteria.categories,
           !categories.contains(where: { same($0, FindingText.category(of: finding)) }) { return false }
        if let checks = criteria.securityChecks {
            let title = FindingText.displayName(of: finding)
            guard checks.contains(where: { title.range(of: $0, options: [.caseInsensitive, .diacriticInsensitive]) != nil })
            else { return false }
        }
        if let range = criteria.cvssV3 {
            guard let score = finding.cvssV3Score, score >= (range.min ?? 0), score <= (range.max ?? 10) else { return false }
        }
        if let severities = criteria.severities, !severities.contains(finding.severity) { return false }
        if let patchable = criteria.patchable, patchable != finding.patchable { return false }
        if let names = criteria.packageNames {
            let packages = [finding.packageName] + (finding.sourceName.map { [$0] } ?? [])
            guard names.contains(where: { name in packages.contains { same($0, name) } }) else { return false }
        }
        return true
    }

    private static func same(_ a: String, _ b: String) -> Bool {
        a.caseInsensitiveCompare(b) == .orderedSame
    }
}

/// Checks a rule from the API: every failure is a 400 problem naming the field; nothing is stored before it passes.
enum RuleValidation {
    static let maxValues = 100
    static let maxJustification = 2000

    /// The scope, normalised criteria (empty lists dropped, values trimmed), justification and expiry of `input`.
    /// - Throws: `ProblemError` 400 for an empty justification, an inverted or out-of-range CVSS range, an expiry
    ///   not in the future, a malformed CVE, a scope missing or carrying the wrong fields, or no criterion at all.
    static func validate(_ input: Components.Schemas.DisableRuleInput, now: Date = Date())
        throws -> (RuleScope, RuleCriteria, String, Date?) {
        let justification = try Validate.text(input.justification, field: "justification", maxLength: maxJustification)
        if let expiresAt = input.expiresAt, expiresAt <= now {
            throw ProblemError.badRequest(
                "expiresAt \(ISO8601DateFormatter().string(from: expiresAt)) is not in the future; a rule must expire later than now")
        }
        return (try scope(input.scope), try criteria(input.criteria), justification, input.expiresAt)
    }

    static func scope(_ input: Components.Schemas.RuleScope) throws -> RuleScope {
        let registryID = try input.registryId.map { try Validate.uuid($0, field: "scope.registryId") }
        let repository = try input.repository.map { try Validate.repository($0, field: "scope.repository") }
        let digest = try input.imageDigest.map { try Validate.digest($0, field: "scope.imageDigest").description }
        func refuse(_ field: String, _ present: Bool) throws {
            if present { throw ProblemError.badRequest("scope.\(field) does not belong in a \(input.kind.rawValue) scope") }
        }
        func require(_ field: String, _ present: Bool) throws {
            if !present { throw ProblemError.badRequest("a \(input.kind.rawValue) scope requires scope.\(field)") }
        }
        switch input.kind {
        case .subscription:
            try refuse("registryId", registryID != nil)
            try refuse("repository", repository != nil)
            try refuse("imageDigest", digest != nil)
        case .registry:
            try require("registryId", registryID != nil)
            try refuse("repository", repository != nil)
            try refuse("imageDigest", digest != nil)
        case .repository:
            try require("registryId", registryID != nil)
            try require("repository", repository != nil)
            try refuse("imageDigest", digest != nil)
        case .image:
            try require("imageDigest", digest != nil)
            if repository != nil { try require("registryId", registryID != nil) }
        }
        return RuleScope(kind: input.kind, registryID: registryID, repository: repository, digest: digest)
    }

    static func criteria(_ input: RuleCriteria) throws -> RuleCriteria {
        var criteria = RuleCriteria()
        criteria.findingIds = try texts(input.findingIds, field: "criteria.findingIds")
        criteria.cves = try texts(input.cves, field: "criteria.cves")?.map { cve in
            guard cve.range(of: #"^CVE-[0-9]{4}-[0-9]{4,}$"#, options: [.regularExpression, .caseInsensitive]) != nil else {
                throw ProblemError.badRequest("criteria.cves: '\(cve.prefix(100))' is not a CVE ID (CVE-YYYY-NNNN)")
            }
            return cve.uppercased()
        }
        criteria.categories = try texts(input.categories, field: "criteria.categories")
        criteria.securityChecks = try texts(input.securityChecks, field: "criteria.securityChecks")
        criteria.packageNames = try texts(input.packageNames, field: "criteria.packageNames")
        if let severities = input.severities, !severities.isEmpty {
            guard severities.count <= maxValues else {
                throw ProblemError.badRequest("criteria.severities has more than \(maxValues) values")
            }
            criteria.severities = Array(Set(severities)).sorted { Severity.allCases.firstIndex(of: $0)! < Severity.allCases.firstIndex(of: $1)! }
        }
        criteria.patchable = input.patchable
        if let range = input.cvssV3 {
            guard range.min != nil || range.max != nil else {
                throw ProblemError.badRequest("criteria.cvssV3 needs min, max or both")
            }
            for (name, value) in [("min", range.min), ("max", range.max)] {
                if let value, !(0...10).contains(value) {
                    throw ProblemError.badRequest("criteria.cvssV3.\(name) \(value) is outside the CVSS range 0–10")
                }
            }
            if let min = range.min, let max = range.max, min > max {
                throw ProblemError.badRequest("criteria.cvssV3 is inverted: min \(min) is greater than max \(max)")
            }
            criteria.cvssV3 = range
        }
        guard criteria != RuleCriteria() else {
            throw ProblemError.badRequest(
                "criteria must set at least one of findingIds, cves, categories, securityChecks, cvssV3, severities, patchable, packageNames")
        }
        return criteria
    }

    /// Trimmed, non-empty values without duplicates; nil for an absent or empty list.
    private static func texts(_ values: [String]?, field: String) throws -> [String]? {
        guard let values, !values.isEmpty else { return nil }
        guard values.count <= maxValues else { throw ProblemError.badRequest("\(field) has more than \(maxValues) values") }
        var seen = Set<String>()
        var result: [String] = []
        for value in values {
            let text = try Validate.text(value, field: field)
            if seen.insert(text.lowercased()).inserted { result.append(text) }
        }
        return result
    }
}
