import Discovery
import Foundation
import GantryRuntime
import GantryTesting
import Logging
import NIOHTTP1
import Notification
import PostgresNIO
import ServiceLifecycle
import Testing

/// A discovery service running in-process on a fresh database, and calls against it.
struct DiscoveryHarness: Sendable {
    let env: TestEnvironment
    let database: TestDatabase

    var base: String { env.url(.discovery).absoluteString }

    /// Creates a database, runs discovery on it for the length of `body`, then drops the database,
    /// whether `body` passed or threw.
    /// - Parameter notification: also run the notification service, which discovery's outbox sends alerts to.
    static func run(extra: [String: String] = [:], notification: Bool = false,
                    _ body: @Sendable (DiscoveryHarness) async throws -> Void) async throws {
        let database = try await TestDatabase.create()
        do {
            let env = try TestEnvironment(database: database, extra: extra)
            var services: [any Service] = [try await buildDiscoveryApplication(configuration: env.configuration(.discovery))]
            var ports = [env.ports[.discovery]!]
            if notification {
                services.append(try await buildNotificationApplication(configuration: env.configuration(.notification)))
                ports.append(env.ports[.notification]!)
            }
            let harness = DiscoveryHarness(env: env, database: database)
            try await withRunningServices(services, readyPorts: ports) {
                try await body(harness)
            }
        } catch {
            await database.drop()
            throw error
        }
        await database.drop()
    }

    func createTenant(_ name: String = "acme") async throws -> String {
        let reply = try await TestHTTP.json(.POST, "\(base)/v1/tenants", ["name": name])
        try #require(reply.status == 201, "\(reply.text)")
        let id = try reply.object()["id"]
        return try #require(id as? String)
    }

    func createSubscription(tenantID: String, name: String = "production") async throws -> String {
        let reply = try await TestHTTP.json(.POST, "\(base)/v1/tenants/\(tenantID)/subscriptions",
                                            ["name": name, "cloudType": "commercial"])
        try #require(reply.status == 201, "\(reply.text)")
        let id = try reply.object()["id"]
        return try #require(id as? String)
    }

    func registriesURL(tenantID: String, subscriptionID: String) -> String {
        "\(base)/v1/tenants/\(tenantID)/subscriptions/\(subscriptionID)/registries"
    }

    func lookup(_ host: String, token: String?) async throws -> TestHTTP.Reply {
        var headers: [String: String] = [:]
        if let token { headers["Authorization"] = "Bearer \(token)" }
        let query = host.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed) ?? host
        return try await TestHTTP.send(.GET, "\(base)/internal/v1/registries/lookup?host=\(query)", headers: headers)
    }

    /// Rows of one `text`-valued column (or expression) of a query, over every tenant's rows (system access:
    /// the tables have row-level security).
    func strings(_ query: PostgresQuery) async throws -> [String] {
        try await database.withClient { client in
            try await client.withSystemAccess(logger: Self.logger) { connection in
                var values: [String] = []
                for try await value in try await connection.query(query, logger: Self.logger).decode(String.self) {
                    values.append(value)
                }
                return values
            }
        }
    }

    static let logger = Logger(label: "test-db")

    /// `plan_changed_at` of the (only) subscription, in microseconds since 1970.
    func planChangedMicroseconds() async throws -> Int64 {
        let values = try await strings("SELECT (extract(epoch FROM plan_changed_at) * 1000000)::bigint::text FROM discovery.subscriptions")
        return try #require(values.count == 1 ? Int64(values[0]) : nil, "\(values)")
    }

    /// Rows of `table`, of every tenant (system access).
    func count(_ table: String) async throws -> Int {
        try await database.withClient { client in
            try await client.withSystemAccess(logger: Self.logger) { connection in
                for try await count in try await connection.query(PostgresQuery(unsafeSQL: "SELECT count(*)::int FROM \(table)"),
                                                                  logger: Self.logger).decode(Int.self) {
                    return count
                }
                return -1
            }
        }
    }
}


/// Parses the service's RFC 3339 timestamps, with or without fractional seconds.
func timestamp(_ value: Any?) -> Date? {
    guard let string = value as? String else { return nil }
    let fractional = ISO8601DateFormatter()
    fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return fractional.date(from: string) ?? ISO8601DateFormatter().date(from: string)
}
