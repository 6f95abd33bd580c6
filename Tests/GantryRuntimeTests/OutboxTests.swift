import AsyncHTTPClient
import Foundation
import GantryRuntime
import GantryTesting
import HTTPTypes
import Hummingbird
import Logging
import PostgresNIO
import ServiceLifecycle
import Testing

/// A real peer: answers `POST /internal/v1/alerts` with scripted statuses, behind the real service-token check.
actor Receiver {
    struct Received: Sendable {
        var body: String
        var requestID: String?
        var traceparent: String?
        var status: Int
    }

    private var script: [HTTPResponse.Status]
    private(set) var received: [Received] = []

    init(answers script: [HTTPResponse.Status] = []) { self.script = script }

    /// The next scripted status; 200 once the script is used up.
    func answer(body: String, requestID: String?, traceparent: String?) -> HTTPResponse.Status {
        let status = script.isEmpty ? .ok : script.removeFirst()
        received.append(Received(body: body, requestID: requestID, traceparent: traceparent, status: status.code))
        return status
    }

    nonisolated func application(port: Int, tokens: ServiceTokens, audience: String) -> some ApplicationProtocol {
        let router = Router()
        router.add(middleware: ProblemMiddleware())
        router.add(middleware: ServiceAuthMiddleware(tokens: tokens, audience: audience))
        router.get("/readyz") { _, _ in HTTPResponse.Status.ok }
        router.post("/internal/v1/alerts") { request, _ -> HTTPResponse.Status in
            let body = String(buffer: try await request.body.collect(upTo: 1 << 20))
            return await self.answer(body: body, requestID: request.headers[RequestTrace.requestIDField],
                                     traceparent: request.headers[RequestTrace.traceparentField])
        }
        return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)))
    }
}

@Suite struct OutboxTests {
    static let logger = Logger(label: "outbox-test")
    static let key = "outbox-test-service-key-0123456789abcdef"
    static let schema = "relay_test"

    struct Alert: Codable, Equatable {
        var id: Int
        var text: String
    }

    /// A fresh database with the runtime tables migrated, a running client, and a receiver on a free port.
    static func withRelay(answers: [HTTPResponse.Status] = [], peers: ((Int) -> [GantryServiceName: URL])? = nil,
                          _ body: @Sendable (PostgresClient, OutboxRelay, Receiver) async throws -> Void) async throws {
        let database = try await TestDatabase.create()
        do {
            try await database.withClient { client in
                try await Migrator(schema: schema, migrations: []).migrate(client: client, logger: logger)
                let port = try FreePort.next()
                let receiver = Receiver(answers: answers)
                let receiverTokens = await ServiceTokens(key: key, issuer: "notification")
                let readiness = Readiness()
                readiness.markReady()
                var relay = OutboxRelay(
                    schema: schema, database: client, httpClient: .shared,
                    tokens: await ServiceTokens(key: key, issuer: "findings-policy"),
                    peers: peers?(port) ?? [.notification: URL(string: "http://127.0.0.1:\(port)")!],
                    readiness: readiness, logger: logger)
                relay.pollInterval = .milliseconds(20)
                let configuredRelay = relay
                let app = receiver.application(port: port, tokens: receiverTokens, audience: "notification")
                try await withRunningServices([app], readyPorts: [port]) {
                    try await body(client, configuredRelay, receiver)
                }
            }
            await database.drop()
        } catch {
            await database.drop()
            throw error
        }
    }

    static func enqueue(_ alert: Alert, messageID: String, client: PostgresClient,
                        trace: RequestTrace? = nil) async throws {
        try await RequestTrace.$current.withValue(trace) {
            try await client.withTransaction(logger: logger) { connection in
                try await Outbox(schema: schema).enqueue(alert, messageID: messageID, to: .notification,
                                                         path: "/internal/v1/alerts", on: connection, logger: logger)
            }
        }
    }

    struct Row: Sendable {
        var attempts: Int
        var delivered: Bool
        var dead: Bool
        var lastError: String?
    }

    static func rows(_ client: PostgresClient) async throws -> [Row] {
        let rows = try await client.query("""
            SELECT attempts, delivered_at IS NOT NULL, dead_at IS NOT NULL, last_error
            FROM \(unescaped: schema).outbox ORDER BY id
            """, logger: logger)
        var result: [Row] = []
        for try await (attempts, delivered, dead, error) in rows.decode((Int, Bool, Bool, String?).self) {
            result.append(Row(attempts: attempts, delivered: delivered, dead: dead, lastError: error))
        }
        return result
    }

    static func makeDue(_ client: PostgresClient) async throws {
        try await client.query("UPDATE \(unescaped: schema).outbox SET next_attempt_at = now()", logger: logger)
    }

    @Test func relayDeliversWithTokenAndRequestID() async throws {
        try await Self.withRelay { client, relay, receiver in
            var trace = RequestTrace.fresh()
            trace.requestID = "req-outbox-1"
            trace.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
            try await Self.enqueue(Alert(id: 1, text: "image unhealthy"), messageID: "m-1", client: client, trace: trace)
            // Run the relay as it runs in a service, and wait for it to deliver.
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await relay.run() }
                _ = try await eventually("the relay delivers") { try await Self.rows(client).first?.delivered == true ? true : nil }
                group.cancelAll()
            }
            let received = await receiver.received
            #expect(received.count == 1)
            let first = try #require(received.first)
            #expect(first.status == 200)
            #expect(try JSONDecoder().decode(Alert.self, from: Data(first.body.utf8)) == Alert(id: 1, text: "image unhealthy"))
            #expect(first.requestID == "req-outbox-1")
            // Same trace, new span.
            #expect(first.traceparent?.hasPrefix("00-0af7651916cd43dd8448eb211c80319c-") == true)
            #expect(first.traceparent != trace.traceparent)
            let row = try #require(try await Self.rows(client).first)
            #expect(row.attempts == 1)
            #expect(row.lastError == nil)
        }
    }

    @Test func retriesUntilDeliveredExactlyOnce() async throws {
        try await Self.withRelay(answers: [.internalServerError, .internalServerError]) { client, relay, receiver in
            try await Self.enqueue(Alert(id: 2, text: "retry me"), messageID: "m-2", client: client)
            #expect(try await relay.deliverDue() == 1)
            var row = try #require(try await Self.rows(client).first)
            #expect(row.attempts == 1)
            #expect(!row.delivered)
            #expect(row.lastError?.contains("HTTP 500") == true)
            // Backoff: the next attempt is set at least 0.4 s (0.5 s − 20 % jitter) after the first, which
            // itself came after the enqueue; asserted on the stored times, not on wall-clock races.
            let waits = try await client.query("""
                SELECT extract(epoch FROM next_attempt_at - created_at)::float8 FROM \(unescaped: Self.schema).outbox
                """, logger: Self.logger)
            for try await wait in waits.decode(Double.self) { #expect(wait >= 0.39) }

            try await Self.makeDue(client)
            #expect(try await relay.deliverDue() == 1)
            try await Self.makeDue(client)
            #expect(try await relay.deliverDue() == 1)
            row = try #require(try await Self.rows(client).first)
            #expect(row.attempts == 3)
            #expect(row.delivered)
            #expect(row.lastError == nil)

            try await Self.makeDue(client)
            #expect(try await relay.deliverDue() == 0)
            let statuses = await receiver.received.map(\.status)
            #expect(statuses == [500, 500, 200])
        }
    }

    @Test func replicasRelayEachMessageOnce() async throws {
        try await Self.withRelay { client, relay, receiver in
            for id in 0..<24 {
                try await Self.enqueue(Alert(id: id, text: "replica"), messageID: "r-\(id)", client: client)
            }
            // Three replicas pass over the same outbox at once; SKIP LOCKED must keep them apart.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<3 {
                    group.addTask {
                        while try await relay.deliverDue() > 0 {}
                    }
                }
                try await group.waitForAll()
            }
            let ids = try await receiver.received.map { try JSONDecoder().decode(Alert.self, from: Data($0.body.utf8)).id }
            #expect(ids.sorted() == Array(0..<24))
            #expect(try await Self.rows(client).allSatisfy { $0.delivered && $0.attempts == 1 })
        }
    }

    @Test func deadLettersAfterMaxAttempts() async throws {
        try await Self.withRelay(answers: Array(repeating: .badGateway, count: 10)) { client, relay, receiver in
            var relay = relay
            relay.maxAttempts = 2
            try await Self.enqueue(Alert(id: 3, text: "never"), messageID: "m-3", client: client)
            #expect(try await relay.deliverDue() == 1)
            try await Self.makeDue(client)
            #expect(try await relay.deliverDue() == 1)
            try await Self.makeDue(client)
            #expect(try await relay.deliverDue() == 0)
            let row = try #require(try await Self.rows(client).first)
            #expect(row.dead)
            #expect(!row.delivered)
            #expect(row.attempts == 2)
            #expect(row.lastError?.contains("HTTP 502") == true)
            #expect(await receiver.received.count == 2)
        }
    }

    @Test func unknownDestinationIsRecordedNotSent() async throws {
        try await Self.withRelay(peers: { _ in [:] }) { client, relay, receiver in
            try await Self.enqueue(Alert(id: 4, text: "nowhere"), messageID: "m-4", client: client)
            #expect(try await relay.deliverDue() == 1)
            let row = try #require(try await Self.rows(client).first)
            #expect(row.lastError?.contains("unknown destination notification") == true)
            #expect(await receiver.received.isEmpty)
        }
    }

    @Test func sameMessageIDEnqueuedOnce() async throws {
        try await Self.withRelay { client, relay, receiver in
            try await Self.enqueue(Alert(id: 5, text: "first"), messageID: "m-5", client: client)
            try await Self.enqueue(Alert(id: 5, text: "second"), messageID: "m-5", client: client)
            #expect(try await Self.rows(client).count == 1)
            #expect(try await relay.deliverDue() == 1)
            #expect(await receiver.received.map(\.body).first?.contains("first") == true)
        }
    }

    @Test func rolledBackTransactionEnqueuesNothing() async throws {
        struct Abort: Error {}
        try await Self.withRelay { client, _, _ in
            await #expect(throws: (any Error).self) {
                try await client.withTransaction(logger: Self.logger) { connection in
                    try await Outbox(schema: Self.schema).enqueue(Alert(id: 6, text: "x"), messageID: "m-6", to: .notification,
                                                                  path: "/internal/v1/alerts", on: connection, logger: Self.logger)
                    throw Abort()
                }
            }
            let rows = try await Self.rows(client)
            #expect(rows.isEmpty)
        }
    }

    @Test func inboxClaimsOnce() async throws {
        struct Abort: Error {}
        let database = try await TestDatabase.create()
        do {
            try await database.withClient { client in
                try await Migrator(schema: Self.schema, migrations: []).migrate(client: client, logger: Self.logger)
                let inbox = Inbox(schema: Self.schema)
                // A claim in a transaction that rolls back is no claim.
                await #expect(throws: (any Error).self) {
                    try await client.withTransaction(logger: Self.logger) { connection in
                        let claimed = try await inbox.claim("msg-1", on: connection, logger: Self.logger)
                        if claimed { throw Abort() }
                    }
                }
                let first = try await client.withTransaction(logger: Self.logger) { connection in
                    try await inbox.claim("msg-1", on: connection, logger: Self.logger)
                }
                let second = try await client.withTransaction(logger: Self.logger) { connection in
                    try await inbox.claim("msg-1", on: connection, logger: Self.logger)
                }
                let other = try await client.withTransaction(logger: Self.logger) { connection in
                    try await inbox.claim("msg-2", on: connection, logger: Self.logger)
                }
                #expect(first)
                #expect(!second)
                #expect(other)
            }
            await database.drop()
        } catch {
            await database.drop()
            throw error
        }
    }
}
