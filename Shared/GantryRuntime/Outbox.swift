import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import PostgresNIO
import ServiceLifecycle

/// Writes messages for peers into the service's `outbox` table, inside the caller's transaction,
/// so that a state change and the message announcing it commit together (transactional outbox).
public struct Outbox: Sendable {
    public let schema: String

    public init(schema: String) { self.schema = schema }

    /// Queues `payload` (JSON-encoded) for `POST <destination URL><path>`.
    /// A second call with the same `messageID` is ignored, so retried work does not send twice.
    public func enqueue(_ payload: some Encodable, messageID: String, to destination: GantryServiceName, path: String,
                        on connection: PostgresConnection, logger: Logger) async throws {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        let json = String(decoding: try encoder.encode(payload), as: UTF8.self)
        let trace = RequestTrace.current?.child()
        try await connection.query("""
            INSERT INTO \(unescaped: schema).outbox (message_id, destination, path, payload, request_id, traceparent)
            VALUES (\(messageID), \(destination.rawValue), \(path), \(json), \(trace?.requestID), \(trace?.traceparent))
            ON CONFLICT (message_id) DO NOTHING
            """, logger: logger)
    }

    /// Queues several messages for one destination in one statement, in order, inside the caller's
    /// transaction (for bulk producers); as with `enqueue`, a message ID already queued is ignored.
    public func enqueue<Payload: Encodable>(batch: [(messageID: String, payload: Payload)], to destination: GantryServiceName,
                                            path: String, on connection: PostgresConnection, logger: Logger) async throws {
        guard !batch.isEmpty else { return }
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        let payloads = try batch.map { String(decoding: try encoder.encode($0.payload), as: UTF8.self) }
        let trace = RequestTrace.current?.child()
        try await connection.query("""
            INSERT INTO \(unescaped: schema).outbox (message_id, destination, path, payload, request_id, traceparent)
            SELECT m, \(destination.rawValue), \(path), p, \(trace?.requestID), \(trace?.traceparent)
            FROM unnest(\(batch.map(\.messageID))::text[], \(payloads)::text[]) WITH ORDINALITY AS t(m, p, n)
            ORDER BY n
            ON CONFLICT (message_id) DO NOTHING
            """, logger: logger)
    }
}

/// Records message IDs already processed, so that a redelivered message has no second effect.
public struct Inbox: Sendable {
    public let schema: String

    public init(schema: String) { self.schema = schema }

    /// Claims `messageID` inside the caller's transaction. Returns false when it was processed before.
    public func claim(_ messageID: String, on connection: PostgresConnection, logger: Logger) async throws -> Bool {
        let rows = try await connection.query("""
            INSERT INTO \(unescaped: schema).inbox (message_id) VALUES (\(messageID))
            ON CONFLICT (message_id) DO NOTHING RETURNING message_id
            """, logger: logger)
        for try await _ in rows { return true }
        return false
    }
}

/// Delivers outbox messages to peers with a service token, retrying with exponential backoff and jitter
/// until the peer answers 2xx; a message is dead-lettered (kept, with its last error) after `maxAttempts`.
/// Several replicas can relay at once: rows are taken with `FOR UPDATE SKIP LOCKED`.
public struct OutboxRelay: Service {
    let schema: String
    let database: PostgresClient
    let httpClient: HTTPClient
    let tokens: ServiceTokens
    let peers: [GantryServiceName: URL]
    let readiness: Readiness
    let logger: Logger
    /// How often to look for due messages.
    public var pollInterval: Duration = .milliseconds(150)
    /// Attempts before a message is dead-lettered (about two days with the 5-minute cap).
    public var maxAttempts = 600

    public init(schema: String, database: PostgresClient, httpClient: HTTPClient, tokens: ServiceTokens,
                peers: [GantryServiceName: URL], readiness: Readiness, logger: Logger) {
        self.schema = schema
        self.database = database
        self.httpClient = httpClient
        self.tokens = tokens
        self.peers = peers
        self.readiness = readiness
        self.logger = logger
    }

    public func run() async throws {
        // At most 16 posts of 15 s each and a few statements: a pass beyond 5 minutes is stuck (a statement caught
        // by a database restart); its claimed rows come due again when their one-minute lease runs out.
        await PollingLoop.run(name: "outbox relay", readiness: readiness, interval: pollInterval, passLimit: .seconds(300),
                              logger: logger) {
            try await deliverDue() > 0
        }
    }

    /// Delivers up to 16 due messages; returns how many were attempted.
    ///
    /// Rows are claimed in a short transaction by pushing `next_attempt_at` one minute ahead (a lease), then
    /// posted outside any transaction; a relay that dies mid-way leaves them due again after the lease.
    @discardableResult
    public func deliverDue() async throws -> Int {
        let schema = self.schema
        let logger = self.logger
        let rows = try await database.query("""
            UPDATE \(unescaped: schema).outbox SET next_attempt_at = now() + interval '60 seconds'
            WHERE id IN (
              SELECT id FROM \(unescaped: schema).outbox
              WHERE delivered_at IS NULL AND dead_at IS NULL AND next_attempt_at <= now()
              ORDER BY id LIMIT 16 FOR UPDATE SKIP LOCKED)
            RETURNING id, destination, path, payload, request_id, traceparent, attempts
            """, logger: logger)
        var due: [(Int64, String, String, String, String?, String?, Int)] = []
        for try await row in rows.decode((Int64, String, String, String, String?, String?, Int).self) { due.append(row) }
        for (id, destination, path, payload, requestID, traceparent, attempts) in due.sorted(by: { $0.0 < $1.0 }) {
            let outcome = await post(destination: destination, path: path, payload: payload,
                                     requestID: requestID, traceparent: traceparent)
            try Task.checkCancellation()
            if let error = outcome {
                let attempt = attempts + 1
                let delay = Self.backoff(attempt: attempt)
                let dead = attempt >= maxAttempts
                logger.warning("outbox delivery failed", metadata: [
                    "destination": "\(destination)", "path": "\(path)", "attempt": "\(attempt)", "error": "\(error)"])
                try await database.query("""
                    UPDATE \(unescaped: schema).outbox
                    SET attempts = \(attempt), last_error = \(error),
                        next_attempt_at = now() + make_interval(secs => \(delay)),
                        dead_at = CASE WHEN \(dead) THEN now() ELSE NULL END
                    WHERE id = \(id)
                    """, logger: logger)
            } else {
                try await database.query("""
                    UPDATE \(unescaped: schema).outbox SET attempts = attempts + 1, delivered_at = now(), last_error = NULL
                    WHERE id = \(id)
                    """, logger: logger)
            }
        }
        return due.count
    }

    /// Seconds to wait after the n-th failed attempt: 0.5 s doubling, capped at 300 s, with ±20 % jitter.
    static func backoff(attempt: Int) -> Double {
        let base = min(300.0, 0.5 * pow(2.0, Double(min(attempt - 1, 20))))
        return base * Double.random(in: 0.8...1.2)
    }

    /// POSTs one message; returns nil on 2xx, else the reason.
    private func post(destination: String, path: String, payload: String, requestID: String?,
                      traceparent: String?) async -> String? {
        guard let service = GantryServiceName(rawValue: destination), let base = peers[service] else {
            return "unknown destination \(destination)"
        }
        do {
            var request = HTTPClientRequest(url: base.absoluteString.trimmingSuffix("/") + path)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.headers.add(name: "Authorization", value: "Bearer \(try await tokens.token(for: destination))")
            if let requestID { request.headers.add(name: "X-Request-ID", value: requestID) }
            if let traceparent { request.headers.add(name: "traceparent", value: traceparent) }
            request.body = .bytes(ByteBuffer(string: payload))
            let response = try await httpClient.execute(request, timeout: .seconds(15))
            let body = try await response.body.collect(upTo: 64 * 1024)
            if (200..<300).contains(Int(response.status.code)) { return nil }
            return "HTTP \(response.status.code): \(String(buffer: body).prefix(500))"
        } catch {
            return "\(error)"
        }
    }
}

extension String {
    func trimmingSuffix(_ suffix: String) -> String {
        hasSuffix(suffix) ? String(dropLast(suffix.count)) : self
    }
}
