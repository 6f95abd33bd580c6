import Billing
import Foundation
import GantryRuntime
import GantryTesting
import HTTPTypes
import Logging
import NIOHTTP1
import Testing

/// The subscription ownership check every service but discovery runs before its handlers (issue 6, item 6):
/// discovery's word on which tenant a subscription belongs to, cached, failing closed when discovery is down.
@Suite struct SubscriptionOwnershipTests {
    /// Runs billing (the service under test) for `body`, with a fresh database; `body` starts discovery itself.
    static func withBilling(_ body: @Sendable (TestEnvironment) async throws -> Void) async throws {
        let database = try await TestDatabase.create()
        do {
            let env = try TestEnvironment(database: database)
            let billing = try await buildBillingApplication(configuration: env.configuration(.billing))
            try await withRunningServices([billing], readyPorts: [env.ports[.billing]!]) { try await body(env) }
        } catch {
            await database.drop()
            throw error
        }
        await database.drop()
    }

    /// Runs discovery of `env` for `body`, then stops it.
    static func withDiscovery<T: Sendable>(_ env: TestEnvironment, _ body: @Sendable () async throws -> T) async throws -> T {
        try await withRunningServices([try await env.discoveryApplication()], readyPorts: [env.discoveryPort], body)
    }

    static func usage(_ env: TestEnvironment, tenant: String, subscription: String, token: String) async throws -> TestHTTP.Reply {
        try await TestHTTP.send(.GET, env.url(.billing).absoluteString + "/v1/tenants/\(tenant)/subscriptions/\(subscription)/usage",
                                headers: ["Authorization": "Bearer \(token)"])
    }

    @Test("another tenant's or an unknown subscription is 404; malformed IDs 400; found owners are cached; discovery down is 503")
    func ownershipThroughBilling() async throws {
        try await Self.withBilling { env in
            let (a, b) = try await Self.withDiscovery(env) { () async throws -> (TestSubscription, TestSubscription) in
                let a = try await TestSubscription.create(in: env), b = try await TestSubscription.create(in: env)
                let owner = try await TestUserTokens.token([a.tenantID: [.owner]], subject: "owner-a")
                let own = try await Self.usage(env, tenant: a.tenantID, subscription: a.subscriptionID, token: owner)
                #expect(own.status == 200, "\(own.text)")
                let foreign = try await Self.usage(env, tenant: a.tenantID, subscription: b.subscriptionID, token: owner)
                #expect(try expectProblem(foreign, status: 404)
                    == "subscription \(b.subscriptionID) not found in tenant \(a.tenantID)")
                let unknown = UUID().uuidString.lowercased()
                let missing = try await Self.usage(env, tenant: a.tenantID, subscription: unknown, token: owner)
                #expect(try expectProblem(missing, status: 404).contains(unknown))
                // A tenant ID that is no UUID is bad input (400 naming it), not a missing role (403).
                let badTenant = try await Self.usage(env, tenant: "not-a-tenant", subscription: a.subscriptionID, token: owner)
                #expect(try expectProblem(badTenant, status: 400).contains("tenantId"))
                let badSubscription = try await Self.usage(env, tenant: a.tenantID, subscription: "nope", token: owner)
                #expect(try expectProblem(badSubscription, status: 400).contains("subscriptionId"))
                // The role check still comes first: B's subscription asked for under B by A's owner is 403.
                let denied = try await Self.usage(env, tenant: b.tenantID, subscription: b.subscriptionID, token: owner)
                try expectProblem(denied, status: 403)
                return (a, b)
            }
            // Discovery is stopped now. Owners found before are cached: no call to discovery is needed.
            let owner = try await TestUserTokens.token([a.tenantID: [.owner]], subject: "owner-a")
            let cached = try await Self.usage(env, tenant: a.tenantID, subscription: a.subscriptionID, token: owner)
            #expect(cached.status == 200, "a cached owner needed discovery: \(cached.status) \(cached.text)")
            let cachedForeign = try await Self.usage(env, tenant: a.tenantID, subscription: b.subscriptionID, token: owner)
            try expectProblem(cachedForeign, status: 404)
            // Anything else fails closed.
            let unknown = try await Self.usage(env, tenant: a.tenantID, subscription: UUID().uuidString.lowercased(), token: owner)
            #expect(try expectProblem(unknown, status: 503).contains("discovery"))
        }
    }

    @Test("the cache is bounded; an unknown subscription is remembered only briefly")
    func cacheBounds() async throws {
        let database = try await TestDatabase.create()
        do {
            let env = try TestEnvironment(database: database)
            let tokens = await env.tokens(issuer: "billing")
            let bounded = SubscriptionOwnership(discoveryURL: env.url(.discovery), tokens: tokens, logger: Logger(label: "test"),
                                                negativeTTL: .milliseconds(300), capacity: 2, timeout: .seconds(1))
            let unknown = UUID()
            let subscriptions = try await Self.withDiscovery(env) { () async throws -> [TestSubscription] in
                var created: [TestSubscription] = []
                for _ in 0..<3 { created.append(try await TestSubscription.create(in: env)) }
                for subscription in created {
                    #expect(try await bounded.owner(of: UUID(uuidString: subscription.subscriptionID)!)
                            == UUID(uuidString: subscription.tenantID))
                }
                #expect(try await bounded.owner(of: unknown) == nil)
                return created
            }
            // Discovery is down: the last answer is still cached (within its short life); of the three owners at
            // most one fits beside it in a cache of two, the others fail closed.
            #expect(try await bounded.owner(of: unknown) == nil)
            var answered = 0
            for subscription in subscriptions {
                let status = await Self.status { _ = try await bounded.owner(of: UUID(uuidString: subscription.subscriptionID)!) }
                #expect(status == nil || status == 503)
                if status == nil { answered += 1 }
            }
            #expect(answered <= 1, "\(answered) of 3 owners still cached in a cache of 2 beside the unknown one")
            try await Task.sleep(for: .milliseconds(400))
            let expired = await Self.status { _ = try await bounded.owner(of: unknown) }
            #expect(expired == 503, "an expired negative answer must be asked again")
        } catch {
            await database.drop()
            throw error
        }
        await database.drop()
    }

    static func status(_ body: () async throws -> Void) async -> Int? {
        do {
            try await body()
            return nil
        } catch let problem as ProblemError {
            return problem.status.code
        } catch {
            return -1
        }
    }
}
