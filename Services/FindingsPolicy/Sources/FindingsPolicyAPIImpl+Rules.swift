import FindingsPolicyAPI
import Foundation
import GantryRuntime
import PostgresNIO

/// Disable rules and their audit log. Every change re-evaluates the images of the rule's scope (before and
/// after the change) in the same transaction, so the response already reflects it.
// Only Security Admins and Owners may manage rules (`AccessPolicy.findingsPolicy`); the audit actor is the
// caller's token subject (`Self.actor()`), never a request header.
extension FindingsPolicyAPIImpl {
    func listRules(_ input: Operations.ListRules.Input) async throws -> Operations.ListRules.Output {
        let tenantID = try Validate.uuid(input.path.tenantId, field: "tenantId")
        let subscriptionID = try Validate.uuid(input.path.subscriptionId, field: "subscriptionId")
        let store = self.store
        let rules = try await runtime.database.withTenant(tenantID, logger: runtime.logger) { connection in
            try await store.rules(tenantID: tenantID, subscriptionID: subscriptionID, on: connection)
        }
        let now = Date()
        return .ok(.init(body: .json(.init(items: rules.map { $0.schema(now: now) }))))
    }

    func getRule(_ input: Operations.GetRule.Input) async throws -> Operations.GetRule.Output {
        let tenantID = try Validate.uuid(input.path.tenantId, field: "tenantId")
        let subscriptionID = try Validate.uuid(input.path.subscriptionId, field: "subscriptionId")
        let ruleID = try Validate.uuid(input.path.ruleId, field: "ruleId")
        let store = self.store
        guard let rule = try await runtime.database.withTenant(tenantID, logger: runtime.logger, { connection in
            try await store.rule(tenantID: tenantID, subscriptionID: subscriptionID, id: ruleID, on: connection)
        }) else {
            throw Self.noRule(ruleID, subscriptionID)
        }
        return .ok(.init(body: .json(rule.schema())))
    }

    func createRule(_ input: Operations.CreateRule.Input) async throws -> Operations.CreateRule.Output {
        let tenantID = try Validate.uuid(input.path.tenantId, field: "tenantId")
        let subscriptionID = try Validate.uuid(input.path.subscriptionId, field: "subscriptionId")
        let actor = try Self.actor()
        guard case .json(let body) = input.body else { throw ProblemError.badRequest("expected a JSON body") }
        let now = Date()
        let (scope, criteria, justification, expiresAt) = try RuleValidation.validate(body, now: now)
        let rule = DisableRule(id: UUID(), subscriptionID: subscriptionID, scope: scope, criteria: criteria,
                               justification: justification, expiresAt: expiresAt, expiredAt: nil, createdAt: now,
                               createdBy: actor, updatedAt: now, updatedBy: actor)
        let store = self.store
        let engine = self.engine
        try await change(tenantID: tenantID, subscriptionID: subscriptionID) { connection in
            try await store.save(rule, tenantID: tenantID, on: connection)
            let affected = try await engine.reevaluate(tenantID: tenantID, subscriptionID: subscriptionID, scopes: [scope],
                                                       on: connection)
            try await store.audit(.created, rule: rule, tenantID: tenantID, actor: actor, affectedImages: affected, on: connection)
        }
        return .created(.init(body: .json(rule.schema(now: now))))
    }

    func replaceRule(_ input: Operations.ReplaceRule.Input) async throws -> Operations.ReplaceRule.Output {
        let tenantID = try Validate.uuid(input.path.tenantId, field: "tenantId")
        let subscriptionID = try Validate.uuid(input.path.subscriptionId, field: "subscriptionId")
        let ruleID = try Validate.uuid(input.path.ruleId, field: "ruleId")
        let actor = try Self.actor()
        guard case .json(let body) = input.body else { throw ProblemError.badRequest("expected a JSON body") }
        let now = Date()
        let (scope, criteria, justification, expiresAt) = try RuleValidation.validate(body, now: now)
        let store = self.store
        let engine = self.engine
        let replaced = try await change(tenantID: tenantID, subscriptionID: subscriptionID) { connection -> DisableRule in
            guard var rule = try await store.rule(tenantID: tenantID, subscriptionID: subscriptionID, id: ruleID, on: connection) else {
                throw Self.noRule(ruleID, subscriptionID)
            }
            let before = rule.scope
            rule.scope = scope
            rule.criteria = criteria
            rule.justification = justification
            rule.expiresAt = expiresAt
            rule.expiredAt = nil
            rule.updatedAt = now
            rule.updatedBy = actor
            try await store.save(rule, tenantID: tenantID, on: connection)
            let affected = try await engine.reevaluate(tenantID: tenantID, subscriptionID: subscriptionID,
                                                       scopes: [before, scope], on: connection)
            try await store.audit(.replaced, rule: rule, tenantID: tenantID, actor: actor, affectedImages: affected, on: connection)
            return rule
        }
        return .ok(.init(body: .json(replaced.schema(now: now))))
    }

    func deleteRule(_ input: Operations.DeleteRule.Input) async throws -> Operations.DeleteRule.Output {
        let tenantID = try Validate.uuid(input.path.tenantId, field: "tenantId")
        let subscriptionID = try Validate.uuid(input.path.subscriptionId, field: "subscriptionId")
        let ruleID = try Validate.uuid(input.path.ruleId, field: "ruleId")
        let actor = try Self.actor()
        let store = self.store
        let engine = self.engine
        try await change(tenantID: tenantID, subscriptionID: subscriptionID) { connection in
            guard let rule = try await store.rule(tenantID: tenantID, subscriptionID: subscriptionID, id: ruleID, on: connection) else {
                throw Self.noRule(ruleID, subscriptionID)
            }
            try await store.delete(ruleID: ruleID, tenantID: tenantID, on: connection)
            let affected = try await engine.reevaluate(tenantID: tenantID, subscriptionID: subscriptionID, scopes: [rule.scope],
                                                       on: connection)
            try await store.audit(.deleted, rule: rule, tenantID: tenantID, actor: actor, affectedImages: affected, on: connection)
        }
        return .noContent(.init())
    }

    func listAuditEvents(_ input: Operations.ListAuditEvents.Input) async throws -> Operations.ListAuditEvents.Output {
        let tenantID = try Validate.uuid(input.path.tenantId, field: "tenantId")
        let subscriptionID = try Validate.uuid(input.path.subscriptionId, field: "subscriptionId")
        let ruleID = try input.query.ruleId.map { try Validate.uuid($0, field: "ruleId") }
        let limit = try Self.count(input.query.limit, field: "limit")
        let store = self.store
        let events = try await runtime.database.withTenant(tenantID, logger: runtime.logger) { connection in
            try await store.auditEvents(tenantID: tenantID, subscriptionID: subscriptionID, ruleID: ruleID, limit: limit,
                                        on: connection)
        }
        return .ok(.init(body: .json(.init(items: events))))
    }

    /// Runs a rule change in one transaction of the tenant (`withTenant`, row-level security) holding the
    /// subscription's lock; a thrown problem rolls it back, so nothing of a refused change is stored.
    func change<T: Sendable>(tenantID: UUID, subscriptionID: UUID,
                                     _ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        let store = self.store
        return try await runtime.database.withTenant(tenantID, logger: runtime.logger) { connection in
            try await store.lock(subscription: subscriptionID, on: connection)
            return try await body(connection)
        }
    }

    static func noRule(_ ruleID: UUID, _ subscriptionID: UUID) -> ProblemError {
        .notFound("disable rule \(ruleID.uuidString.lowercased()) does not exist in subscription \(subscriptionID.uuidString.lowercased())")
    }
}
