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

    /// Every table of schema `ingestion`: whether it has tenant_id, row security enabled and forced, and the
    /// `tenant_isolation` policy.
    static func tables(_ connection: PostgresConnection) async throws
        -> [(table: String, tenant: Bool, enabled: Bool, forced: Bool, policy: Bool)] {
        var tables: [(String, Bool, Bool, Bool, Bool)] = []
        for try await row in try await connection.query("""
            SELECT c.relname::text,
              EXISTS (SELECT FROM information_schema.columns col
                      WHERE col.table_schema = 'ingestion' AND col.table_name = c.relname AND col.column_name = 'tenant_id'),
              c.relrowsecurity, c.relforcerowsecurity,
              EXISTS (SELECT FROM pg_policies p WHERE p.schemaname = 'ingestion' AND p.tablename = c.relname
                        AND p.policyname = 'tenant_isolation')
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'ingestion' AND c.relkind IN ('r', 'p')
            ORDER BY 1
            """, logger: logger).decode((String, Bool, Bool, Bool, Bool).self) {
            tables.append(row)
        }
        return tables.map { (table: $0.0, tenant: $0.1, enabled: $0.2, forced: $0.3, policy: $0.4) }
    }

    /// A client on the service's database with a pool of ONE connection, so consecutive calls reuse one session.
    static func withOneConnection<T: Sendable>(_ database: TestDatabase,
                                               _ body: (PostgresClient) async throws -> T) async throws -> T {
        let settings = try DatabaseSettings(url: database.url)
        var configuration = PostgresClient.Configuration(
            host: settings.host, port: settings.port, username: settings.username, password: settings.password,
            database: settings.database, tls: .disable)
        configuration.options.maximumConnections = 1
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            return try await body(client)
        }
    }

    static func integer(_ connection: PostgresConnection, _ query: PostgresQuery) async throws -> Int {
        for try await value in try await connection.query(query, logger: logger).decode(Int.self) { return value }
        return -1
    }

    /// The SQLSTATE of the PostgreSQL error `body` throws, nil when it succeeds.
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

    /// A second tenant with an enabled plan and registry `loginServer`, registered through discovery.
    static func secondTenant(_ h: IngestionHarness, loginServer: String) async throws -> (tenant: String, registry: String) {
        let tenant = try await TestHTTP.json(.POST, "\(h.discovery)/v1/tenants", ["name": "second"])
        let tenantIDValue = try tenant.object()["id"]
        let tenantID = try #require(tenantIDValue as? String)
        let subscription = try await TestHTTP.json(.POST, "\(h.discovery)/v1/tenants/\(tenantID)/subscriptions",
                                                   ["name": "second", "cloudType": "commercial"])
        let subscriptionIDValue = try subscription.object()["id"]
        let subscriptionID = try #require(subscriptionIDValue as? String)
        let plan = try await TestHTTP.json(.PUT, "\(h.discovery)/v1/tenants/\(tenantID)/subscriptions/\(subscriptionID)/plan",
                                           ["enabled": true])
        try #require(plan.status == 200, "\(plan.text)")
        let registry = try await TestHTTP.json(
            .POST, "\(h.discovery)/v1/tenants/\(tenantID)/subscriptions/\(subscriptionID)/registries", ["loginServer": loginServer])
        let registryIDValue = try registry.object()["id"]
        return (tenantID, try #require(registryIDValue as? String))
    }

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
            try await h.database.withClient { client in
                try await client.withConnection { connection in
                    for try await (superuser, bypass) in try await connection.query(
                        "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user", logger: Self.logger
                    ).decode((Bool, Bool).self) {
                        #expect(!superuser && !bypass, "superusers and BYPASSRLS roles ignore every policy")
                    }
                    let tables = try await Self.tables(connection)
                    for entry in tables where entry.tenant {
                        #expect(entry.enabled && entry.forced && entry.policy,
                                "\(entry.table): enabled \(entry.enabled), forced \(entry.forced), policy \(entry.policy)")
                    }
                    // A new table without tenant_id must be judged (and listed) as holding no tenant's data.
                    #expect(Set(tables.filter { !$0.tenant }.map(\.table)) == Self.sharedTables)
                    #expect(Set(tables.filter(\.tenant).map(\.table)).isSuperset(of: [
                        "events", "image_tags", "images", "imports", "webhook_secrets",
                    ]))
                }
            }
        }
    }

    @Test("no tenant set: no rows; tenant A set: only A's rows, and writing B's fails (42501); system access sees all")
    func sqlLevelIsolation() async throws {
        try await IngestionHarness.run { h in
            let b = try await Self.secondTenant(h, loginServer: "second.example.com")
            try await Self.withOneConnection(h.database) { client in
                let logger = Self.logger
                try await Self.seed(h, client: client, tenant: h.tenantID, registry: h.registryID, host: h.loginServer,
                                    digest: IngestionHarness.digest("a1"))
                try await Self.seed(h, client: client, tenant: b.tenant, registry: b.registry, host: "second.example.com",
                                    digest: IngestionHarness.digest("b2"))
                try await h.processed()
                let tenantA = try #require(UUID(uuidString: h.tenantID)), tenantB = try #require(UUID(uuidString: b.tenant))

                let tables = try await client.withConnection { try await Self.tables($0) }.filter(\.tenant).map(\.table)
                #expect(tables.count >= 5)
                for table in tables {
                    let all: PostgresQuery = "SELECT count(*)::int FROM ingestion.\(unescaped: table)"
                    let ofA: PostgresQuery = "SELECT count(*)::int FROM ingestion.\(unescaped: table) WHERE tenant_id = \(tenantA)"
                    let ofB: PostgresQuery = "SELECT count(*)::int FROM ingestion.\(unescaped: table) WHERE tenant_id = \(tenantB)"
                    let (everyone, rowsOfA, rowsOfB) = try await client.withSystemAccess(logger: logger) { connection in
                        (try await Self.integer(connection, all), try await Self.integer(connection, ofA),
                         try await Self.integer(connection, ofB))
                    }
                    // Both tenants have rows in every table (else the checks below prove nothing): extend `seed`
                    // when a table is added.
                    #expect(rowsOfA > 0 && rowsOfB > 0 && everyone == rowsOfA + rowsOfB,
                            "\(table) with system access: \(everyone) rows, A \(rowsOfA), B \(rowsOfB)")
                    #expect(try await client.withConnection { try await Self.integer($0, all) } == 0,
                            "\(table) without a tenant setting")
                    let (seenByA, othersSeenByA) = try await client.withTenant(tenantA, logger: logger) { connection in
                        (try await Self.integer(connection, all), try await Self.integer(connection, ofB))
                    }
                    #expect(seenByA == rowsOfA && othersSeenByA == 0, "\(table) as tenant A: \(seenByA), B's \(othersSeenByA)")
                    let seenByB = try await client.withTenant(tenantB, logger: logger) { try await Self.integer($0, all) }
                    #expect(seenByB == rowsOfB, "\(table) as tenant B")
                    // The settings were transaction-local: the same (only) session sees nothing again.
                    #expect(try await client.withConnection { try await Self.integer($0, all) } == 0,
                            "\(table) after tenant and system transactions")
                    // Handing A's rows to B fails WITH CHECK; B's rows are out of A's reach.
                    #expect(await Self.sqlState {
                        try await client.withTenant(tenantA, logger: logger) { connection in
                            _ = try await connection.query(
                                "UPDATE ingestion.\(unescaped: table) SET tenant_id = \(tenantB) WHERE tenant_id = \(tenantA)",
                                logger: logger)
                        }
                    } == "42501", "\(table): moving A's rows to B as tenant A")
                    let touched = try await client.withTenant(tenantA, logger: logger) { connection in
                        try await Self.integer(connection, """
                            WITH d AS (DELETE FROM ingestion.\(unescaped: table) WHERE tenant_id = \(tenantB) RETURNING 1)
                            SELECT count(*)::int FROM d
                            """)
                    }
                    #expect(touched == 0, "\(table): B's rows deleted as tenant A")
                    let after = try await client.withSystemAccess(logger: logger) { try await Self.integer($0, ofB) }
                    #expect(after == rowsOfB, "\(table): B's rows after A's attempts")
                }

                // Inserts: for another tenant, or with no tenant set, refused (42501 insufficient_privilege).
                let insertSecret = { (tenant: UUID) -> PostgresQuery in
                    "INSERT INTO ingestion.webhook_secrets (registry_id, tenant_id, secret_sha256) VALUES (\(UUID()), \(tenant), \(String(repeating: "0", count: 64)))"
                }
                #expect(await Self.sqlState {
                    try await client.withTenant(tenantA, logger: logger) { _ = try await $0.query(insertSecret(tenantB), logger: logger) }
                } == "42501")
                #expect(await Self.sqlState {
                    try await client.withConnection { _ = try await $0.query(insertSecret(tenantA), logger: logger) }
                } == "42501", "an insert without any tenant setting")
                #expect(await Self.sqlState {
                    try await client.withTenant(tenantA, logger: logger) { _ = try await $0.query(insertSecret(tenantA), logger: logger) }
                } == nil, "an insert for the tenant set")
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
