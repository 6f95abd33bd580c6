import Foundation
import Logging
import PostgresNIO

extension PostgresClient {
    /// A client for the database in `settings`, without TLS (the database is local to the deployment).
    /// Run it as a service (`client.run()`) before issuing queries.
    public convenience init(settings: DatabaseSettings, logger: Logger) {
        var configuration = PostgresClient.Configuration(
            host: settings.host, port: settings.port, username: settings.username,
            password: settings.password, database: settings.database, tls: .disable)
        configuration.options.maximumConnections = 10
        self.init(configuration: configuration, backgroundLogger: logger)
    }
}

/// One forward-only schema migration.
public struct Migration: Sendable, Equatable {
    /// Strictly increasing version, from the file name's number (`0001_init.sql` → 1).
    public let version: Int
    public let name: String
    public let sql: String

    public init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }

    /// SHA-256 of the SQL, hex; a migration whose recorded checksum differs was changed after it was applied.
    public var checksum: String { Checksum.sha256Hex(Array(sql.utf8)) }

    /// Loads `NNNN_name.sql` files from a directory (a service's `Migrations` resource folder), ordered by version.
    /// - Throws: `MigrationError` for a file name without a number or duplicate versions.
    public static func load(from directory: URL) throws -> [Migration] {
        let files = try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "sql" }
        var migrations: [Migration] = []
        for file in files {
            let base = file.deletingPathExtension().lastPathComponent
            let parts = base.split(separator: "_", maxSplits: 1)
            guard parts.count == 2, let version = Int(parts[0]), version > 0 else {
                throw MigrationError.badFileName(file.lastPathComponent)
            }
            migrations.append(Migration(version: version, name: String(parts[1]),
                                        sql: try String(contentsOf: file, encoding: .utf8)))
        }
        migrations.sort { $0.version < $1.version }
        for (a, b) in zip(migrations, migrations.dropFirst()) where a.version == b.version {
            throw MigrationError.duplicateVersion(a.version)
        }
        return migrations
    }
}

/// Why migration refused to run.
public enum MigrationError: Error, CustomStringConvertible, Equatable {
    case badFileName(String)
    case duplicateVersion(Int)
    case changed(version: Int, name: String)
    case unknownApplied(version: Int)
    case invalidSchemaName(String)

    public var description: String {
        switch self {
        case .badFileName(let name): "migration file '\(name)' is not named NNNN_name.sql"
        case .duplicateVersion(let version): "two migrations have version \(version)"
        case .changed(let version, let name):
            "migration \(version) (\(name)) was changed after it was applied; migrations are forward-only: add a new one"
        case .unknownApplied(let version):
            "the database has migration \(version) applied, which this build does not know (reordered or removed)"
        case .invalidSchemaName(let name): "'\(name)' is not a valid schema name"
        }
    }
}

/// Applies a service's migrations to its own schema (ARCHITECTURE.md, "Persistence"): in one transaction,
/// under a PostgreSQL advisory lock so that replicas starting together migrate once, recording each
/// version with its checksum in `<schema>.schema_migrations`.
public struct Migrator: Sendable {
    public let schema: String
    public let migrations: [Migration]

    /// - Parameter migrations: the service's own; the runtime's outbox and inbox tables are prepended as version 0.
    public init(schema: String, migrations: [Migration]) throws {
        guard !schema.isEmpty, schema.allSatisfy({ $0.isLowercase || $0 == "_" }) else {
            throw MigrationError.invalidSchemaName(schema)
        }
        self.schema = schema
        self.migrations = [RuntimeTables.migration(schema: schema)] + migrations
    }

    /// Applies what is missing. Returns the versions applied now.
    /// - Throws: `MigrationError` when an applied migration changed or is unknown; database errors as they come.
    @discardableResult
    public func migrate(client: PostgresClient, logger: Logger) async throws -> [Int] {
        do {
            return try await applyMissing(client: client, logger: logger)
        } catch let error as PostgresTransactionError {
            // postgres-nio wraps what the transaction body threw; a refusal must reach callers (and the
            // operator, through ServiceMain) as the MigrationError it is.
            if let refusal = error.closureError as? MigrationError { throw refusal }
            throw error
        }
    }

    private func applyMissing(client: PostgresClient, logger: Logger) async throws -> [Int] {
        let schema = self.schema
        let migrations = self.migrations
        return try await client.withTransaction(logger: logger) { connection in
            // Transaction-scoped lock keyed by the schema name: released at COMMIT or ROLLBACK.
            try await connection.query("SELECT pg_advisory_xact_lock(hashtext(\("gantry.migrate." + schema)))", logger: logger)
            // Data migrations must see and change every tenant's rows of row-level-secured tables (TenantScope).
            try await connection.query("SELECT set_config(\(TenantScope.systemSetting), 'on', true)", logger: logger)
            try await connection.query("CREATE SCHEMA IF NOT EXISTS \(unescaped: schema)", logger: logger)
            try await connection.query("""
                CREATE TABLE IF NOT EXISTS \(unescaped: schema).schema_migrations (
                  version integer PRIMARY KEY,
                  name text NOT NULL,
                  checksum text NOT NULL,
                  applied_at timestamptz NOT NULL DEFAULT now())
                """, logger: logger)
            var applied: [Int: String] = [:]
            let rows = try await connection.query(
                "SELECT version, checksum FROM \(unescaped: schema).schema_migrations", logger: logger)
            for try await (version, checksum) in rows.decode((Int, String).self) { applied[version] = checksum }
            let known = Dictionary(uniqueKeysWithValues: migrations.map { ($0.version, $0) })
            for version in applied.keys.sorted() where known[version] == nil {
                throw MigrationError.unknownApplied(version: version)
            }
            var appliedNow: [Int] = []
            for migration in migrations {
                if let checksum = applied[migration.version] {
                    guard checksum == migration.checksum else {
                        throw MigrationError.changed(version: migration.version, name: migration.name)
                    }
                    continue
                }
                try await connection.query("SET LOCAL search_path TO \(unescaped: schema)", logger: logger)
                for statement in SQLScript.statements(migration.sql) {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query("""
                    INSERT INTO \(unescaped: schema).schema_migrations (version, name, checksum)
                    VALUES (\(migration.version), \(migration.name), \(migration.checksum))
                    """, logger: logger)
                appliedNow.append(migration.version)
            }
            return appliedNow
        }
    }
}
