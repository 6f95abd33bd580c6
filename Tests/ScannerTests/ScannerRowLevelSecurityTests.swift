import Foundation
import GantryRuntime
import GantryTesting
import Logging
import PostgresNIO
@testable import Scanner
import ScannerAPI
import Testing

/// Row-level security on the scanner's tenant tables (issue 6, "Isolation"; migration 0006, `TenantScope`), checked
/// in SQL as the service's own role. The tables are found in `information_schema` (every table of the schema with a
/// `tenant_id` column), so a table added later without a policy, or without rows in the fixture, fails here.
@Suite("Scanner row-level security")
struct ScannerRowLevelSecurityTests {
    static let logger = Logger(label: "test-rls")
    /// The tables known today; the test checks every table it finds, and that these are among them.
    static let knownTenantTables: Set<String> = ["deleted_images", "inventories", "inventory_packages", "scan_failure_streaks",
                                                 "scan_jobs", "unreachable_registries"]

    /// One tenant's rows in every tenant table, written with system access.
    static func seed(_ client: PostgresClient, tenant: UUID) async throws {
        let job = UUID(), subscription = UUID(), registry = UUID()
        let digest = "sha256:" + String(repeating: "ab", count: 32)
        let statements: [PostgresQuery] = [
            """
            INSERT INTO scanner.scan_jobs (id, tenant_id, subscription_id, registry_id, repository, digest, trigger, priority,
              status, deadline_at)
            VALUES (\(job), \(tenant), \(subscription), \(registry), 'team/app', \(digest), 'push', 1, 'succeeded', now())
            """,
            """
            INSERT INTO scanner.inventories (scan_id, tenant_id, registry_id, repository, digest, manifest_digest, inventory, findings)
            VALUES (\(job), \(tenant), \(registry), 'team/app', \(digest), \(digest), '{}', '[]')
            """,
            """
            INSERT INTO scanner.inventory_packages (scan_id, tenant_id, namespace, package_name)
            VALUES (\(job), \(tenant), 'alpine:v3.7', 'musl')
            """,
            """
            INSERT INTO scanner.deleted_images (registry_id, repository, digest, tenant_id, deleted_at)
            VALUES (\(registry), 'team/gone', \(digest), \(tenant), now())
            """,
            """
            INSERT INTO scanner.scan_failure_streaks (tenant_id, registry_id, repository, digest, since, failures, last_error)
            VALUES (\(tenant), \(registry), 'team/app', \(digest), now(), 1, 'boom')
            """,
            """
            INSERT INTO scanner.unreachable_registries (tenant_id, registry_id, since, last_error)
            VALUES (\(tenant), \(registry), now(), 'connection refused')
            """,
        ]
        try await client.withSystemAccess(logger: logger) { connection in
            for statement in statements { _ = try await connection.query(statement, logger: logger) }
        }
    }

    @Test("every scanner table with tenant_id has RLS forced and the tenant policy; no setting sees no rows, tenant A only A's, writes for B under A fail with 42501, system access sees all")
    func sqlLevelIsolation() async throws {
        try await ScannerHarness.run { h in
            try await RowLevelSecurityProbe.run(h.database) { probe in
                let tenantA = UUID(), tenantB = UUID()
                try await Self.seed(probe.client, tenant: tenantA)
                try await Self.seed(probe.client, tenant: tenantB)
                try await probe.expectTablesSecured(schema: "scanner")
                try await probe.checkTenantTables(schema: "scanner", known: Self.knownTenantTables, tenantA: tenantA, tenantB: tenantB)
            }
        }
    }

    @Test("a scan request for tenant A is stored as A's: listed for A, invisible to B and to a query without a tenant")
    func requestsAreScopedToTheirTenant() async throws {
        try await ScannerHarness.run { h in
            let digest = ScannerHarness.digest("c3")
            let (jobID, _) = try await h.request(.push, digest: digest)
            let mine = try await h.api.listScans(.init(path: .init(tenantId: h.tenantID), query: .init()))
            #expect(try mine.ok.body.json.items.map(\.jobId) == [jobID])
            let other = try await h.api.listScans(.init(path: .init(tenantId: UUID().uuidString), query: .init()))
            #expect(try other.ok.body.json.items.isEmpty)
            let unscoped = try await h.database.withClient { client in
                try await client.withConnection {
                    try await RowLevelSecurityProbe.integer($0, "SELECT count(*)::int FROM scanner.scan_jobs")
                }
            }
            #expect(unscoped == 0)
            #expect(try await h.job(jobID).status == "queued")
        }
    }
}

