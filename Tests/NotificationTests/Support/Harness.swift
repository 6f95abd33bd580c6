import Foundation
import GantryRuntime
import GantryTesting
import HTTPTypes
import Hummingbird
import Logging
import NIOHTTP1
import Notification
import PostgresNIO
import ServiceLifecycle
import Testing

/// The notification service in-process on a real PostgreSQL database, with one real webhook receiver,
/// and helpers to drive its API as a tenant and as findings-policy (service token).
struct Harness: Sendable {
    static let secret = "webhook-secret-0123456789"
    /// Fast retries for tests: 100 ms doubling up to 400 ms, attempts cut at 1 s.
    static let fastRetries = [
        "GANTRY_NOTIFICATION_RETRY_BASE_MS": "100", "GANTRY_NOTIFICATION_RETRY_MAX_MS": "400",
        "GANTRY_NOTIFICATION_TIMEOUT_MS": "1000",
    ]

    let env: TestEnvironment
    let receiver: WebhookReceiver
    let receiverPort: Int
    /// Registered in the discovery running beside the service (its public routes check the pair).
    let tenantID: String
    let subscriptionID: String

    var base: String { env.url(.notification).absoluteString }
    var subscription: String { "\(base)/v1/tenants/\(tenantID)/subscriptions/\(subscriptionID)" }
    var hookURL: String { "http://127.0.0.1:\(receiverPort)/hook" }

    /// Runs `body` with a fresh database, the service and a receiver; `environment` adds `GANTRY_*` settings;
    /// `prepare` runs on the database before the service starts, with the receiver's port.
    static func run(environment: [String: String] = [:], receiverMode: WebhookReceiver.Mode = .answer(.noContent),
                    prepare: @Sendable (TestDatabase, Int) async throws -> Void = { _, _ in },
                    _ body: @Sendable (Harness) async throws -> Void) async throws {
        let database = try await TestDatabase.create()
        do {
            let receiverPort = try FreePort.next()
            try await prepare(database, receiverPort)
            let env = try TestEnvironment(database: database, extra: environment)
            let app = try await buildNotificationApplication(configuration: env.configuration(.notification))
            let receiver = WebhookReceiver(mode: receiverMode)
            let services: [any Service] = [try await env.discoveryApplication(), app, receiver.application(port: receiverPort)]
            try await withRunningServices(services, readyPorts: [env.discoveryPort, env.ports[.notification]!, receiverPort]) {
                // A hanging receiver is released before shutdown, which waits for its open requests.
                do {
                    let subscription = try await TestSubscription.create(in: env)
                    try await body(Harness(env: env, receiver: receiver, receiverPort: receiverPort,
                                           tenantID: subscription.tenantID, subscriptionID: subscription.subscriptionID))
                } catch {
                    await receiver.release()
                    throw error
                }
                await receiver.release()
            }
            await database.drop()
        } catch {
            await database.drop()
            throw error
        }
    }

    // MARK: Tenant API

    func createWebhook(url: String, secret: String = Harness.secret) async throws -> TestHTTP.Reply {
        try await TestHTTP.json(.POST, "\(subscription)/webhooks", ["url": url, "secret": secret])
    }

    func createChannel(_ fields: [String: Any]) async throws -> TestHTTP.Reply {
        try await TestHTTP.json(.POST, "\(subscription)/channels", fields)
    }

    /// Creates a channel and returns its ID; records an issue when refused.
    func channel(_ type: String, name: String? = nil, url: String? = nil, secret: String? = nil,
                 recipients: [String]? = nil) async throws -> String {
        var fields: [String: Any] = ["type": type, "name": name ?? type]
        if let url { fields["url"] = url }
        if let secret { fields["secret"] = secret }
        if let recipients { fields["recipients"] = recipients }
        let reply = try await createChannel(fields)
        try #require(reply.status == 201, "\(reply.text)")
        return try #require(try reply.object()["id"] as? String)
    }

    func rule(_ kind: String, channels: [String], minSeverity: String? = nil, minConsecutiveFailures: Int? = nil,
              name: String? = nil) async throws -> TestHTTP.Reply {
        var fields: [String: Any] = ["name": name ?? kind, "kind": kind, "channelIds": channels]
        if let minSeverity { fields["minSeverity"] = minSeverity }
        if let minConsecutiveFailures { fields["minConsecutiveFailures"] = minConsecutiveFailures }
        return try await TestHTTP.json(.POST, "\(subscription)/rules", fields)
    }

    func deliveries(query: String = "") async throws -> [[String: Any]] {
        let reply = try await TestHTTP.send(.GET, "\(subscription)/deliveries\(query)")
        return (try reply.object()["items"] as? [[String: Any]]) ?? []
    }

    func delivery(_ id: String) async throws -> [String: Any] {
        try await TestHTTP.send(.GET, "\(subscription)/deliveries/\(id)").object()
    }

    func alerts() async throws -> [[String: Any]] {
        let reply = try await TestHTTP.send(.GET, "\(subscription)/alerts")
        return (try reply.object()["items"] as? [[String: Any]]) ?? []
    }

    func alertRecord(_ messageID: String) async throws -> [String: Any]? {
        try await alerts().first { $0["messageId"] as? String == messageID }
    }

    // MARK: Alerts, as a peer sends them

    static let digest = "sha256:" + String(repeating: "ab", count: 32)

    static func finding(_ id: String, _ package: String = "musl", severity: String = "Critical") -> [String: Any] {
        ["vulnerabilityId": id, "packageName": package, "installedVersion": "1.1.18-r3", "fixedVersion": "1.1.18-r4",
         "severity": severity]
    }

    func alert(_ kind: String = "imageUnhealthy", messageID: String = "alert:\(UUID().uuidString.lowercased())",
               digest: String = Harness.digest, findings: [[String: Any]] = [Harness.finding("CVE-2019-14697")],
               extra: [String: Any] = [:]) -> [String: Any] {
        var alert: [String: Any] = [
            "messageId": messageID, "tenantId": tenantID, "subscriptionId": subscriptionID, "kind": kind,
            "imageDigest": digest, "repositoryName": "library/alpine", "registryHost": "registry.example.com",
            "summary": "\(findings.count) vulnerability findings should be resolved", "findings": findings,
        ]
        alert.merge(extra) { $1 }
        return alert
    }

    func raise(_ alert: [String: Any]) async throws -> TestHTTP.Reply {
        let token = try await env.tokens(issuer: "findings-policy").token(for: "notification")
        return try await TestHTTP.json(.POST, "\(base)/internal/v1/alerts", alert, headers: [
            "Content-Type": "application/json", "Authorization": "Bearer \(token)"])
    }

    /// Raises `alert`, expects 202, returns the number of deliveries queued.
    @discardableResult
    func raised(_ alert: [String: Any], sourceLocation: SourceLocation = #_sourceLocation) async throws -> Int {
        let reply = try await raise(alert)
        #expect(reply.status == 202, "\(reply.text)", sourceLocation: sourceLocation)
        return try reply.object()["deliveries"] as? Int ?? -1
    }

    /// An RFC 3339 date-time, with or without fractional seconds.
    static func date(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text)
    }

    /// Raises an alert given as JSON bytes; returns the number of deliveries queued.
    func raised(json: Data) async throws -> Int {
        let token = try await env.tokens(issuer: "findings-policy").token(for: "notification")
        let reply = try await TestHTTP.send(.POST, "\(base)/internal/v1/alerts", body: json, headers: [
            "Content-Type": "application/json", "Authorization": "Bearer \(token)"])
        #expect(reply.status == 202, "\(reply.text)")
        return try reply.object()["deliveries"] as? Int ?? -1
    }

    /// Runs SQL on the service's database with system access (every tenant's rows).
    func execute(_ sql: String) async throws {
        try await env.database.withClient { client in
            try await client.withSystemAccess(logger: Logger(label: "notification-test")) { connection in
                try await connection.query(PostgresQuery(unsafeSQL: sql), logger: Logger(label: "notification-test"))
                return
            }
        }
    }

    /// One integer from a SQL query on the service's database, seeing every tenant's rows (system access).
    func count(_ sql: String) async throws -> Int {
        try await env.database.withClient { client in
            try await client.withSystemAccess(logger: Logger(label: "notification-test")) { connection in
                var value = 0
                for try await count in try await connection.query(PostgresQuery(unsafeSQL: sql), logger: Logger(label: "notification-test"))
                    .decode(Int.self) { value = count }
                return value
            }
        }
    }
}
