import Billing
import Foundation
import GantryRuntime
import GantryTesting
import Logging
import NIOHTTP1
import PostgresNIO
import Testing

/// Row-level security on billing's tenant tables (issue 6, "Isolation"; migration 0003, `TenantScope`):
/// checked in SQL, as the service's own role, and through the API with two tenants.
@Suite("Billing row-level security")
struct BillingRowLevelSecurityTests {
    static let logger = Logger(label: "test-rls")
    /// Billing's tables with a `tenant_id` column, all of which must be secured.
    static let tenantTables = ["charges", "subscriptions", "usage_events"]

    /// Two accounts: A with two charged images and a free rescan, B with one charged image and a free rescan.
    /// Rows: charges A 2, B 1; subscriptions A 1, B 1; usage_events A 3, B 2.
    static func seed(_ h: BillingHarness) async throws -> (a: Account, b: Account) {
        let a = try await h.account(), b = try await h.account()
        #expect(try await h.charged(a.scan(digest("a1"))))
        #expect(try await h.charged(a.scan(digest("a2"))))
        #expect(try await h.charged(b.scan(digest("b1"))))
        #expect(try await !h.charged(a.scan(digest("a1"), trigger: "rescan")))
        #expect(try await !h.charged(b.scan(digest("b1"), trigger: "rescan")))
        return (a, b)
    }

    static let expectedRows: [String: (a: Int, b: Int)] = [
        "charges": (2, 1), "subscriptions": (1, 1), "usage_events": (3, 2),
    ]

    @Test("the role is no superuser and cannot bypass RLS; every billing table with tenant_id has RLS enabled and forced")
    func tablesAreSecured() async throws {
        try await BillingHarness.run { h in
            try await RowLevelSecurityProbe.run(h.database) { probe in
                let tables = try await probe.expectTablesSecured(schema: "billing")
                #expect(tables.filter(\.hasTenantID).map(\.name) == Self.tenantTables)
            }
        }
    }

    @Test("no tenant set: no rows; tenant A set: only A's rows; a write for B while A is set fails; system access sees all")
    func sqlLevelIsolation() async throws {
        try await BillingHarness.run { h in
            let (a, b) = try await Self.seed(h)
            let tenantA = try #require(UUID(uuidString: a.tenant)), tenantB = try #require(UUID(uuidString: b.tenant))
            try await RowLevelSecurityProbe.run(h.database) { probe in
                let client = probe.client, logger = Self.logger
                let tables = try await probe.checkTenantTables(schema: "billing", known: Set(Self.tenantTables), tenantA: tenantA,
                                                               tenantB: tenantB, expectedRows: Self.expectedRows)
                #expect(tables == Self.tenantTables)
                // Writes: WITH CHECK refuses rows of another tenant (42501 insufficient_privilege).
                await probe.expectInserts({ tenant in
                    "INSERT INTO billing.subscriptions (subscription_id, tenant_id, trial_days) VALUES (\(UUID()), \(tenant), 5)"
                }, tenantA: tenantA, tenantB: tenantB)
                #expect(try await h.count("SELECT count(*)::int FROM billing.charges WHERE tenant_id = \(tenantB)") == 1)
                #expect(try await h.count("SELECT count(*)::int FROM billing.subscriptions") == 2)

                // What the body throws reaches the caller as itself, and its transaction's writes are undone.
                do {
                    _ = try await client.withTenant(tenantA, logger: logger) { connection in
                        try await connection.query("""
                            INSERT INTO billing.subscriptions (subscription_id, tenant_id, trial_days) VALUES (\(UUID()), \(tenantA), 5)
                            """, logger: logger)
                        throw ProblemError.conflict("refused after the insert")
                    }
                    Issue.record("withTenant returned although its body threw")
                } catch let problem as ProblemError {
                    #expect(problem.detail == "refused after the insert")
                }
                #expect(try await h.count("SELECT count(*)::int FROM billing.subscriptions") == 2)
            }
        }
    }

    @Test("each tenant's usage, invoice and trial routes show only its own data; another tenant's subscription looks unknown")
    func apiLevelIsolation() async throws {
        try await BillingHarness.run { h in
            let (a, b) = try await Self.seed(h)
            func digests(_ usage: [String: Any]) -> Set<String> {
                Set(((usage["charges"] as? [[String: Any]]) ?? []).compactMap { $0["digest"] as? String })
            }
            let usageA = try await h.usage(tenant: a.tenant, subscription: a.subscription)
            #expect(usageA["scans"] as? Int == 3 && usageA["billableImages"] as? Int == 2)
            #expect(digests(usageA) == [digest("a1"), digest("a2")])
            let usageB = try await h.usage(tenant: b.tenant, subscription: b.subscription)
            #expect(usageB["scans"] as? Int == 2 && usageB["billableImages"] as? Int == 1)
            #expect(digests(usageB) == [digest("b1")])
            // B's owner asks for A's subscription under B's tenant: 404, as discovery says it is A's.
            let crossed = try await TestHTTP.send(.GET, "\(h.base)/v1/tenants/\(b.tenant)/subscriptions/\(a.subscription)/usage")
            Self.expectNotFound(crossed, subscription: a.subscription)

            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            formatter.timeZone = TimeZone(identifier: "UTC")
            formatter.dateFormat = "yyyy-MM"
            let month = formatter.string(from: Date())
            let invoiceA = try await h.get("/v1/tenants/\(a.tenant)/subscriptions/\(a.subscription)/invoices/\(month)")
            #expect(invoiceA["billableImages"] as? Int == 2 && invoiceA["total"] as? String == "0.5800")
            let invoiceCrossed = try await TestHTTP.send(.GET, "\(h.base)/v1/tenants/\(b.tenant)/subscriptions/\(a.subscription)/invoices/\(month)")
            Self.expectNotFound(invoiceCrossed, subscription: a.subscription)

            // Trials: A's setting is invisible to B, and B cannot overwrite it.
            let trialPath = { (tenant: String) in "\(h.base)/v1/tenants/\(tenant)/subscriptions/\(a.subscription)/trial" }
            let set = try await TestHTTP.json(.PUT, trialPath(a.tenant), ["days": 7])
            #expect(set.status == 200, "\(set.text)")
            let seenByB = try await TestHTTP.send(.GET, trialPath(b.tenant))
            Self.expectNotFound(seenByB, subscription: a.subscription)
            let overwrite = try await TestHTTP.json(.PUT, trialPath(b.tenant), ["days": 30])
            #expect(overwrite.status == 404 && overwrite.header("Content-Type")?.hasPrefix("application/problem+json") == true,
                    "\(overwrite.status) \(overwrite.text)")
            let seenByA = try await h.get("/v1/tenants/\(a.tenant)/subscriptions/\(a.subscription)/trial")
            #expect(seenByA["days"] as? Int == 7 && seenByA["startsAt"] != nil)

            // Metering A's subscription under B's tenant is refused and stores nothing.
            let intruder = try await h.record(UsageMessage(tenantId: b.tenant, subscriptionId: a.subscription,
                                                           registryId: a.registry, digest: digest("c1")))
            #expect(intruder.status == 409, "\(intruder.text)")
            #expect(try await h.count("SELECT count(*)::int FROM billing.charges") == 3)
            #expect(try await h.count("SELECT count(*)::int FROM billing.usage_events") == 5)
        }
    }

    /// 404 problem+json saying the subscription is not the path's tenant's.
    static func expectNotFound(_ reply: TestHTTP.Reply, subscription: String,
                               sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(reply.status == 404 && reply.header("Content-Type") == "application/problem+json"
                && reply.text.contains("subscription \(subscription) not found in tenant"),
                "\(reply.status) \(reply.text)", sourceLocation: sourceLocation)
    }
}
