import Discovery
import Foundation
import GantryRuntime
import GantryTesting
import Ingestion
import Logging
import NIOHTTP1
import PostgresNIO
import ServiceLifecycle
import Testing

/// Discovery and ingestion running in-process on one fresh database, with a tenant, a subscription
/// and one registry registered through discovery's API. The scanner is not running: scan requests stay
/// in `ingestion.outbox` while the relay retries in the background.
struct IngestionHarness: Sendable {
    let env: TestEnvironment
    let database: TestDatabase
    let tenantID: String
    let subscriptionID: String
    let registryID: String
    let loginServer: String

    var ingestion: String { env.url(.ingestion).absoluteString }
    var discovery: String { env.url(.discovery).absoluteString }

    /// - Parameters:
    ///   - loginServer: the registry host to register.
    ///   - planEnabled: whether the subscription's plan is enabled.
    ///   - environment: extra `GANTRY_*` settings for the services.
    static func run(loginServer: String = "registrycluster.local", planEnabled: Bool = true,
                    environment: [String: String] = [:],
                    _ body: @Sendable (IngestionHarness) async throws -> Void) async throws {
        let database = try await TestDatabase.create()
        do {
            let env = try TestEnvironment(database: database, extra: environment)
            let services: [any Service] = [
                try await buildDiscoveryApplication(configuration: env.configuration(.discovery)),
                try await buildIngestionApplication(configuration: env.configuration(.ingestion)),
            ]
            try await withRunningServices(services, readyPorts: [env.ports[.discovery]!, env.ports[.ingestion]!]) {
                let ids = try await register(discovery: env.url(.discovery).absoluteString, tenant: "ingestion-tests",
                                             subscription: "main", planEnabled: planEnabled, loginServer: loginServer,
                                             credentials: ["username": "robot", "password": "robot-password"])
                try await body(IngestionHarness(env: env, database: database, tenantID: ids.tenant,
                                                subscriptionID: ids.subscription, registryID: ids.registry,
                                                loginServer: loginServer))
            }
        } catch {
            await database.drop()
            throw error
        }
        await database.drop()
    }

    /// Creates a tenant, a subscription with its plan enabled or not, and registry `loginServer` (with basic-auth
    /// `credentials` when given) through discovery's API.
    /// - Returns: the IDs discovery answered (lower-case UUIDs).
    static func register(discovery: String, tenant name: String, subscription subscriptionName: String, planEnabled: Bool = true,
                         loginServer: String, credentials: [String: String]? = nil)
        async throws -> (tenant: String, subscription: String, registry: String) {
        let tenant = try await TestHTTP.json(.POST, "\(discovery)/v1/tenants", ["name": name])
        try #require(tenant.status == 201, "\(tenant.text)")
        let tenantIDValue = try tenant.object()["id"]
        let tenantID = try #require(tenantIDValue as? String)
        let subscription = try await TestHTTP.json(.POST, "\(discovery)/v1/tenants/\(tenantID)/subscriptions",
                                                   ["name": subscriptionName, "cloudType": "commercial"])
        try #require(subscription.status == 201, "\(subscription.text)")
        let subscriptionIDValue = try subscription.object()["id"]
        let subscriptionID = try #require(subscriptionIDValue as? String)
        let plan = try await TestHTTP.json(.PUT, "\(discovery)/v1/tenants/\(tenantID)/subscriptions/\(subscriptionID)/plan",
                                           ["enabled": planEnabled])
        try #require(plan.status == 200, "\(plan.text)")
        var fields: [String: Any] = ["loginServer": loginServer]
        if let credentials { fields["credentials"] = credentials }
        let registry = try await TestHTTP.json(
            .POST, "\(discovery)/v1/tenants/\(tenantID)/subscriptions/\(subscriptionID)/registries", fields)
        try #require(registry.status == 201, "\(registry.text)")
        let registryIDValue = try registry.object()["id"]
        return (tenantID, subscriptionID, try #require(registryIDValue as? String))
    }

    /// A second tenant ("second") with an enabled plan and registry `loginServer`, registered through discovery.
    func secondTenant(loginServer: String) async throws -> (tenant: String, registry: String) {
        let ids = try await Self.register(discovery: discovery, tenant: "second", subscription: "second", loginServer: loginServer)
        return (ids.tenant, ids.registry)
    }

    static let notificationMediaType = "application/vnd.docker.distribution.events.v1+json"

    /// `POST /v1/events/<kind>` (distribution, acr, harbor) with raw bytes and an optional `Authorization` header.
    /// - Parameter contentType: nil sends no Content-Type.
    func post(_ body: Data, contentType: String? = IngestionHarness.notificationMediaType, kind: String = "distribution",
              authorization: String? = nil) async throws -> TestHTTP.Reply {
        var headers: [String: String] = [:]
        if let contentType { headers["Content-Type"] = contentType }
        if let authorization { headers["Authorization"] = authorization }
        return try await TestHTTP.send(.POST, "\(ingestion)/v1/events/\(kind)", body: body, headers: headers)
    }

    /// `POST /v1/events/distribution` with an envelope of `events`.
    func post(events: [[String: Any]], contentType: String? = IngestionHarness.notificationMediaType,
              authorization: String? = nil) async throws -> TestHTTP.Reply {
        try await post(try JSONSerialization.data(withJSONObject: ["events": events]), contentType: contentType,
                       authorization: authorization)
    }

    /// Requires 202; returns the receipt's counts as `[received, recorded, duplicates, ignored]`.
    func receipt(_ reply: TestHTTP.Reply, registryID: String? = nil,
                 sourceLocation: SourceLocation = #_sourceLocation) throws -> [Int] {
        try #require(reply.status == 202, "\(reply.text)", sourceLocation: sourceLocation)
        let receipt = try reply.object()
        #expect(receipt["registryId"] as? String == registryID ?? self.registryID, sourceLocation: sourceLocation)
        return ["received", "recorded", "duplicates", "ignored"].map { receipt[$0] as? Int ?? -1 }
    }

    /// `PUT …/webhook-secret`; returns the secret.
    func setSecret(_ secret: String? = nil, registryID: String? = nil, tenantID: String? = nil) async throws -> String {
        let body: [String: Any] = secret.map { ["secret": $0] } ?? [:]
        let reply = try await TestHTTP.json(
            .PUT, "\(ingestion)/v1/tenants/\(tenantID ?? self.tenantID)/registries/\(registryID ?? self.registryID)/webhook-secret", body)
        try #require(reply.status == 200, "\(reply.text)")
        return try #require(try reply.object()["secret"] as? String)
    }

    /// Waits until the event processor has handled every recorded event.
    func processed(timeout: Duration = .seconds(30)) async throws {
        _ = try await eventually("every recorded event to be processed", timeout: timeout) {
            try await pendingEvents() == 0 ? true : nil
        }
    }

    func pendingEvents() async throws -> Int {
        try await database.withSystemAccess { client in
            var pending = -1
            for try await count in try await client.query(
                "SELECT count(*)::int FROM ingestion.events WHERE processed_at IS NULL").decode(Int.self) { pending = count }
            return pending
        }
    }

    /// `GET …/images` as `repository@digest [tags] pushed pulled deleted` lines.
    func images(includeDeleted: Bool = false) async throws -> [[String: Any]] {
        let reply = try await TestHTTP.send(
            .GET, "\(ingestion)/v1/tenants/\(tenantID)/registries/\(registryID)/images?includeDeleted=\(includeDeleted)")
        try #require(reply.status == 200, "\(reply.text)")
        return try #require(try reply.object()["items"] as? [[String: Any]])
    }

    /// The outcome text the processor wrote for each event, by event ID.
    func outcomes() async throws -> [String: String] {
        try await database.withSystemAccess { client in
            var rows: [String: String] = [:]
            for try await (id, outcome) in try await client.query(
                "SELECT event_id, coalesce(outcome, '-') FROM ingestion.events").decode((String, String).self) {
                rows[id] = outcome
            }
            return rows
        }
    }

    /// A manifest event as distribution sends it.
    func event(id: String = UUID().uuidString, action: String = "push",
               mediaType: String? = "application/vnd.docker.distribution.manifest.v2+json",
               digest: String? = IngestionHarness.digest("ab"), repository: String = "team/app", tag: String? = "1.0",
               host: String? = nil) -> [String: Any] {
        var target: [String: Any] = ["repository": repository, "size": 528, "length": 528]
        if let mediaType { target["mediaType"] = mediaType }
        if let digest {
            target["digest"] = digest
            target["url"] = "https://\(host ?? loginServer)/v2/\(repository)/manifests/\(digest)"
        }
        if let tag { target["tag"] = tag }
        return ["id": id, "timestamp": "2024-05-01T10:00:00Z", "action": action, "target": target,
                "request": ["id": UUID().uuidString, "addr": "10.1.2.3:51000", "host": host ?? loginServer,
                            "method": action == "push" ? "PUT" : "GET", "useragent": "docker/26.1"],
                "actor": ["name": "ci"], "source": ["addr": "registry-0:5000", "instanceID": UUID().uuidString]]
    }

    static func digest(_ seed: String) -> String { "sha256:" + String(repeating: seed, count: 64 / seed.count) }

    /// What was written: the row counts of `ingestion.events` and `ingestion.outbox`.
    func written() async throws -> [Int] {
        try await database.withSystemAccess { client in
            var events = -1, outbox = -1
            for try await count in try await client.query("SELECT count(*)::int FROM ingestion.events").decode(Int.self) { events = count }
            for try await count in try await client.query("SELECT count(*)::int FROM ingestion.outbox").decode(Int.self) { outbox = count }
            return [events, outbox]
        }
    }

    struct OutboxRow: Sendable {
        var messageID: String
        var destination: String
        var path: String
        var payload: String
        var delivered: Bool
    }

    func outbox() async throws -> [OutboxRow] {
        try await database.withClient { client in
            var rows: [OutboxRow] = []
            for try await (message, destination, path, payload, delivered) in try await client.query(
                "SELECT message_id, destination, path, payload, delivered_at IS NOT NULL FROM ingestion.outbox ORDER BY id")
                .decode((String, String, String, String, Bool).self) {
                rows.append(OutboxRow(messageID: message, destination: destination, path: path, payload: payload, delivered: delivered))
            }
            return rows
        }
    }

    /// `event_id action digest scan_requested` of every recorded event, by event ID.
    func recordedEvents() async throws -> [String] {
        try await database.withSystemAccess { client in
            var rows: [String] = []
            for try await (id, action, digest, scan, registry) in try await client.query(
                "SELECT event_id, action, coalesce(digest, '-'), scan_requested, registry_id FROM ingestion.events ORDER BY event_id")
                .decode((String, String, String, Bool, UUID).self) {
                #expect(registry.uuidString.lowercased() == registryID)
                rows.append("\(id) \(action) \(digest) \(scan)")
            }
            return rows
        }
    }
}

extension TestDatabase {
    /// Runs `body` in a transaction with system access: it sees and writes every tenant's rows of ingestion's
    /// row-level-secured tables, which a plain connection does not see (migration 5).
    func withSystemAccess<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await withClient { client in
            try await client.withSystemAccess(logger: IngestionHarness.testLogger) { try await body($0) }
        }
    }
}

extension PostgresConnection {
    /// `query(_:logger:)` with the tests' logger, so that assertions read as on a client.
    func query(_ query: PostgresQuery) async throws -> PostgresRowSequence {
        try await self.query(query, logger: IngestionHarness.testLogger)
    }
}

extension IngestionHarness {
    static let testLogger = Logger(label: "ingestion-test-db")
}
