import Foundation
import GantryRuntime
import GantryTesting
import Ingestion
import Logging
import NIOHTTP1
import PostgresNIO
import Testing

/// Row-level security on ingestion's tenant tables (issue 6, "Isolation"; migration 0005, `TenantScope`), checked
/// in SQL as the service's own role. The tables are those of schema `ingestion` with a `tenant_id` column, read
/// from `information_schema`, so a table added later without a policy fails here.
@Suite("Ingestion row-level security")
struct IngestionRowLevelSecurityTests {
    static let logger = Logger(label: "test-rls")
    /// Ingestion's tables without tenant_id, none of them holding a tenant's data (see migration 0005).
    static let sharedTables: Set<String> = ["inbox", "outbox", "rescan_runs", "rescan_schedule", "schema_migrations"]
    /// The tenant tables known today; a new one is checked without being listed here.
    static let knownTenantTables: Set<String> = ["events", "image_tags", "images", "imports", "webhook_secrets"]

    /// Fills every tenant table for the tenant through the API (a webhook secret; a push with a tag, processed:
    /// events, images, image_tags) and an import job row written as the tenant.
    static func seed(_ h: IngestionHarness, client: PostgresClient, tenant: String, registry: String, host: String,
                     digest: String) async throws {
        let secret = try await h.setSecret(registryID: registry, tenantID: tenant)
        let pushed = try await h.post(events: [h.event(digest: digest, host: host)], authorization: "Bearer \(secret)")
        #expect(try h.receipt(pushed, registryID: registry) == [1, 1, 0, 0])
        let tenantID = try #require(UUID(uuidString: tenant)), registryID = try #require(UUID(uuidString: registry))
        try await client.withTenant(tenantID, logger: logger) { connection in
            _ = try await connection.query("""
                INSERT INTO ingestion.imports (id, tenant_id, registry_id, source, source_base_url, source_repository,
                  source_reference, target_repository, status, finished_at)
                VALUES (\(UUID()), \(tenantID), \(registryID), 'docker.io/library/alpine:3.20', 'https://registry-1.docker.io',
                        'library/alpine', '3.20', 'alpine', 'done', now())
                """, logger: logger)
        }
    }

    @Test("every ingestion table with tenant_id has RLS enabled, forced and a policy; the others hold no tenant's data")
    func tablesAreSecured() async throws {
        try await IngestionHarness.run { h in
            try await RowLevelSecurityProbe.run(h.database) { probe in
                let tables = try await probe.expectTablesSecured(schema: "ingestion")
                // A new table without tenant_id must be judged (and listed) as holding no tenant's data.
                #expect(Set(tables.filter { !$0.hasTenantID }.map(\.name)) == Self.sharedTables)
                #expect(Set(tables.filter(\.hasTenantID).map(\.name)).isSuperset(of: Self.knownTenantTables))
            }
        }
    }

    @Test("no tenant set: no rows; tenant A set: only A's rows, and writing B's fails (42501); system access sees all")
    func sqlLevelIsolation() async throws {
        try await IngestionHarness.run { h in
            let b = try await h.secondTenant(loginServer: "second.example.com")
            try await RowLevelSecurityProbe.run(h.database) { probe in
                try await Self.seed(h, client: probe.client, tenant: h.tenantID, registry: h.registryID, host: h.loginServer,
                                    digest: IngestionHarness.digest("a1"))
                try await Self.seed(h, client: probe.client, tenant: b.tenant, registry: b.registry, host: "second.example.com",
                                    digest: IngestionHarness.digest("b2"))
                try await h.processed()
                let tenantA = try #require(UUID(uuidString: h.tenantID)), tenantB = try #require(UUID(uuidString: b.tenant))

                try await probe.checkTenantTables(schema: "ingestion", known: Self.knownTenantTables, tenantA: tenantA, tenantB: tenantB)
                // Inserts: for another tenant, or with no tenant set, refused (42501 insufficient_privilege).
                await probe.expectInserts({ tenant in
                    "INSERT INTO ingestion.webhook_secrets (registry_id, tenant_id, secret_sha256) VALUES (\(UUID()), \(tenant), \(String(repeating: "0", count: 64)))"
                }, tenantA: tenantA, tenantB: tenantB)
            }

            // Through the API: B's owner, under B's tenant, names A's registry: unknown to B (404), nothing of A's.
            let token = try await TestUserTokens.token([b.tenant: [.owner]], subject: "b-owner")
            let crossed = try await TestHTTP.send(.GET, "\(h.ingestion)/v1/tenants/\(b.tenant)/registries/\(h.registryID)/images",
                                                  headers: ["Authorization": "Bearer \(token)"])
            #expect(crossed.status == 404 && crossed.header("Content-Type") == "application/problem+json", "\(crossed.text)")
            #expect(!crossed.text.contains("sha256:"))
            #expect(try await h.images().count == 1, "A still sees its own image")
        }
    }
}
