import Foundation
import GantryRuntime
import Logging
import PostgresNIO

/// A fresh PostgreSQL database for one test, created through the admin URL
/// `GANTRY_TEST_DATABASE_URL` (default `postgres://gantry:gantry@127.0.0.1:5433/postgres`, the
/// cluster `make test` starts) and dropped by `drop()`.
package struct TestDatabase: Sendable {
    package let name: String
    /// `postgres://…/<name>`, for `GANTRY_DATABASE_URL`.
    package let url: String
    let adminSettings: DatabaseSettings

    package static var adminURL: String {
        ProcessInfo.processInfo.environment["GANTRY_TEST_DATABASE_URL"]
            ?? "postgres://gantry:gantry@127.0.0.1:5433/postgres"
    }

    /// Creates `gantry_test_<random>`.
    /// - Throws: when the server is unreachable (run `make test`, which starts it).
    package static func create() async throws -> TestDatabase {
        let admin = try DatabaseSettings(url: adminURL)
        let name = "gantry_test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(16)
        try await withAdminConnection(admin) { connection, logger in
            try await connection.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"), logger: logger)
        }
        var components = URLComponents()
        components.scheme = "postgres"
        components.user = admin.username
        components.password = admin.password
        components.host = admin.host
        components.port = admin.port
        components.path = "/\(name)"
        return TestDatabase(name: String(name), url: components.string ?? "", adminSettings: admin)
    }

    /// Drops the database, ending its connections first.
    package func drop() async {
        try? await Self.withAdminConnection(adminSettings) { connection, logger in
            try await connection.query(PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \(name) WITH (FORCE)"), logger: logger)
        }
    }

    /// Runs `body` with a client on this database (for assertions on what services stored).
    package func withClient<T: Sendable>(_ body: (PostgresClient) async throws -> T) async throws -> T {
        let client = PostgresClient(settings: try DatabaseSettings(url: url), logger: Logger(label: "test-db"))
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            return try await body(client)
        }
    }

    static func withAdminConnection(_ settings: DatabaseSettings,
                                    _ body: (PostgresConnection, Logger) async throws -> Void) async throws {
        let logger = Logger(label: "test-db-admin")
        let connection = try await PostgresConnection.connect(
            configuration: .init(host: settings.host, port: settings.port, username: settings.username,
                                 password: settings.password, database: settings.database, tls: .disable),
            id: 1, logger: logger)
        do {
            try await body(connection, logger)
            try await connection.close()
        } catch {
            try? await connection.close()
            throw error
        }
    }
}
