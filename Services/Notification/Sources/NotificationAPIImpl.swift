import Foundation
import GantryModel
import GantryRuntime
import Logging
import NotificationAPI
import PostgresNIO

/// Notification's HTTP API (Shared/Contracts/specs/notification.yaml).
struct NotificationAPIImpl: APIProtocol {
    let runtime: ServiceRuntime

    func createWebhook(_ input: Operations.CreateWebhook.Input) async throws -> Operations.CreateWebhook.Output {
        let tenantID = try Validate.uuid(input.path.tenantId, field: "tenantId")
        let subscriptionID = try Validate.uuid(input.path.subscriptionId, field: "subscriptionId")
        guard case .json(let body) = input.body else { throw ProblemError.badRequest("expected a JSON body") }
        guard let url = URL(string: body.url), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme),
              let host = url.host, body.url.count <= 2048 else {
            throw ProblemError.badRequest("url must be an absolute http(s) URL")
        }
        let hostPort = url.port.map { "\(host):\($0)" } ?? host
        if let refusal = runtime.configuration.cloud.refusalForWebhook(host: hostPort, profile: runtime.configuration.profile) {
            throw ProblemError.badRequest("url: \(refusal)")
        }
        if scheme == "http" && runtime.configuration.profile != .development {
            throw ProblemError.badRequest("url must use https outside the development profile")
        }
        guard body.secret.count >= 16 else { throw ProblemError.badRequest("secret must have at least 16 characters") }
        let id = UUID()
        let rows = try await runtime.database.query("""
            INSERT INTO notification.webhooks (id, tenant_id, subscription_id, url, secret)
            VALUES (\(id), \(tenantID), \(subscriptionID), \(body.url), \(body.secret)) RETURNING created_at
            """, logger: runtime.logger)
        var createdAt = Date()
        for try await date in rows.decode(Date.self) { createdAt = date }
        return .created(.init(body: .json(.init(id: id.uuidString.lowercased(), url: body.url, createdAt: createdAt))))
    }

    func listWebhooks(_ input: Operations.ListWebhooks.Input) async throws -> Operations.ListWebhooks.Output {
        let tenantID = try Validate.uuid(input.path.tenantId, field: "tenantId")
        let subscriptionID = try Validate.uuid(input.path.subscriptionId, field: "subscriptionId")
        let rows = try await runtime.database.query("""
            SELECT id, url, created_at FROM notification.webhooks
            WHERE tenant_id = \(tenantID) AND subscription_id = \(subscriptionID) ORDER BY created_at
            """, logger: runtime.logger)
        var items: [Components.Schemas.Webhook] = []
        for try await (id, url, created) in rows.decode((UUID, String, Date).self) {
            items.append(.init(id: id.uuidString.lowercased(), url: url, createdAt: created))
        }
        return .ok(.init(body: .json(.init(items: items))))
    }

    func listDeliveries(_ input: Operations.ListDeliveries.Input) async throws -> Operations.ListDeliveries.Output {
        let tenantID = try Validate.uuid(input.path.tenantId, field: "tenantId")
        let subscriptionID = try Validate.uuid(input.path.subscriptionId, field: "subscriptionId")
        let rows = try await runtime.database.query("""
            SELECT d.id, d.webhook_id, d.alert_id, w.url, d.status, d.attempts, d.last_status_code, d.last_error,
                   d.created_at, d.delivered_at
            FROM notification.deliveries d JOIN notification.webhooks w ON w.id = d.webhook_id
            WHERE d.tenant_id = \(tenantID) AND d.subscription_id = \(subscriptionID)
            ORDER BY d.created_at DESC LIMIT 500
            """, logger: runtime.logger)
        var items: [Components.Schemas.Delivery] = []
        for try await (id, webhook, alert, url, status, attempts, code, error, created, delivered) in rows.decode(
            (UUID, UUID, String, String, String, Int, Int?, String?, Date, Date?).self) {
            items.append(.init(id: id.uuidString.lowercased(), webhookId: webhook.uuidString.lowercased(), alertId: alert,
                               url: url, status: .init(rawValue: status) ?? .pending, attempts: attempts,
                               lastStatusCode: code, lastError: error, createdAt: created, deliveredAt: delivered))
        }
        return .ok(.init(body: .json(.init(items: items))))
    }

    func raiseAlert(_ input: Operations.RaiseAlert.Input) async throws -> Operations.RaiseAlert.Output {
        guard case .json(let alert) = input.body else { throw ProblemError.badRequest("expected a JSON body") }
        let tenantID = try Validate.uuid(alert.tenantId, field: "tenantId")
        let subscriptionID = try Validate.uuid(alert.subscriptionId, field: "subscriptionId")
        let messageID = try Validate.text(alert.messageId, field: "messageId")
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let payload = String(decoding: try encoder.encode(alert), as: UTF8.self)
        let logger = runtime.logger
        let inbox = runtime.inbox
        let deliveries = try await runtime.database.withTransaction(logger: logger) { connection -> Int in
            guard try await inbox.claim(messageID, on: connection, logger: logger) else { return 0 }
            try await connection.query("""
                INSERT INTO notification.alerts (message_id, tenant_id, subscription_id, kind, payload)
                VALUES (\(messageID), \(tenantID), \(subscriptionID), \(alert.kind.rawValue), \(payload))
                ON CONFLICT (message_id) DO NOTHING
                """, logger: logger)
            let rows = try await connection.query("""
                INSERT INTO notification.deliveries (id, tenant_id, subscription_id, webhook_id, alert_id)
                SELECT gen_random_uuid(), tenant_id, subscription_id, id, \(messageID) FROM notification.webhooks
                WHERE tenant_id = \(tenantID) AND subscription_id = \(subscriptionID)
                ON CONFLICT (webhook_id, alert_id) DO NOTHING RETURNING id
                """, logger: logger)
            var count = 0
            for try await _ in rows { count += 1 }
            return count
        }
        return .accepted(.init(body: .json(.init(deliveries: deliveries))))
    }
}
