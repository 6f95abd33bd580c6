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

    /// The tenant tables as the catalog lists them, with whether row security is enabled and forced and whether the
    /// `tenant_isolation` policy exists.
    static func tenantTables(_ connection: PostgresConnection, schema: String) async throws
        -> [(table: String, enabled: Bool, forced: Bool, policy: Bool)] {
        var tables: [(String, Bool, Bool, Bool)] = []
        for try await row in try await connection.query("""
            SELECT c.relname::text, c.relrowsecurity, c.relforcerowsecurity,
              EXISTS (SELECT FROM pg_policies p WHERE p.schemaname = \(schema) AND p.tablename = c.relname
                        AND p.policyname = 'tenant_isolation')
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = \(schema) AND c.relkind IN ('r', 'p') AND EXISTS (
              SELECT FROM information_schema.columns col
              WHERE col.table_schema = \(schema) AND col.table_name = c.relname AND col.column_name = 'tenant_id')
            ORDER BY 1
            """, logger: logger).decode((String, Bool, Bool, Bool).self) {
            tables.append(row)
        }
        return tables.map { (table: $0.0, enabled: $0.1, forced: $0.2, policy: $0.3) }
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
            try await h.env.database.withClient { client in
                try await client.withConnection { connection in
                    for try await (superuser, bypass) in try await connection.query(
                        "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user", logger: Self.logger
                    ).decode((Bool, Bool).self) {
                        #expect(!superuser && !bypass, "superusers and BYPASSRLS roles ignore every policy")
                    }
                    let tables = try await Self.tenantTables(connection, schema: "findings_policy")
                    for entry in tables {
                        #expect(entry.enabled && entry.forced && entry.policy,
                                "\(entry.table): enabled \(entry.enabled), forced \(entry.forced), policy \(entry.policy)")
                    }
                    // A new table without tenant_id must be judged (and listed) as holding no tenant's data.
                    var shared: Set<String> = []
                    for try await table in try await connection.query("""
                        SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                        WHERE n.nspname = 'findings_policy' AND c.relkind IN ('r', 'p') AND NOT EXISTS (
                          SELECT FROM information_schema.columns col WHERE col.table_schema = 'findings_policy'
                            AND col.table_name = c.relname AND col.column_name = 'tenant_id')
                        """, logger: Self.logger).decode(String.self) { shared.insert(table) }
                    #expect(shared == ["inbox", "outbox", "schema_migrations"])
                    // The tables of migrations 1-3; a new one is checked above without being listed here.
                    #expect(Set(tables.map(\.table)).isSuperset(of: [
                        "assessments", "disable_rules", "findings", "image_tags", "rule_audit", "secure_scores",
                        "vex_audit", "vex_documents",
                    ]))
                }
            }
        }
    }

    @Test("no tenant set: no rows; tenant A set: only A's rows, and writing B's fails (42501); system access sees all")
    func sqlLevelIsolation() async throws {
        try await FindingsPolicyServiceTests.withService { h in
            let b = Harness(env: h.env, token: h.token)
            try await Self.seed(h, digest: Harness.digest(1))
            try await Self.seed(b, digest: Harness.digest(2))
            let tenantA = try #require(UUID(uuidString: h.tenantID)), tenantB = try #require(UUID(uuidString: b.tenantID))
            try await Self.withOneConnection(h.env.database) { client in
                let logger = Self.logger
                let tables = try await client.withConnection { try await Self.tenantTables($0, schema: "findings_policy") }
                #expect(tables.count >= 8)
                for table in tables.map(\.table) {
                    let all: PostgresQuery = "SELECT count(*)::int FROM findings_policy.\(unescaped: table)"
                    let ofA: PostgresQuery = "SELECT count(*)::int FROM findings_policy.\(unescaped: table) WHERE tenant_id = \(tenantA)"
                    let ofB: PostgresQuery = "SELECT count(*)::int FROM findings_policy.\(unescaped: table) WHERE tenant_id = \(tenantB)"
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
                                "UPDATE findings_policy.\(unescaped: table) SET tenant_id = \(tenantB) WHERE tenant_id = \(tenantA)",
                                logger: logger)
                        }
                    } == "42501", "\(table): moving A's rows to B as tenant A")
                    let touched = try await client.withTenant(tenantA, logger: logger) { connection in
                        try await Self.integer(connection, """
                            WITH d AS (DELETE FROM findings_policy.\(unescaped: table) WHERE tenant_id = \(tenantB) RETURNING 1)
                            SELECT count(*)::int FROM d
                            """)
                    }
                    #expect(touched == 0, "\(table): B's rows deleted as tenant A")
                    let after = try await client.withSystemAccess(logger: logger) { try await Self.integer($0, ofB) }
                    #expect(after == rowsOfB, "\(table): B's rows after A's attempts")
                }

                // Inserts: for another tenant, or with no tenant set, refused (42501 insufficient_privilege).
                let insertRule = { (tenant: UUID) -> PostgresQuery in
                    """
                    INSERT INTO findings_policy.disable_rules (id, tenant_id, subscription_id, scope_kind, criteria, justification,
                      created_at, created_by, updated_at, updated_by)
                    VALUES (\(UUID()), \(tenant), \(UUID()), 'subscription', '{}', 'x', now(), 'x', now(), 'x')
                    """
                }
                #expect(await Self.sqlState {
                    try await client.withTenant(tenantA, logger: logger) { _ = try await $0.query(insertRule(tenantB), logger: logger) }
                } == "42501")
                #expect(await Self.sqlState {
                    try await client.withConnection { _ = try await $0.query(insertRule(tenantA), logger: logger) }
                } == "42501", "an insert without any tenant setting")
                #expect(await Self.sqlState {
                    try await client.withTenant(tenantA, logger: logger) { _ = try await $0.query(insertRule(tenantA), logger: logger) }
                } == nil, "an insert for the tenant set")
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

            // B's user, under B's tenant, asks for A's subscription: nothing of A's.
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
            #expect(try await listed("/assessments") == "200 0")
            #expect(try await listed("/rules") == "200 0")
            #expect(try await listed("/vexDocuments") == "200 0")
            #expect(try await listed("/subAssessments", "value") == "200 0")
        }
    }
}
