import Foundation
import GantryRuntime
import GantryTesting
import Logging
import PostgresNIO
import Testing

@Suite struct MigratorTests {
    static let logger = Logger(label: "migrator-test")

    static let v1 = Migration(version: 1, name: "widgets", sql: """
        -- a comment; with a semicolon
        CREATE TABLE widgets (id integer PRIMARY KEY, label text NOT NULL DEFAULT 'a;b');
        CREATE FUNCTION widget_label(integer) RETURNS text AS $$
          SELECT 'w;' || $1::text;
        $$ LANGUAGE sql;
        """)
    static let v2 = Migration(version: 2, name: "widget_rows", sql: """
        ALTER TABLE widgets ADD COLUMN size integer;
        INSERT INTO widgets (id, size) VALUES (1, 10), (2, 20);
        """)

    /// Runs `body` with a fresh database and a running client on it.
    static func withDatabase(_ body: (TestDatabase, PostgresClient) async throws -> Void) async throws {
        let database = try await TestDatabase.create()
        do {
            try await database.withClient { client in try await body(database, client) }
            await database.drop()
        } catch {
            await database.drop()
            Issue.record("\(String(reflecting: error))")
            throw error
        }
    }

    static func recorded(_ client: PostgresClient, schema: String) async throws -> [(Int, String, String)] {
        let rows = try await client.query(
            "SELECT version, name, checksum FROM \(unescaped: schema).schema_migrations ORDER BY version", logger: logger)
        var result: [(Int, String, String)] = []
        for try await row in rows.decode((Int, String, String).self) { result.append(row) }
        return result
    }

    static func tableExists(_ client: PostgresClient, _ name: String) async throws -> Bool {
        let rows = try await client.query("SELECT to_regclass(\(name))::text", logger: logger)
        for try await value in rows.decode(String?.self) { return value != nil }
        return false
    }

    @Test func appliesInOrderAndRecordsChecksums() async throws {
        try await Self.withDatabase { _, client in
            // Given out of order: the migrator must not depend on the caller's order for correctness of records.
            let migrator = try Migrator(schema: "widget_service", migrations: [Self.v1, Self.v2])
            #expect(try await migrator.migrate(client: client, logger: Self.logger) == [0, 1, 2])
            let recorded = try await Self.recorded(client, schema: "widget_service")
            #expect(recorded.map(\.0) == [0, 1, 2])
            #expect(recorded.map(\.1) == ["runtime_outbox_inbox", "widgets", "widget_rows"])
            #expect(recorded.map(\.2) == migrator.migrations.map(\.checksum))
            #expect(recorded[1].2 == Checksum.sha256Hex(Array(Self.v1.sql.utf8)))
            // The SQL ran in the service's own schema, statement by statement.
            let rows = try await client.query(
                "SELECT widget_service.widget_label(2) || min(label), sum(size)::int FROM widget_service.widgets",
                logger: Self.logger)
            for try await (label, total) in rows.decode((String, Int).self) {
                #expect(label == "w;2a;b")
                #expect(total == 30)
            }
            #expect(try await Self.tableExists(client, "widget_service.outbox"))
            #expect(try await Self.tableExists(client, "widget_service.inbox"))
            #expect(try await !Self.tableExists(client, "public.widgets"))

            // A second run applies nothing.
            #expect(try await migrator.migrate(client: client, logger: Self.logger) == [])
            #expect(try await Self.recorded(client, schema: "widget_service").count == 3)

            // A later build with one more migration applies just that one.
            let v3 = Migration(version: 3, name: "more", sql: "CREATE INDEX widgets_size ON widgets (size)")
            let next = try Migrator(schema: "widget_service", migrations: [Self.v1, Self.v2, v3])
            #expect(try await next.migrate(client: client, logger: Self.logger) == [3])
        }
    }

    @Test func changedMigrationRefused() async throws {
        try await Self.withDatabase { _, client in
            try await Migrator(schema: "widget_service", migrations: [Self.v1]).migrate(client: client, logger: Self.logger)
            let edited = Migration(version: 1, name: "widgets", sql: Self.v1.sql + "\nCREATE TABLE extra (id int);")
            let migrator = try Migrator(schema: "widget_service", migrations: [edited, Self.v2])
            await #expect(throws: MigrationError.changed(version: 1, name: "widgets")) {
                try await migrator.migrate(client: client, logger: Self.logger)
            }
            // Nothing after the refusal was applied.
            #expect(try await Self.recorded(client, schema: "widget_service").map(\.0) == [0, 1])
            #expect(try await !Self.tableExists(client, "widget_service.extra"))
        }
    }

    @Test func unknownAppliedVersionRefused() async throws {
        try await Self.withDatabase { _, client in
            try await Migrator(schema: "widget_service", migrations: [Self.v1, Self.v2])
                .migrate(client: client, logger: Self.logger)
            let older = try Migrator(schema: "widget_service", migrations: [Self.v1])
            await #expect(throws: MigrationError.unknownApplied(version: 2)) {
                try await older.migrate(client: client, logger: Self.logger)
            }
        }
    }

    @Test func failingMigrationRollsBackEverything() async throws {
        try await Self.withDatabase { _, client in
            let broken = Migration(version: 2, name: "broken", sql: "CREATE TABLE fine (id int); SELECT * FROM nowhere;")
            let migrator = try Migrator(schema: "widget_service", migrations: [Self.v1, broken])
            await #expect(throws: (any Error).self) { try await migrator.migrate(client: client, logger: Self.logger) }
            #expect(try await !Self.tableExists(client, "widget_service.widgets"))
            #expect(try await !Self.tableExists(client, "widget_service.fine"))
            #expect(try await !Self.tableExists(client, "widget_service.schema_migrations"))
        }
    }

    @Test func racingMigratorsApplyOnce() async throws {
        try await Self.withDatabase { database, _ in
            // A slow migration widens the window in which both would apply it without the lock.
            let slow = Migration(version: 1, name: "slow", sql: """
                SELECT pg_sleep(0.3);
                CREATE TABLE counter (n integer);
                INSERT INTO counter VALUES (1);
                """)
            let migrator = try Migrator(schema: "race", migrations: [slow])
            let settings = try DatabaseSettings(url: database.url)
            let clients = (0..<4).map { _ in PostgresClient(settings: settings, logger: Self.logger) }
            let applied = try await withThrowingTaskGroup(of: [Int].self) { group in
                for client in clients { group.addTask { await client.run(); return [] } }
                var results: [[Int]] = []
                try await withThrowingTaskGroup(of: [Int].self) { racers in
                    for client in clients {
                        racers.addTask { try await migrator.migrate(client: client, logger: Self.logger) }
                    }
                    for try await result in racers { results.append(result) }
                }
                group.cancelAll()
                return results
            }
            #expect(applied.filter { !$0.isEmpty } == [[0, 1]])
            #expect(applied.filter(\.isEmpty).count == clients.count - 1)
            try await database.withClient { client in
                #expect(try await Self.recorded(client, schema: "race").map(\.0) == [0, 1])
                let rows = try await client.query("SELECT count(*)::int FROM race.counter", logger: Self.logger)
                for try await count in rows.decode(Int.self) { #expect(count == 1) }
            }
        }
    }

    @Test(arguments: ["", "Widgets", "bad-name", "a;drop", "x y", "schema1"])
    func invalidSchemaNameRefused(_ name: String) {
        #expect(throws: MigrationError.invalidSchemaName(name)) { try Migrator(schema: name, migrations: []) }
    }

    @Test func loadsNumberedFilesInOrder() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("migrations-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try "CREATE TABLE b (id int);".write(to: directory.appendingPathComponent("0010_second.sql"), atomically: true, encoding: .utf8)
        try "CREATE TABLE a (id int);".write(to: directory.appendingPathComponent("0002_first_one.sql"), atomically: true, encoding: .utf8)
        try "not sql".write(to: directory.appendingPathComponent("README.md"), atomically: true, encoding: .utf8)
        let migrations = try Migration.load(from: directory)
        #expect(migrations.map(\.version) == [2, 10])
        #expect(migrations.map(\.name) == ["first_one", "second"])
        #expect(migrations[0].sql == "CREATE TABLE a (id int);")

        try "x".write(to: directory.appendingPathComponent("2_again.sql"), atomically: true, encoding: .utf8)
        #expect(throws: MigrationError.duplicateVersion(2)) { try Migration.load(from: directory) }
        try FileManager.default.removeItem(at: directory.appendingPathComponent("2_again.sql"))

        try "x".write(to: directory.appendingPathComponent("init.sql"), atomically: true, encoding: .utf8)
        #expect(throws: MigrationError.badFileName("init.sql")) { try Migration.load(from: directory) }
    }
}
