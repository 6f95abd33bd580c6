import Foundation
import GantryRuntime
import Logging
import PostgresNIO

/// A delivery as the log shows it.
struct DeliveryRecord: Sendable {
    var id: UUID
    var channelID: UUID
    var channelKind: Channel.Kind
    var alertID: String
    var target: String
    var status: String
    var attempts: Int
    var lastStatusCode: Int?
    var lastError: String?
    var createdAt: Date
    var lastAttemptAt: Date?
    var nextAttemptAt: Date?
    var giveUpAt: Date
    var deliveredAt: Date?
}

/// One attempt of a delivery.
struct AttemptRecord: Sendable {
    var attempt: Int
    var startedAt: Date
    var durationMs: Int
    var outcome: String
    var statusCode: Int?
    var error: String?
}

/// An alert as the alert log shows it.
struct AlertRecord: Sendable {
    var messageID: String
    var kind: String
    var outcome: String
    var reason: String?
    var deliveries: Int
    var imageDigest: String?
    var repository: String?
    var registryHost: String?
    var receivedAt: Date
}

/// The notification schema's SQL: channels, rules, the alert and delivery logs. Every method takes the tenant
/// and subscription it works for and runs in `withTenant` (row-level security, migration 3); the routing and
/// delivery SQL lives with `AlertRouter` and `DeliveryWorker`.
struct PostgresNotificationStore: Sendable {
    let database: PostgresClient
    let logger: Logger

    // MARK: Channels

    func insertChannel(_ channel: Channel) async throws {
        let logger = self.logger
        try await database.withTenant(channel.tenantID, logger: logger) { connection in
            try await connection.query("""
                INSERT INTO notification.channels (id, tenant_id, subscription_id, type, name, url, secret, recipients, created_at)
                VALUES (\(channel.id), \(channel.tenantID), \(channel.subscriptionID), \(channel.kind.rawValue), \(channel.name),
                        \(channel.url), \(channel.secret), \(channel.recipients), \(channel.createdAt))
                """, logger: logger)
            return
        }
    }

    func channels(tenantID: UUID, subscriptionID: UUID, kind: Channel.Kind? = nil) async throws -> [Channel] {
        let logger = self.logger
        return try await database.withTenant(tenantID, logger: logger) { connection in
            let rows = try await connection.query("""
                SELECT id, tenant_id, subscription_id, type, name, url, secret, recipients, created_at FROM notification.channels
                WHERE tenant_id = \(tenantID) AND subscription_id = \(subscriptionID) AND deleted_at IS NULL
                  AND (\(kind?.rawValue)::text IS NULL OR type = \(kind?.rawValue))
                ORDER BY created_at, id
                """, logger: logger)
            return try await Self.decodeChannels(rows)
        }
    }

    func channel(tenantID: UUID, subscriptionID: UUID, id: UUID) async throws -> Channel? {
        let logger = self.logger
        return try await database.withTenant(tenantID, logger: logger) { connection in
            let rows = try await connection.query("""
                SELECT id, tenant_id, subscription_id, type, name, url, secret, recipients, created_at FROM notification.channels
                WHERE tenant_id = \(tenantID) AND subscription_id = \(subscriptionID) AND id = \(id) AND deleted_at IS NULL
                """, logger: logger)
            return try await Self.decodeChannels(rows).first
        }
    }

    static func decodeChannels(_ rows: PostgresRowSequence) async throws -> [Channel] {
        var channels: [Channel] = []
        for try await (id, tenant, subscription, type, name, url, secret, recipients, created) in rows.decode(
            (UUID, UUID, UUID, String, String, String?, String?, [String], Date).self) {
            guard let kind = Channel.Kind(rawValue: type) else { continue }
            channels.append(Channel(id: id, tenantID: tenant, subscriptionID: subscription, kind: kind, name: name, url: url,
                                    secret: secret, recipients: recipients, createdAt: created))
        }
        return channels
    }

    /// Deletes a channel no rule names: it disappears from lists, its pending deliveries become dead, its log stays.
    /// - Returns: false when there is no such channel.
    /// - Throws: `ProblemError` 409 naming the rules that still use it.
    func deleteChannel(tenantID: UUID, subscriptionID: UUID, id: UUID) async throws -> Bool {
        // Decided inside the transaction, thrown outside it, once the transaction has ended.
        let logger = self.logger
        let usedBy = try await database.withTenant(tenantID, logger: logger) { connection -> [String]? in
            let found = try await connection.query("""
                SELECT id FROM notification.channels
                WHERE tenant_id = \(tenantID) AND subscription_id = \(subscriptionID) AND id = \(id) AND deleted_at IS NULL
                FOR UPDATE
                """, logger: logger)
            var exists = false
            for try await _ in found { exists = true }
            guard exists else { return nil }
            let using = try await connection.query("""
                SELECT name FROM notification.rules
                WHERE tenant_id = \(tenantID) AND subscription_id = \(subscriptionID) AND \(id) = ANY (channel_ids) ORDER BY name
                """, logger: logger)
            var names: [String] = []
            for try await name in using.decode(String.self) { names.append(name) }
            guard names.isEmpty else { return names }
            try await connection.query("UPDATE notification.channels SET deleted_at = now() WHERE id = \(id)", logger: logger)
            try await connection.query("""
                UPDATE notification.deliveries SET status = 'dead', leased_until = NULL,
                  last_error = coalesce(last_error || '; ', '') || 'the channel was deleted'
                WHERE channel_id = \(id) AND status = 'pending'
                """, logger: logger)
            return []
        }
        guard let usedBy else { return false }
        guard usedBy.isEmpty else {
            throw ProblemError.conflict("the channel is used by rule(s) \(usedBy.map { "'\($0)'" }.joined(separator: ", ")); delete or change them first")
        }
        return true
    }

    // MARK: Rules

    func insertRule(_ rule: AlertRule, tenantID: UUID, subscriptionID: UUID) async throws {
        let logger = self.logger
        try await database.withTenant(tenantID, logger: logger) { connection in
            try await connection.query("""
                INSERT INTO notification.rules (id, tenant_id, subscription_id, name, kind, min_severity, min_consecutive_failures,
                                                channel_ids, created_at)
                VALUES (\(rule.id), \(tenantID), \(subscriptionID), \(rule.name), \(rule.kind.rawValue), \(rule.minSeverity?.name),
                        \(rule.minConsecutiveFailures), \(rule.channelIDs), \(rule.createdAt))
                """, logger: logger)
            return
        }
    }

    func rules(tenantID: UUID, subscriptionID: UUID, id: UUID? = nil) async throws -> [AlertRule] {
        let logger = self.logger
        return try await database.withTenant(tenantID, logger: logger) { connection in
            let rows = try await connection.query("""
                SELECT id, name, kind, min_severity, min_consecutive_failures, channel_ids, created_at FROM notification.rules
                WHERE tenant_id = \(tenantID) AND subscription_id = \(subscriptionID) AND (\(id)::uuid IS NULL OR id = \(id))
                ORDER BY created_at, id
                """, logger: logger)
            return try await Self.decodeRules(rows)
        }
    }

    static func decodeRules(_ rows: PostgresRowSequence) async throws -> [AlertRule] {
        var rules: [AlertRule] = []
        for try await (id, name, kind, severity, failures, channels, created) in rows.decode(
            (UUID, String, String, String?, Int?, [UUID], Date).self) {
            guard let kind = AlertKind(rawValue: kind) else { continue }
            rules.append(AlertRule(id: id, name: name, kind: kind, minSeverity: severity.flatMap(FindingSeverity.init(name:)),
                                   minConsecutiveFailures: failures, channelIDs: channels, createdAt: created))
        }
        return rules
    }

    /// - Returns: false when there is no such rule.
    func deleteRule(tenantID: UUID, subscriptionID: UUID, id: UUID) async throws -> Bool {
        let logger = self.logger
        return try await database.withTenant(tenantID, logger: logger) { connection in
            let rows = try await connection.query("""
                DELETE FROM notification.rules WHERE tenant_id = \(tenantID) AND subscription_id = \(subscriptionID) AND id = \(id)
                RETURNING id
                """, logger: logger)
            for try await _ in rows { return true }
            return false
        }
    }

    // MARK: Logs

    /// The alert log, newest first. `deliveries` counts the alert's rows in the delivery log, so the two lists always
    /// agree (the `delivery_count` stored when routing is 0 for alerts from before channels, migration 2).
    func alerts(tenantID: UUID, subscriptionID: UUID, limit: Int) async throws -> [AlertRecord] {
        let logger = self.logger
        return try await database.withTenant(tenantID, logger: logger) { connection in
            let rows = try await connection.query("""
                SELECT a.message_id, a.kind, a.outcome, a.reason,
                       (SELECT count(*)::int FROM notification.deliveries d
                        WHERE d.tenant_id = a.tenant_id AND d.subscription_id = a.subscription_id AND d.alert_id = a.message_id),
                       a.image_digest, a.repository, a.registry_host, a.created_at
                FROM notification.alerts a WHERE a.tenant_id = \(tenantID) AND a.subscription_id = \(subscriptionID)
                ORDER BY a.created_at DESC, a.message_id LIMIT \(limit)
                """, logger: logger)
            var records: [AlertRecord] = []
            for try await (id, kind, outcome, reason, count, digest, repository, host, created) in rows.decode(
                (String, String, String, String?, Int, String?, String?, String?, Date).self) {
                records.append(AlertRecord(messageID: id, kind: kind, outcome: outcome, reason: reason, deliveries: count,
                                           imageDigest: digest, repository: repository, registryHost: host, receivedAt: created))
            }
            return records
        }
    }

    func deliveries(tenantID: UUID, subscriptionID: UUID, status: String?, channelID: UUID?, id: UUID? = nil,
                    limit: Int) async throws -> [DeliveryRecord] {
        let logger = self.logger
        return try await database.withTenant(tenantID, logger: logger) { connection in
            let rows = try await connection.query("""
                SELECT d.id, d.channel_id, c.type, d.alert_id, d.target, d.status, d.attempts, d.last_status_code, d.last_error,
                       d.created_at, d.last_attempt_at, CASE WHEN d.status = 'pending' THEN greatest(d.next_attempt_at, d.leased_until) END,
                       d.give_up_at, d.delivered_at
                FROM notification.deliveries d JOIN notification.channels c ON c.id = d.channel_id
                WHERE d.tenant_id = \(tenantID) AND d.subscription_id = \(subscriptionID)
                  AND (\(status)::text IS NULL OR d.status = \(status))
                  AND (\(channelID)::uuid IS NULL OR d.channel_id = \(channelID))
                  AND (\(id)::uuid IS NULL OR d.id = \(id))
                ORDER BY d.created_at DESC, d.id LIMIT \(limit)
                """, logger: logger)
            var records: [DeliveryRecord] = []
            for try await (id, channel, type, alert, target, status, attempts, code, error, created, lastAttempt, next, giveUp,
                           delivered) in rows.decode(
                (UUID, UUID, String, String, String, String, Int, Int?, String?, Date, Date?, Date?, Date, Date?).self) {
                records.append(DeliveryRecord(
                    id: id, channelID: channel, channelKind: Channel.Kind(rawValue: type) ?? .webhook, alertID: alert, target: target,
                    status: status, attempts: attempts, lastStatusCode: code, lastError: error, createdAt: created,
                    lastAttemptAt: lastAttempt, nextAttemptAt: next, giveUpAt: giveUp, deliveredAt: delivered))
            }
            return records
        }
    }

    func attempts(tenantID: UUID, subscriptionID: UUID, deliveryID: UUID) async throws -> [AttemptRecord] {
        let logger = self.logger
        return try await database.withTenant(tenantID, logger: logger) { connection in
            let rows = try await connection.query("""
                SELECT a.attempt, a.started_at, a.duration_ms, a.outcome, a.status_code, a.error
                FROM notification.delivery_attempts a JOIN notification.deliveries d ON d.id = a.delivery_id
                WHERE d.tenant_id = \(tenantID) AND d.subscription_id = \(subscriptionID) AND a.delivery_id = \(deliveryID)
                ORDER BY a.attempt
                """, logger: logger)
            var attempts: [AttemptRecord] = []
            for try await (attempt, started, duration, outcome, code, error) in rows.decode((Int, Date, Int, String, Int?, String?).self) {
                attempts.append(AttemptRecord(attempt: attempt, startedAt: started, durationMs: duration, outcome: outcome,
                                              statusCode: code, error: error))
            }
            return attempts
        }
    }

    /// Makes a delivered or dead delivery due now with a fresh retry window, keeping its ID and attempt count.
    /// - Returns: false when there is no such delivery.
    /// - Throws: `ProblemError` 409 when it is still pending or its channel was deleted.
    func redeliver(tenantID: UUID, subscriptionID: UUID, id: UUID, retryWindow: Duration) async throws -> Bool {
        // Decided inside the transaction, thrown outside it, once the transaction has ended.
        let logger = self.logger
        let refusal = try await database.withTenant(tenantID, logger: logger) { connection -> String?? in
            let rows = try await connection.query("""
                SELECT d.status, c.deleted_at IS NOT NULL FROM notification.deliveries d
                JOIN notification.channels c ON c.id = d.channel_id
                WHERE d.tenant_id = \(tenantID) AND d.subscription_id = \(subscriptionID) AND d.id = \(id) FOR UPDATE OF d
                """, logger: logger)
            var found: (String, Bool)?
            for try await row in rows.decode((String, Bool).self) { found = row }
            guard let (status, deleted) = found else { return .none }
            if deleted { return .some("the delivery's channel was deleted") }
            if status == "pending" { return .some("the delivery is still pending; it is attempted without being asked") }
            try await connection.query("""
                UPDATE notification.deliveries SET status = 'pending', next_attempt_at = now(), leased_until = NULL,
                  delivered_at = NULL, give_up_at = now() + make_interval(secs => \(retryWindow.seconds))
                WHERE id = \(id)
                """, logger: logger)
            return .some(nil)
        }
        guard let refusal else { return false }
        if let refusal { throw ProblemError.conflict(refusal) }
        return true
    }
}
