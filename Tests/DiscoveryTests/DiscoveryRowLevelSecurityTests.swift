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
                                                 "subscriptions", "tag_history"]

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
        ]
        try await client.withSystemAccess(logger: logger) { connection in
            for statement in statements { _ = try await connection.query(statement, logger: logger) }
        }
    }

    @Test("every discovery table with tenant_id (and tenants) has RLS forced and the tenant policy; no setting sees no rows, tenant A only A's, writes for B under A fail with 42501, system access sees all")
    func sqlLevelIsolation() async throws {
        try await DiscoveryHarness.run { h in
            try await h.database.withClient { client in
                let tenantA = UUID(), tenantB = UUID()
                try await Self.seed(client, tenant: tenantA, label: "rls-a")
                try await Self.seed(client, tenant: tenantB, label: "rls-b")
                let tables = try await RowLevelSecurityProbe.tenantTables(client, schema: "discovery")
                #expect(Self.knownTenantTables.isSubset(of: Set(tables)), "\(tables)")
                for table in tables {
                    try await RowLevelSecurityProbe.check(client, schema: "discovery", table: table, tenantA: tenantA, tenantB: tenantB)
                }
                // A tenant's own row is keyed by its id.
                try await RowLevelSecurityProbe.check(client, schema: "discovery", table: "tenants", key: "id",
                                                      tenantA: tenantA, tenantB: tenantB)
            }
        }
    }
}

/// The SQL-level isolation checks for one table (issue 6, "Isolation"), run as the service's role.
enum RowLevelSecurityProbe {
    static let logger = Logger(label: "test-rls")

    /// Tables of `schema` with a `tenant_id` column, by name.
    static func tenantTables(_ client: PostgresClient, schema: String) async throws -> [String] {
        var tables: [String] = []
        for try await table in try await client.query("""
            SELECT c.table_name::text FROM information_schema.columns c
            JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
            WHERE c.table_schema = \(schema) AND c.column_name = 'tenant_id' AND t.table_type = 'BASE TABLE' ORDER BY 1
            """, logger: logger).decode(String.self) {
            tables.append(table)
        }
        return tables
    }

    static func integer(_ connection: PostgresConnection, _ sql: String) async throws -> Int {
        for try await value in try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger).decode(Int.self) {
            return value
        }
        return -1
    }

    /// The SQLSTATE `body` fails with; nil when it succeeds.
    static func sqlState(_ body: () async throws -> Void) async -> String? {
        do {
            try await body()
            return nil
        } catch let error as PSQLError {
            return error.serverInfo?[.sqlState] ?? "\(error)"
        } catch {
            return "not a PostgreSQL error: \(error)"
        }
    }

    /// Checks `schema.table`, whose rows belong to the tenant in column `key`, holding rows of both tenants:
    /// row security enabled and forced with a `tenant_isolation` policy reading `gantry.tenant_id`; no rows without a
    /// setting; as A exactly A's rows; as A, an insert of a copy of A's row relabelled B and an update moving A's rows
    /// to B fail with 42501 and B's rows cannot be updated; with system access both tenants' rows.
    static func check(_ client: PostgresClient, schema: String, table: String, key: String = "tenant_id",
                      tenantA: UUID, tenantB: UUID) async throws {
        let name = "\(schema).\(table)"
        for try await (enabled, forced, policy) in try await client.query("""
            SELECT c.relrowsecurity, c.relforcerowsecurity, EXISTS (
              SELECT FROM pg_policies p
              WHERE p.schemaname = n.nspname AND p.tablename = c.relname AND p.policyname = 'tenant_isolation' AND p.cmd = 'ALL'
                AND p.qual LIKE '%gantry.tenant_id%' AND p.with_check LIKE '%gantry.tenant_id%')
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = \(schema) AND c.relname = \(table)
            """, logger: logger).decode((Bool, Bool, Bool).self) {
            #expect(enabled && forced && policy, "\(name): row security enabled \(enabled), forced \(forced), tenant policy \(policy)")
        }
        let a = "'\(tenantA.uuidString.lowercased())'::uuid", b = "'\(tenantB.uuidString.lowercased())'::uuid"
        let all = "SELECT count(*)::int FROM \(name)"
        let ofA = "SELECT count(*)::int FROM \(name) WHERE \(key) = \(a)"
        let ofB = "SELECT count(*)::int FROM \(name) WHERE \(key) = \(b)"
        let (rowsA, rowsB, total) = try await client.withSystemAccess(logger: logger) { connection in
            (try await integer(connection, ofA), try await integer(connection, ofB), try await integer(connection, all))
        }
        #expect(rowsA > 0 && rowsB > 0, "\(name): the fixture must hold rows of both tenants (A \(rowsA), B \(rowsB))")
        #expect(total == rowsA + rowsB, "\(name) with system access")
        #expect(try await client.withConnection { try await integer($0, all) } == 0, "\(name) without a tenant setting")
        let (seenByA, bSeenByA) = try await client.withTenant(tenantA, logger: logger) { connection in
            (try await integer(connection, all), try await integer(connection, ofB))
        }
        #expect(seenByA == rowsA && bSeenByA == 0, "\(name) as tenant A: \(seenByA) rows, \(bSeenByA) of B")
        #expect(try await client.withTenant(tenantB, logger: logger) { try await integer($0, all) } == rowsB, "\(name) as tenant B")

        // A copy of one of A's rows, relabelled B, inserted while A is set.
        let insert = """
            INSERT INTO \(name) SELECT (jsonb_populate_record(NULL::\(name), to_jsonb(x) || jsonb_build_object('\(key)', \(b)))).*
            FROM \(name) x WHERE x.\(key) = \(a) LIMIT 1
            """
        #expect(await sqlState {
            try await client.withTenant(tenantA, logger: logger) { _ = try await integer($0, "WITH i AS (\(insert) RETURNING 1) SELECT count(*)::int FROM i") }
        } == "42501", "\(name): inserting B's row as tenant A")
        #expect(await sqlState {
            try await client.withTenant(tenantA, logger: logger) { connection in
                _ = try await integer(connection, "WITH u AS (UPDATE \(name) SET \(key) = \(b) WHERE \(key) = \(a) RETURNING 1) SELECT count(*)::int FROM u")
            }
        } == "42501", "\(name): moving A's rows to B as tenant A")
        let touched = try await client.withTenant(tenantA, logger: logger) { connection in
            try await integer(connection, "WITH u AS (UPDATE \(name) SET \(key) = \(key) WHERE \(key) = \(b) RETURNING 1) SELECT count(*)::int FROM u")
        }
        #expect(touched == 0, "\(name): B's rows updated as tenant A")
        let after = try await client.withSystemAccess(logger: logger) { try await integer($0, all) }
        #expect(after == total, "\(name): rows changed by refused writes")
    }
}
