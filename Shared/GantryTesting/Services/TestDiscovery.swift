import Discovery
import Foundation
import GantryRuntime
import NIOHTTP1
import ServiceLifecycle

/// A tenant with one subscription, created through the public routes of a real discovery service.
///
/// Every service but discovery answers 404 on a route whose `{subscriptionId}` is not the `{tenantId}`'s, as
/// discovery states it (`SubscriptionOwnership`, issue 6); service tests therefore register their tenants and
/// subscriptions in the discovery running beside them rather than inventing IDs.
package struct TestSubscription: Sendable, Hashable {
    /// The tenant's UUID, lowercase.
    package let tenantID: String
    /// The subscription's UUID, lowercase.
    package let subscriptionID: String

    /// `/v1/tenants/<tenant>/subscriptions/<subscription>`.
    package var path: String { "/v1/tenants/\(tenantID)/subscriptions/\(subscriptionID)" }

    /// Creates a tenant (unique name) with one subscription of the environment's cloud in the discovery of `env`,
    /// which must be running; with `planEnabled`, enables its plan.
    /// - Throws: `TestServiceError` with discovery's answer when a call fails.
    package static func create(in env: TestEnvironment, planEnabled: Bool = false) async throws -> TestSubscription {
        let base = env.url(.discovery).absoluteString
        let tenant = try await TestHTTP.json(.POST, "\(base)/v1/tenants", ["name": "test-\(UUID().uuidString.lowercased())"])
        guard tenant.status == 201, let tenantID = (try? tenant.json() as? [String: Any])?["id"] as? String else {
            throw TestServiceError("discovery did not create a tenant: \(tenant.status) \(tenant.text)")
        }
        return try await create(in: env, tenantID: tenantID, planEnabled: planEnabled)
    }

    /// Creates another subscription of the existing tenant `tenantID` in the discovery of `env`.
    /// - Throws: `TestServiceError` with discovery's answer when a call fails.
    package static func create(in env: TestEnvironment, tenantID: String, planEnabled: Bool = false) async throws -> TestSubscription {
        let base = env.url(.discovery).absoluteString
        let subscription = try await TestHTTP.json(.POST, "\(base)/v1/tenants/\(tenantID)/subscriptions",
                                                   ["name": "subscription-\(UUID().uuidString.lowercased())",
                                                    "cloudType": env.environment["GANTRY_CLOUD"] ?? "commercial"])
        guard subscription.status == 201,
              let subscriptionID = (try? subscription.json() as? [String: Any])?["id"] as? String else {
            throw TestServiceError("discovery did not create a subscription: \(subscription.status) \(subscription.text)")
        }
        let created = TestSubscription(tenantID: tenantID.lowercased(), subscriptionID: subscriptionID.lowercased())
        if planEnabled {
            let plan = try await TestHTTP.json(.PUT, "\(base)\(created.path)/plan", ["enabled": true])
            guard plan.status == 200 else { throw TestServiceError("discovery did not enable the plan: \(plan.status) \(plan.text)") }
        }
        return created
    }
}

extension TestEnvironment {
    /// The real discovery service of this environment (its database, port and keys), to run with
    /// `withRunningServices` beside the service under test; list `ports[.discovery]` among the ready ports.
    package func discoveryApplication() async throws -> any Service {
        try await buildDiscoveryApplication(configuration: configuration(.discovery))
    }

    /// Discovery's port, to wait for.
    package var discoveryPort: Int { ports[.discovery] ?? 0 }
}
