import AsyncHTTPClient
import Foundation
import GantryRuntime
import Logging
import NIOCore
import NIOHTTP1
import PostgresNIO
import ServiceLifecycle

/// Delivers pending webhook deliveries: POSTs the alert JSON signed with HMAC-SHA256, retries with
/// exponential backoff (5 s doubling, capped at 1 h) and dead-letters after `maxAttempts`, recording
/// every outcome in the delivery log. Rows are taken with `FOR UPDATE SKIP LOCKED`, so replicas share the work.
struct DeliveryWorker: Service {
    let runtime: ServiceRuntime
    let httpClient: HTTPClient
    var pollInterval: Duration = .milliseconds(200)
    var maxAttempts = 30
    var timeout: TimeAmount = .seconds(10)

    func run() async throws {
        await PollingLoop.run(name: "webhook delivery", readiness: runtime.readiness, interval: pollInterval,
                              logger: runtime.logger) {
            try await deliverDue() > 0
        }
    }

    /// Attempts up to 8 due deliveries; returns how many.
    func deliverDue() async throws -> Int {
        let logger = runtime.logger
        return try await runtime.database.withTransaction(logger: logger) { connection in
            let rows = try await connection.query("""
                SELECT d.id, d.alert_id, d.attempts, w.url, w.secret, a.payload, a.kind
                FROM notification.deliveries d
                JOIN notification.webhooks w ON w.id = d.webhook_id
                JOIN notification.alerts a ON a.message_id = d.alert_id
                WHERE d.status = 'pending' AND d.next_attempt_at <= now()
                ORDER BY d.next_attempt_at LIMIT 8 FOR UPDATE OF d SKIP LOCKED
                """, logger: logger)
            var due: [(UUID, String, Int, String, String, String, String)] = []
            for try await row in rows.decode((UUID, String, Int, String, String, String, String).self) { due.append(row) }
            for (id, alertID, attempts, url, secret, payload, kind) in due {
                let (statusCode, error) = await post(url: url, secret: secret, payload: payload, deliveryID: id, kind: kind)
                let attempt = attempts + 1
                if error == nil {
                    try await connection.query("""
                        UPDATE notification.deliveries SET status = 'delivered', attempts = \(attempt),
                          last_status_code = \(statusCode), last_error = NULL, delivered_at = now() WHERE id = \(id)
                        """, logger: logger)
                    logger.info("webhook delivered", metadata: ["delivery": "\(id)", "alert": "\(alertID)"])
                } else {
                    let delay = min(3600.0, 5.0 * pow(2.0, Double(min(attempt - 1, 20)))) * Double.random(in: 0.8...1.2)
                    let status = attempt >= maxAttempts ? "dead" : "pending"
                    try await connection.query("""
                        UPDATE notification.deliveries SET status = \(status), attempts = \(attempt),
                          last_status_code = \(statusCode), last_error = \(error),
                          next_attempt_at = now() + make_interval(secs => \(delay)) WHERE id = \(id)
                        """, logger: logger)
                    logger.warning("webhook delivery failed", metadata: [
                        "delivery": "\(id)", "attempt": "\(attempt)", "error": "\(error ?? "")"])
                }
            }
            return due.count
        }
    }

    private func post(url: String, secret: String, payload: String, deliveryID: UUID,
                      kind: String) async -> (Int?, String?) {
        do {
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.headers.add(name: "User-Agent", value: "Gantry-Webhook/1")
            request.headers.add(name: WebhookSignature.header, value: WebhookSignature.sign(body: Data(payload.utf8), secret: secret))
            request.headers.add(name: "X-Gantry-Delivery", value: deliveryID.uuidString.lowercased())
            request.headers.add(name: "X-Gantry-Event", value: kind)
            request.headers.add(name: "X-Gantry-Timestamp", value: "\(Int(Date().timeIntervalSince1970))")
            request.body = .bytes(ByteBuffer(string: payload))
            let response = try await httpClient.execute(request, timeout: timeout)
            let body = try await response.body.collect(upTo: 16 * 1024)
            let code = Int(response.status.code)
            return (200..<300).contains(code) ? (code, nil) : (code, "HTTP \(code): \(String(buffer: body).prefix(300))")
        } catch {
            return (nil, "\(error)")
        }
    }
}
