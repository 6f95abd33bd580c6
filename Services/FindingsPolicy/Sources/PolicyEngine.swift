import FindingsPolicyAPI
import Foundation
import GantryRuntime
import Logging
import PostgresNIO

/// Re-evaluates stored assessments against the rules in force and the VEX documents attached: after a rule is
/// created, replaced, deleted or expires, a VEX document is attached or detached, and for rows stored before
/// findings rows existed.
struct PolicyEngine: Sendable {
    let database: PostgresClient
    let store: PostgresPolicyStore
    let logger: Logger

    /// Re-evaluates the subscription's images inside `scopes` in the caller's transaction (which holds the
    /// subscription's lock); queues an alert for each image that becomes Unhealthy and records changed scores.
    /// - Returns: how many images' assessments changed.
    func reevaluate(tenantID: UUID, subscriptionID: UUID, scopes: [RuleScope],
                    on connection: PostgresConnection) async throws -> Int {
        let rules = try await store.rules(tenantID: tenantID, subscriptionID: subscriptionID, activeAt: Date(), on: connection)
        let images = try await store.images(tenantID: tenantID, subscriptionID: subscriptionID, in: scopes, on: connection)
        let vex = try await store.vexDocuments(tenantID: tenantID, subscriptionID: subscriptionID, on: connection).map(\.attached)
        var changed = 0
        for image in images {
            let evaluation = Assessor.evaluate(image.report, rules: rules.filter { $0.scope.applies(to: image.key) },
                                               vex: ScopedVEX(documents: vex, image: image.key, registryHost: image.registryHost),
                                               policy: store.policy)
            guard try await store.update(image, evaluation: evaluation, on: connection) else { continue }
            changed += 1
            // Alerts follow the report's rule (a change to Unhealthy), here caused by a rule going away.
            if image.evaluated, evaluation.status.code == .unhealthy, image.status.code != .unhealthy {
                try await store.alertUnhealthy(
                    image, evaluation: evaluation,
                    messageID: "alert:image-unhealthy:\(UUID().uuidString.lowercased()):\(image.key.digest)", on: connection)
            }
        }
        if changed > 0 { try await store.recordScores(tenantID: tenantID, subscriptionID: subscriptionID, on: connection) }
        return changed
    }

    /// Processes up to `limit` expired rules, each in its own transaction: marks it expired, re-evaluates its
    /// scope and audits the change as `system`. Returns how many it processed.
    func expireDueRules(limit: Int = 16) async throws -> Int {
        // Claims across tenants (system access); each rule is then processed as its own tenant.
        let due = try await database.withSystemAccess(logger: logger) { connection in
            try await store.dueExpiries(limit: limit, on: connection)
        }
        var processed = 0
        for (tenantID, subscriptionID, ruleID) in due {
            let done = try await database.withTenant(tenantID, logger: logger) { connection -> Bool in
                try await store.lock(subscription: subscriptionID, on: connection)
                // Another replica may have processed it while this one waited for the lock.
                guard var rule = try await store.rule(tenantID: tenantID, subscriptionID: subscriptionID, id: ruleID, on: connection),
                      rule.expiredAt == nil, let expiresAt = rule.expiresAt, expiresAt <= Date() else { return false }
                rule.expiredAt = Date()
                try await store.save(rule, tenantID: tenantID, on: connection)
                let affected = try await reevaluate(tenantID: tenantID, subscriptionID: subscriptionID, scopes: [rule.scope],
                                                    on: connection)
                try await store.audit(.expired, rule: rule, tenantID: tenantID, actor: "system", affectedImages: affected,
                                      on: connection)
                return true
            }
            if done {
                processed += 1
                logger.info("disable rule expired", metadata: ["rule": "\(ruleID)", "subscription": "\(subscriptionID)"])
            }
        }
        return processed
    }

    /// Evaluates up to `limit` images stored before findings rows existed. Returns how many.
    func evaluateStoredImages(limit: Int = 50) async throws -> Int {
        let pending = try await database.withSystemAccess(logger: logger) { connection in
            try await store.unevaluatedImages(limit: limit, on: connection)
        }
        let bySubscription = Dictionary(grouping: pending) { $0.subscriptionID }
        for (subscriptionID, images) in bySubscription {
            guard let tenantID = images.first?.tenantID else { continue }
            _ = try await database.withTenant(tenantID, logger: logger) { connection in
                try await store.lock(subscription: subscriptionID, on: connection)
                return try await reevaluate(
                    tenantID: tenantID, subscriptionID: subscriptionID,
                    scopes: images.map { RuleScope(kind: .image, registryID: $0.key.registryID, repository: $0.key.repository,
                                                   digest: $0.key.digest) },
                    on: connection)
            }
        }
        return pending.count
    }
}
