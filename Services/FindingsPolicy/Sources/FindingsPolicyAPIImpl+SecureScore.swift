import FindingsPolicyAPI
import Foundation
import GantryRuntime
import PostgresNIO

/// The secure score (formula: `SecureScore`) of a subscription and its registries, and its history.
extension FindingsPolicyAPIImpl {
    func getSecureScore(_ input: Operations.GetSecureScore.Input) async throws -> Operations.GetSecureScore.Output {
        let tenantID = try Validate.uuid(input.path.tenantId, field: "tenantId")
        let subscriptionID = try Validate.uuid(input.path.subscriptionId, field: "subscriptionId")
        let store = self.store
        let scores = try await runtime.database.withTenant(tenantID, logger: runtime.logger) { connection in
            try await store.scores(tenantID: tenantID, subscriptionID: subscriptionID, on: connection)
        }
        let now = Date()
        func schema(_ registry: UUID?, _ host: String?, _ score: SecureScore) -> Components.Schemas.SecureScore {
            .init(registryId: registry?.uuidString.lowercased(), registryHost: host, score: score.score,
                  healthyImages: score.healthy, unhealthyImages: score.unhealthy, notApplicableImages: score.notApplicable,
                  unhealthyWeight: score.unhealthyWeight, computedAt: now)
        }
        let subscription = scores[nil].map { schema(nil, nil, $0.score) } ?? schema(nil, nil, SecureScore())
        let registries = scores.compactMap { registry, entry in registry.map { ($0, entry) } }
            .sorted { ($0.1.host ?? "", $0.0.uuidString) < ($1.1.host ?? "", $1.0.uuidString) }
            .map { schema($0.0, $0.1.host, $0.1.score) }
        return .ok(.init(body: .json(.init(subscription: subscription, registries: registries))))
    }

    func listSecureScoreHistory(_ input: Operations.ListSecureScoreHistory.Input) async throws
        -> Operations.ListSecureScoreHistory.Output {
        let tenantID = try Validate.uuid(input.path.tenantId, field: "tenantId")
        let subscriptionID = try Validate.uuid(input.path.subscriptionId, field: "subscriptionId")
        let registryID = try input.query.registryId.map { try Validate.uuid($0, field: "registryId") }
        let limit = try Self.count(input.query.limit, field: "limit")
        let store = self.store
        let items = try await runtime.database.withTenant(tenantID, logger: runtime.logger) { connection in
            try await store.scoreHistory(tenantID: tenantID, subscriptionID: subscriptionID, registryID: registryID, limit: limit,
                                         on: connection)
        }
        return .ok(.init(body: .json(.init(items: items))))
    }
}
