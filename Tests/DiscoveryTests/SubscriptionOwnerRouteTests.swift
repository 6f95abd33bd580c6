import Discovery
import Foundation
import GantryRuntime
import GantryTesting
import NIOHTTP1
import Testing

/// `GET /internal/v1/subscriptions/{subscriptionId}`: the owner lookup every other service's ownership check asks
/// (issue 6, isolation). Service tokens only.
@Suite("Discovery subscription owner route")
struct SubscriptionOwnerRouteTests {
    @Test("the owner, cloud and plan of a subscription for a service token; 404 unknown, 400 malformed, 401 without a service token")
    func ownerLookup() async throws {
        try await DiscoveryHarness.run { h in
            let tenantID = try await h.createTenant("owner-lookup")
            let subscriptionID = try await h.createSubscription(tenantID: tenantID)
            let token = try await h.env.tokens(issuer: "billing").token(for: "discovery")
            func get(_ id: String, authorization: String? = nil) async throws -> TestHTTP.Reply {
                try await TestHTTP.send(.GET, "\(h.base)/internal/v1/subscriptions/\(id)",
                                        headers: ["Authorization": authorization ?? "Bearer \(token)"], authorize: false)
            }
            let found = try await get(subscriptionID)
            #expect(found.status == 200, "\(found.text)")
            let owner = try found.object()
            #expect(owner["tenantId"] as? String == tenantID && owner["subscriptionId"] as? String == subscriptionID)
            #expect(owner["cloudType"] as? String == "commercial" && owner["planEnabled"] as? Bool == false)
            // Upper-case input names the same subscription; the answer is lower case (RFC 4122 section 3).
            #expect(try await get(subscriptionID.uppercased()).object()["subscriptionId"] as? String == subscriptionID)

            let unknown = UUID().uuidString.lowercased()
            #expect(try expectProblem(try await get(unknown), status: 404).contains(unknown))
            #expect(try expectProblem(try await get("not-a-uuid"), status: 400).contains("subscriptionId"))
            // A user token (even the tenant's Owner and a Platform Operator) is no service token.
            let user = try await TestUserTokens.token([tenantID: [.owner]], platform: [.platformOperator])
            try expectProblem(try await get(subscriptionID, authorization: "Bearer \(user)"), status: 401)
            let forBilling = try await h.env.tokens(issuer: "scanner").token(for: "billing")
            try expectProblem(try await get(subscriptionID, authorization: "Bearer \(forBilling)"), status: 401)
        }
    }
}
