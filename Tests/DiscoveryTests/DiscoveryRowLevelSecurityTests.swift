import Discovery
import Foundation
import GantryRuntime
import GantryTesting
import Logging
import PostgresNIO
import Testing

/// Row-level security on discovery's tenant tables (issue 6, "Isolation"; migration 0003, `TenantScope`), checked in
/// SQL as the service's own role. The tables are found in `information_schema` (every table of the schema with a
/// `tenant_id` column), so a table added later without a policy, or without rows in the fixture, fails here.
@Suite("Discovery row-level security")
struct DiscoveryRowLevelSecurityTests {
    static let logger = Logger(label: "test-rls")
    /// The tables known today; the test checks every table it finds, and that these are among them.
    static let knownTenantTables: Set<String> = ["audit_log", "crawls", "digests", "plan_history", "registries", "repositories",
                                                 "subscriptions", "tag_history", "unreachable_registries"]

    /// One tenant's rows in every tenant table (and `tenants`), written with system access.
    static func seed(_ client: PostgresClient, tenant: UUID, label: String) async throws {
        let subscription = UUID(), registry = UUID(), crawl = UUID()
        let statements: [PostgresQuery] = [
            "INSERT INTO discovery.tenants (id, name) VALUES (\(tenant), \(label))",
            "INSERT INTO discovery.subscriptions (id, tenant_id, name, cloud_type) VALUES (\(subscription), \(tenant), 'main', 'commercial')",
            """
            INSERT INTO discovery.registries (id, tenant_id, subscription_id, login_server)
            VALUES (\(registry), \(tenant), \(subscription), \(label + ".example.com"))
            """,
            "INSERT INTO discovery.audit_log (tenant_id, action, subject) VALUES (\(tenant), 'plan.enable', \(subscription.uuidString))",
            """
            INSERT INTO discovery.plan_history (tenant_id, subscription_id, enabled, actor)
            VALUES (\(tenant), \(subscription), true, 'test')
            """,
            "INSERT INTO discovery.crawls (id, tenant_id, registry_id, status) VALUES (\(crawl), \(tenant), \(registry), 'succeeded')",
            "INSERT INTO discovery.repositories (tenant_id, registry_id, name) VALUES (\(tenant), \(registry), 'team/app')",
            """
            INSERT INTO discovery.digests (tenant_id, registry_id, repository, digest, media_type, classification, reason)
            VALUES (\(tenant), \(registry), 'team/app', 'sha256:aa', 'application/vnd.oci.image.manifest.v1+json', 'supported', 'ok')
            """,
            """
            INSERT INTO discovery.tag_history (tenant_id, registry_id, repository, tag, digest)
            VALUES (\(tenant), \(registry), 'team/app', 'latest', 'sha256:aa')
            """,
            """
            INSERT INTO discovery.unreachable_registries (tenant_id, registry_id, since, last_error)
            VALUES (\(tenant), \(registry), now(), 'connection refused')
            """,
        ]
        try await client.withSystemAccess(logger: logger) { connection in
            for statement in statements { _ = try await connection.query(statement, logger: logger) }
        }
    }

    @Test("every discovery table with tenant_id (and tenants) has RLS forced and the tenant policy; no setting sees no rows, tenant A only A's, writes for B under A fail with 42501, system access sees all")
    func sqlLevelIsolation() async throws {
        try await DiscoveryHarness.run { h in
            try await RowLevelSecurityProbe.run(h.database) { probe in
                let tenantA = UUID(), tenantB = UUID()
                try await Self.seed(probe.client, tenant: tenantA, label: "rls-a")
                try await Self.seed(probe.client, tenant: tenantB, label: "rls-b")
                try await probe.expectTablesSecured(schema: "discovery")
                try await probe.checkTenantTables(schema: "discovery", known: Self.knownTenantTables, tenantA: tenantA, tenantB: tenantB)
                // A tenant's own row is keyed by its id.
                try await probe.check(schema: "discovery", table: "tenants", key: "id", tenantA: tenantA, tenantB: tenantB)
            }
        }
    }
}

