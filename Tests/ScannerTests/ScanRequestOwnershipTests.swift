import Foundation
import GantryRuntime
import GantryTesting
import HTTPTypes
import PostgresNIO
@testable import Scanner
import ScannerAPI
import Testing

/// A scan request's tenant is not trusted alone: discovery must say the subscription is that tenant's (issue 6).
@Suite("Scan request ownership")
struct ScanRequestOwnershipTests {
    /// The status of the problem `body` throws, or nil when it succeeds.
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

    @Test("another tenant's subscription is 409, an unknown one 404, the right pair 202; refused requests store no job")
    func requestsNeedTheTenantsSubscription() async throws {
        try await ScannerHarness.run { h in
            let other = try await TestSubscription.create(in: h.env)
            func request(tenant: String, subscription: String, seed: String) async throws {
                _ = try await h.api.requestScan(.init(body: .json(.init(
                    messageId: UUID().uuidString, tenantId: tenant, subscriptionId: subscription, registryId: h.registryID,
                    repository: "team/app", digest: ScannerHarness.digest(seed), trigger: .push))))
            }
            // The harness's tenant naming another tenant's subscription, and the other tenant naming the harness's.
            #expect(await Self.status { try await request(tenant: h.tenantID, subscription: other.subscriptionID, seed: "a1") } == 409)
            #expect(await Self.status { try await request(tenant: other.tenantID, subscription: h.subscriptionID, seed: "a2") } == 409)
            #expect(await Self.status {
                try await request(tenant: h.tenantID, subscription: UUID().uuidString.lowercased(), seed: "a3")
            } == 404)
            let jobs = try await h.database.withClient { client in
                try await client.withSystemAccess(logger: h.runtime.logger) {
                    try await RowLevelSecurityProbe.integer($0, "SELECT count(*)::int FROM scanner.scan_jobs")
                }
            }
            #expect(jobs == 0)
            #expect(await Self.status { try await request(tenant: h.tenantID, subscription: h.subscriptionID, seed: "a4") } == nil)
        }
    }
}
