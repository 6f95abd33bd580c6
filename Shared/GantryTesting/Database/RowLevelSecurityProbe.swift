import Foundation
import GantryRuntime
import Logging
import PostgresNIO
import Testing

/// SQL-level checks of a service's row-level security (issue 6, "Isolation"; `TenantScope` in GantryRuntime),
/// run as the service's own database role on a client whose pool holds ONE connection, so consecutive calls
/// provably reuse one session (a transaction-local setting that leaked would show in the next call).
///
/// Each service's test seeds two tenants' rows (service-specific), then calls `expectTablesSecured(schema:)`
/// and `check(schema:table:…)` for every table with a `tenant_id` column, found in `information_schema`, so a
/// table added later without a policy, or without rows in the fixture, fails.
package struct RowLevelSecurityProbe: Sendable {
    /// A client on the service's database, pool of one connection; run while `run(_:_:)`'s body runs.
    package let client: PostgresClient
    package let logger: Logger

    /// One table (`relkind` `r` or `p`) of a schema, as the catalog describes it.
    package struct Table: Sendable, Equatable {
        package let name: String
        /// The table has a `tenant_id` column (a tenant table).
        package let hasTenantID: Bool
        /// `pg_class.relrowsecurity`: row security enabled.
        package let enabled: Bool
        /// `pg_class.relforcerowsecurity`: enforced for the tables' owner too (services connect as the owner).
        package let forced: Bool
        /// A `tenant_isolation` policy for ALL commands exists.
        package let policy: Bool
        /// That policy's USING and WITH CHECK both read the `gantry.tenant_id` setting.
        package let policyReadsTenant: Bool
    }

    /// Runs `body` with a probe on `database` (a pool of one connection, as the service's role).
    package static func run<T: Sendable>(_ database: TestDatabase, _ body: (RowLevelSecurityProbe) async throws -> T) async throws -> T {
        let settings = try DatabaseSettings(url: database.url)
        var configuration = PostgresClient.Configuration(
            host: settings.host, port: settings.port, username: settings.username, password: settings.password,
            database: settings.database, tls: .disable)
        configuration.options.maximumConnections = 1
        let logger = Logger(label: "test-rls")
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            return try await body(RowLevelSecurityProbe(client: client, logger: logger))
        }
    }

    /// The first column of the first row as an integer; -1 when there is no row.
    package static func integer(_ connection: PostgresConnection, _ query: PostgresQuery,
                                logger: Logger = Logger(label: "test-rls")) async throws -> Int {
        for try await value in try await connection.query(query, logger: logger).decode(Int.self) { return value }
        return -1
    }

    /// The SQLSTATE of the PostgreSQL error `body` throws (e.g. `42501` insufficient_privilege); nil when it succeeds.
    package static func sqlState(_ body: () async throws -> Void) async -> String? {
        do {
            try await body()
            return nil
        } catch let error as PSQLError {
            return error.serverInfo?[.sqlState] ?? "\(error)"
        } catch {
            return "not a PostgreSQL error: \(error)"
        }
    }

    /// Every table of `schema` by name, with its row-security state.
    package func tables(schema: String) async throws -> [Table] {
        var tables: [Table] = []
        let rows = try await client.query("""
            SELECT c.relname::text,
              EXISTS (SELECT FROM information_schema.columns col
                      WHERE col.table_schema = \(schema) AND col.table_name = c.relname AND col.column_name = 'tenant_id'),
              c.relrowsecurity, c.relforcerowsecurity,
              EXISTS (SELECT FROM pg_policies p WHERE p.schemaname = n.nspname AND p.tablename = c.relname
                        AND p.policyname = 'tenant_isolation' AND p.cmd = 'ALL'),
              EXISTS (SELECT FROM pg_policies p WHERE p.schemaname = n.nspname AND p.tablename = c.relname
                        AND p.policyname = 'tenant_isolation' AND p.cmd = 'ALL'
                        AND p.qual LIKE '%gantry.tenant_id%' AND p.with_check LIKE '%gantry.tenant_id%')
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = \(schema) AND c.relkind IN ('r', 'p')
            ORDER BY 1
            """, logger: logger)
        for try await (name, tenant, enabled, forced, policy, reads) in rows.decode((String, Bool, Bool, Bool, Bool, Bool).self) {
            tables.append(Table(name: name, hasTenantID: tenant, enabled: enabled, forced: forced, policy: policy,
                                policyReadsTenant: reads))
        }
        return tables
    }

    /// The names of `schema`'s tables with a `tenant_id` column, sorted.
    package func tenantTables(schema: String) async throws -> [String] {
        try await tables(schema: schema).filter(\.hasTenantID).map(\.name)
    }

    /// Expects the current role to be no superuser and without BYPASSRLS (either ignores every policy), and every
    /// table of `schema` with `tenant_id` to have row security enabled and forced with a `tenant_isolation` policy
    /// reading `gantry.tenant_id`.
    /// - Returns: every table of `schema`, for the caller's own expectations on the lists.
    @discardableResult
    package func expectTablesSecured(schema: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> [Table] {
        for try await (superuser, bypass) in try await client.query(
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user", logger: logger).decode((Bool, Bool).self) {
            #expect(!superuser && !bypass, "superusers and BYPASSRLS roles ignore every policy", sourceLocation: sourceLocation)
        }
        let tables = try await tables(schema: schema)
        for table in tables where table.hasTenantID {
            #expect(table.enabled && table.forced && table.policy && table.policyReadsTenant,
                    "\(schema).\(table.name): enabled \(table.enabled), forced \(table.forced), policy \(table.policy), reads tenant \(table.policyReadsTenant)",
                    sourceLocation: sourceLocation)
        }
        return tables
    }

    /// Checks `schema.table`, whose rows belong to the tenant in column `key` and which holds rows of both tenants:
    /// - row security enabled and forced with a `tenant_isolation` policy reading `gantry.tenant_id`;
    /// - with system access both tenants' rows (exactly `expectedRows` when given, else at least one each), nothing else;
    /// - no rows without a setting; as A exactly A's rows and none of B's; as B exactly B's rows;
    /// - the same pooled session (same backend pid) sees no rows again after those transactions (settings are
    ///   transaction-local);
    /// - as A: inserting a copy of A's row relabelled B, and moving A's rows to B, fail with 42501; updating and
    ///   deleting B's rows change nothing; with system access every row is still there.
    package func check(schema: String, table: String, key: String = "tenant_id", tenantA: UUID, tenantB: UUID,
                       expectedRows: (a: Int, b: Int)? = nil, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let name = "\(schema).\(table)", logger = logger
        let secured = try await tables(schema: schema).first { $0.name == table }
        #expect(secured.map { $0.enabled && $0.forced && $0.policy && $0.policyReadsTenant } == true,
                "\(name): \(String(describing: secured))", sourceLocation: sourceLocation)
        func integer(_ connection: PostgresConnection, _ sql: String) async throws -> Int {
            try await Self.integer(connection, PostgresQuery(unsafeSQL: sql), logger: logger)
        }
        let a = "'\(tenantA.uuidString.lowercased())'::uuid", b = "'\(tenantB.uuidString.lowercased())'::uuid"
        let all = "SELECT count(*)::int FROM \(name)"
        let ofA = "SELECT count(*)::int FROM \(name) WHERE \(key) = \(a)"
        let ofB = "SELECT count(*)::int FROM \(name) WHERE \(key) = \(b)"
        let (rowsA, rowsB, total) = try await client.withSystemAccess(logger: logger) { connection in
            (try await integer(connection, ofA), try await integer(connection, ofB), try await integer(connection, all))
        }
        if let expectedRows {
            #expect(rowsA == expectedRows.a && rowsB == expectedRows.b,
                    "\(name) with system access: A \(rowsA), B \(rowsB), expected \(expectedRows)", sourceLocation: sourceLocation)
        }
        #expect(rowsA > 0 && rowsB > 0, "\(name): the fixture must hold rows of both tenants (A \(rowsA), B \(rowsB))",
                sourceLocation: sourceLocation)
        #expect(total == rowsA + rowsB, "\(name) with system access: \(total) rows", sourceLocation: sourceLocation)
        #expect(try await client.withConnection { try await integer($0, all) } == 0, "\(name) without a tenant setting",
                sourceLocation: sourceLocation)
        let (seenByA, bSeenByA, pidInside) = try await client.withTenant(tenantA, logger: logger) { connection in
            (try await integer(connection, all), try await integer(connection, ofB), try await integer(connection, "SELECT pg_backend_pid()"))
        }
        #expect(seenByA == rowsA && bSeenByA == 0, "\(name) as tenant A: \(seenByA) rows, \(bSeenByA) of B",
                sourceLocation: sourceLocation)
        #expect(try await client.withTenant(tenantB, logger: logger) { try await integer($0, all) } == rowsB,
                "\(name) as tenant B", sourceLocation: sourceLocation)
        let (pidAfter, seenAfter) = try await client.withConnection { connection in
            (try await integer(connection, "SELECT pg_backend_pid()"), try await integer(connection, all))
        }
        #expect(pidAfter == pidInside && seenAfter == 0, "\(name) after tenant and system transactions on one session",
                sourceLocation: sourceLocation)

        // A copy of one of A's rows, relabelled B, inserted while A is set.
        let insert = """
            INSERT INTO \(name) SELECT (jsonb_populate_record(NULL::\(name), to_jsonb(x) || jsonb_build_object('\(key)', \(b)))).*
            FROM \(name) x WHERE x.\(key) = \(a) LIMIT 1
            """
        #expect(await Self.sqlState {
            try await client.withTenant(tenantA, logger: logger) { _ = try await integer($0, "WITH i AS (\(insert) RETURNING 1) SELECT count(*)::int FROM i") }
        } == "42501", "\(name): inserting B's row as tenant A", sourceLocation: sourceLocation)
        #expect(await Self.sqlState {
            try await client.withTenant(tenantA, logger: logger) { connection in
                _ = try await integer(connection, "WITH u AS (UPDATE \(name) SET \(key) = \(b) WHERE \(key) = \(a) RETURNING 1) SELECT count(*)::int FROM u")
            }
        } == "42501", "\(name): moving A's rows to B as tenant A", sourceLocation: sourceLocation)
        let touched = try await client.withTenant(tenantA, logger: logger) { connection in
            try await integer(connection, """
                WITH u AS (UPDATE \(name) SET \(key) = \(key) WHERE \(key) = \(b) RETURNING 1),
                     d AS (DELETE FROM \(name) WHERE \(key) = \(b) RETURNING 1)
                SELECT ((SELECT count(*) FROM u) + (SELECT count(*) FROM d))::int
                """)
        }
        #expect(touched == 0, "\(name): B's rows updated or deleted as tenant A", sourceLocation: sourceLocation)
        let (afterB, after) = try await client.withSystemAccess(logger: logger) { connection in
            (try await integer(connection, ofB), try await integer(connection, all))
        }
        #expect(afterB == rowsB && after == total, "\(name): rows changed by refused writes", sourceLocation: sourceLocation)
    }

    /// Runs `check` on every table of `schema` with a `tenant_id` column (all must hold rows of both tenants), expects
    /// `known` among them, then no setting left on the pooled session.
    /// - Parameter expectedRows: exact (A, B) row counts by table name, for the tables listed.
    /// - Returns: the tables checked.
    @discardableResult
    package func checkTenantTables(schema: String, known: Set<String>, tenantA: UUID, tenantB: UUID,
                                   expectedRows: [String: (a: Int, b: Int)] = [:],
                                   sourceLocation: SourceLocation = #_sourceLocation) async throws -> [String] {
        let tables = try await tenantTables(schema: schema)
        #expect(known.isSubset(of: Set(tables)), "\(schema): \(tables)", sourceLocation: sourceLocation)
        for table in tables {
            try await check(schema: schema, table: table, tenantA: tenantA, tenantB: tenantB, expectedRows: expectedRows[table],
                            sourceLocation: sourceLocation)
        }
        try await expectNoSettingLeft(sourceLocation: sourceLocation)
        return tables
    }

    /// Expects `insert(tenant)` (one row for `tenant`) to fail with 42501 for B while A is set and for A without
    /// any setting, and to succeed for A while A is set (that transaction is then rolled back, storing nothing).
    package func expectInserts(_ insert: (UUID) -> PostgresQuery, tenantA: UUID, tenantB: UUID,
                               sourceLocation: SourceLocation = #_sourceLocation) async {
        let logger = logger
        #expect(await Self.sqlState {
            try await client.withTenant(tenantA, logger: logger) { _ = try await $0.query(insert(tenantB), logger: logger) }
        } == "42501", "an insert for tenant B while A is set", sourceLocation: sourceLocation)
        #expect(await Self.sqlState {
            try await client.withConnection { _ = try await $0.query(insert(tenantA), logger: logger) }
        } == "42501", "an insert without any tenant setting", sourceLocation: sourceLocation)
        struct RollBack: Error {}
        let own = await Self.sqlState {
            do {
                try await client.withTenant(tenantA, logger: logger) { connection in
                    _ = try await connection.query(insert(tenantA), logger: logger)
                    throw RollBack()
                }
            } catch is RollBack {}
        }
        #expect(own == nil, "an insert for the tenant set", sourceLocation: sourceLocation)
    }

    /// Expects neither `gantry.tenant_id` nor `gantry.system` to be set on the pooled session outside a transaction.
    package func expectNoSettingLeft(sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let logger = logger
        let leftover = try await client.withConnection { connection in
            for try await (tenant, system) in try await connection.query("""
                SELECT COALESCE(current_setting('gantry.tenant_id', true), ''), COALESCE(current_setting('gantry.system', true), '')
                """, logger: logger).decode((String, String).self) { return tenant + system }
            return "?"
        }
        #expect(leftover == "", "settings left on the pooled session", sourceLocation: sourceLocation)
    }
}
