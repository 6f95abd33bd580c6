import FindingsPolicy
import Foundation
import GantryRuntime
import GantryTesting
import Logging
import NIOHTTP1
import PostgresNIO
import Testing

/// Row-level security on findings-policy's tenant tables (issue 6, "Isolation"; migration 0004, `TenantScope`),
/// checked in SQL as the service's own role. The tables are those of schema `findings_policy` with a `tenant_id`
/// column, read from `information_schema`, so a table added later without a policy fails here.
@Suite("Findings-policy row-level security")
struct FindingsPolicyRowLevelSecurityTests {
    static let logger = Logger(label: "test-rls")
    /// The tenant tables of migrations 1-3; a new one is checked without being listed here.
    static let knownTenantTables: Set<String> = ["assessments", "disable_rules", "findings", "image_tags", "rule_audit",
                                                 "secure_scores", "vex_audit", "vex_documents"]

    /// Fills every tenant table for `h`'s tenant through the API: a report with a tag (assessments, findings,
    /// image_tags, secure_scores), a disable rule (disable_rules, rule_audit) and a VEX document (vex_documents,
    /// vex_audit).
    static func seed(_ h: Harness, digest: String) async throws {
        var report = h.report(digest: digest, findings: [
            Harness.finding("CVE-2019-14697", fixed: "1.1.18-r4", severity: "Critical"),
            Harness.finding("CVE-2020-0001", fixed: nil, severity: "Low"),
        ])
        report["tag"] = "3.7"
        let submitted = try await h.submit(report)
        #expect(submitted.status == 202, "\(submitted.text)")
        _ = try await h.createRule(["findingIds": ["CVE-2020-0001"]], actor: "admin@example.com")
        let attached = try await h.send(.POST, "\(h.subscriptionPath)/vexDocuments", VEXQueryExportAPITests.openVEX(digest: digest),
                                        actor: "admin@example.com")
        #expect(attached.status == 201, "\(attached.text)")
    }

    @Test("the role is no superuser and cannot bypass RLS; every findings_policy table with tenant_id has RLS enabled, forced and a policy")
    func tablesAreSecured() async throws {
        try await FindingsPolicyServiceTests.withService { h in
            try await RowLevelSecurityProbe.run(h.env.database) { probe in
                let tables = try await probe.expectTablesSecured(schema: "findings_policy")
                // A new table without tenant_id must be judged (and listed) as holding no tenant's data.
                #expect(Set(tables.filter { !$0.hasTenantID }.map(\.name)) == ["inbox", "outbox", "schema_migrations"])
                // The tables of migrations 1-3; a new one is checked above without being listed here.
                #expect(Set(tables.filter(\.hasTenantID).map(\.name)).isSuperset(of: Self.knownTenantTables))
            }
        }
    }

    @Test("no tenant set: no rows; tenant A set: only A's rows, and writing B's fails (42501); system access sees all")
    func sqlLevelIsolation() async throws {
        try await FindingsPolicyServiceTests.withService { h in
            let b = try await h.otherTenant()
            try await Self.seed(h, digest: Harness.digest(1))
            try await Self.seed(b, digest: Harness.digest(2))
            let tenantA = try #require(UUID(uuidString: h.tenantID)), tenantB = try #require(UUID(uuidString: b.tenantID))
            try await RowLevelSecurityProbe.run(h.env.database) { probe in
                try await probe.checkTenantTables(schema: "findings_policy", known: Self.knownTenantTables, tenantA: tenantA, tenantB: tenantB)
                // Inserts: for another tenant, or with no tenant set, refused (42501 insufficient_privilege).
                await probe.expectInserts({ tenant in
                    """
                    INSERT INTO findings_policy.disable_rules (id, tenant_id, subscription_id, scope_kind, criteria, justification,
                      created_at, created_by, updated_at, updated_by)
                    VALUES (\(UUID()), \(tenant), \(UUID()), 'subscription', '{}', 'x', now(), 'x', now(), 'x')
                    """
                }, tenantA: tenantA, tenantB: tenantB)
            }
        }
    }

    @Test("a report naming another tenant's subscription is refused with 409 and changes nothing; the API shows B nothing of A's")
    func reportAcrossTenants() async throws {
        try await FindingsPolicyServiceTests.withService { h in
            let digest = Harness.digest(1)
            try await Self.seed(h, digest: digest)
            let before = try await h.assessment(digest)
            // Tenant B's report for A's subscription, registry and image.
            var intruding = h.report(digest: digest, findings: [])
            let tenantB = UUID().uuidString.lowercased()
            intruding["tenantId"] = tenantB
            let refused = try await h.submit(intruding)
            #expect(refused.status == 409 && refused.header("Content-Type")?.hasPrefix("application/problem+json") == true,
                    "\(refused.status) \(refused.text)")
            let after = try await h.assessment(digest)
            #expect(after["status"] as? [String: AnyHashable] == before["status"] as? [String: AnyHashable])
            #expect(after["scanId"] as? String == before["scanId"] as? String)
            #expect(try await h.count("SELECT count(*)::int FROM findings_policy.assessments WHERE tenant_id = '\(tenantB)'") == 0)
            #expect(try await h.count("SELECT count(*)::int FROM findings_policy.inbox") == 1, "only A's report was claimed")

            // B's user, under B's tenant, asks for A's subscription: 404 (discovery says it is A's), nothing of A's.
            let crossed = "\(h.base)/v1/tenants/\(tenantB)/subscriptions/\(h.subscriptionID)"
            let token = try await TestUserTokens.token([tenantB: [.owner]], subject: "b-owner")
            /// The status and how many entries `key` lists.
            func listed(_ path: String, _ key: String = "items") async throws -> String {
                let reply = try await TestHTTP.send(.GET, crossed + path, headers: ["Authorization": "Bearer \(token)"])
                let items = (try? reply.object()[key] as? [Any])?.count ?? -1
                return "\(reply.status) \(items)"
            }
            #expect(try await TestHTTP.send(.GET, crossed + "/assessments/\(digest)",
                                            headers: ["Authorization": "Bearer \(token)"]).status == 404)
            #expect(try await listed("/assessments") == "404 -1")
            #expect(try await listed("/rules") == "404 -1")
            #expect(try await listed("/vexDocuments") == "404 -1")
            #expect(try await listed("/subAssessments", "value") == "404 -1")
        }
    }
}
