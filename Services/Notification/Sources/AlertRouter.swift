import Foundation
import GantryRuntime
import Logging
import NotificationAPI
import PostgresNIO

/// Turns an alert into deliveries, in one transaction: the inbox makes a repeated message harmless, noise
/// control decides whether anything changed, rules pick the channels and each channel's severity floor, and
/// every delivery is queued beside the alert record (notification.yaml, "Rules", "Noise control").
struct AlertRouter: Sendable {
    let database: PostgresClient
    let inbox: Inbox
    let logger: Logger
    /// How long a new delivery is retried (its `give_up_at`).
    let retryWindow: Duration

    /// The nil UUID: the rule ID under which the default route (no rules) records its episodes.
    static let defaultRoute = UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))

    /// An alert for one subscription is routed as its tenant (`withTenant`); a deployment-wide alert (feedsStale)
    /// needs every tenant's rules, so it is routed with system access (`withSystemAccess`).
    /// - Returns: the number of deliveries queued (0 for a message seen before).
    func route(_ alert: ValidatedAlert) async throws -> Int {
        if let scope = alert.scope {
            return try await database.withTenant(scope.tenantID, logger: logger) { connection in
                guard try await inbox.claim(alert.messageID, on: connection, logger: logger) else { return 0 }
                return try await route(alert, alertID: alert.messageID, tenantID: scope.tenantID,
                                       subscriptionID: scope.subscriptionID, on: connection)
            }
        }
        return try await database.withSystemAccess(logger: logger) { connection in
            guard try await inbox.claim(alert.messageID, on: connection, logger: logger) else { return 0 }
            // A deployment-wide alert (feedsStale): one record per subscription that has a rule for it.
            let rows = try await connection.query("""
                SELECT DISTINCT tenant_id, subscription_id FROM notification.rules WHERE kind = \(alert.kind.rawValue)
                ORDER BY tenant_id, subscription_id
                """, logger: logger)
            var scopes: [(UUID, UUID)] = []
            for try await scope in rows.decode((UUID, UUID).self) { scopes.append(scope) }
            var total = 0
            for (tenantID, subscriptionID) in scopes {
                var scoped = alert
                scoped.alert.tenantId = tenantID.uuidString.lowercased()
                scoped.alert.subscriptionId = subscriptionID.uuidString.lowercased()
                total += try await route(scoped, alertID: "\(alert.messageID)/\(subscriptionID.uuidString.lowercased())",
                                         tenantID: tenantID, subscriptionID: subscriptionID, on: connection)
            }
            return total
        }
    }

    private struct Decision {
        var outcome: String
        var reason: String?
        /// Channel → the lowest finding severity its matching rules asked for (nil: every finding).
        var channels: [UUID: FindingSeverity?] = [:]
    }

    private func route(_ incoming: ValidatedAlert, alertID: String, tenantID: UUID, subscriptionID: UUID,
                       on connection: PostgresConnection) async throws -> Int {
        var alert = incoming
        var decision: Decision
        if let suppression = try await applyImageState(&alert, tenantID: tenantID, subscriptionID: subscriptionID, on: connection) {
            decision = suppression
        } else {
            decision = try await match(alert, alertID: alertID, tenantID: tenantID, subscriptionID: subscriptionID, on: connection)
        }
        let channelRows = try await connection.query("""
            SELECT id, tenant_id, subscription_id, type, name, url, secret, recipients, created_at FROM notification.channels
            WHERE tenant_id = \(tenantID) AND subscription_id = \(subscriptionID) AND deleted_at IS NULL
              AND id = ANY (\(Array(decision.channels.keys)))
            """, logger: logger)
        let channels = try await PostgresNotificationStore.decodeChannels(channelRows)
        if decision.outcome == "routed" && channels.isEmpty {
            decision = Decision(outcome: "unrouted", reason: "the subscription has no channel")
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        encoder.dateEncodingStrategy = .iso8601
        let payload = String(decoding: try encoder.encode(alert.alert), as: UTF8.self)
        let targets = channels.reduce(0) { $0 + $1.targets.count }
        try await connection.query("""
            INSERT INTO notification.alerts (message_id, tenant_id, subscription_id, kind, payload, outcome, reason, delivery_count,
                                             image_digest, repository, registry_host)
            VALUES (\(alertID), \(tenantID), \(subscriptionID), \(alert.kind.rawValue), \(payload), \(decision.outcome),
                    \(decision.reason), \(decision.outcome == "routed" ? targets : 0), \(alert.alert.imageDigest),
                    \(alert.alert.repositoryName), \(alert.alert.registryHost))
            ON CONFLICT (message_id) DO NOTHING
            """, logger: logger)
        guard decision.outcome == "routed" else {
            logger.info("alert not delivered", metadata: ["alert": "\(alertID)", "outcome": "\(decision.outcome)",
                                                          "reason": "\(decision.reason ?? "")"])
            return 0
        }
        var queued = 0
        for channel in channels {
            let floor = decision.channels[channel.id] ?? nil
            for target in channel.targets {
                let rows = try await connection.query("""
                    INSERT INTO notification.deliveries (id, tenant_id, subscription_id, channel_id, alert_id, target, min_severity,
                                                         give_up_at)
                    VALUES (\(UUID()), \(tenantID), \(subscriptionID), \(channel.id), \(alertID), \(target), \(floor?.name),
                            now() + make_interval(secs => \(retryWindow.seconds)))
                    ON CONFLICT (channel_id, alert_id, target) DO NOTHING RETURNING id
                    """, logger: logger)
                for try await _ in rows { queued += 1 }
            }
        }
        return queued
    }

    /// Image noise control: records the image's state and returns a suppression when nothing changed.
    /// `newFindings` keeps only findings never alerted for the image. A successful scan ends a failing streak.
    private func applyImageState(_ alert: inout ValidatedAlert, tenantID: UUID, subscriptionID: UUID,
                                 on connection: PostgresConnection) async throws -> Decision? {
        guard let image = alert.image, alert.kind != .scansFailing else { return nil }
        try await connection.query("""
            INSERT INTO notification.image_states (tenant_id, subscription_id, image, unhealthy)
            VALUES (\(tenantID), \(subscriptionID), \(image), false) ON CONFLICT DO NOTHING
            """, logger: logger)
        let rows = try await connection.query("""
            SELECT unhealthy, alerted_findings FROM notification.image_states
            WHERE tenant_id = \(tenantID) AND subscription_id = \(subscriptionID) AND image = \(image) FOR UPDATE
            """, logger: logger)
        var state = (unhealthy: false, alerted: [String]())
        for try await (unhealthy, alerted) in rows.decode((Bool, [String]).self) { state = (unhealthy, alerted) }
        // Any report about the image means a scan succeeded: a failing streak is over.
        try await connection.query("""
            DELETE FROM notification.episode_alerts
            WHERE tenant_id = \(tenantID) AND subscription_id = \(subscriptionID) AND kind = 'scansFailing' AND subject = \(image)
            """, logger: logger)
        let alerted = Set(state.alerted)
        var suppression: Decision?
        var nowAlerted: [String]
        var unhealthy = true
        switch alert.kind {
        case .imageHealthy:
            unhealthy = false
            nowAlerted = []
            suppression = Decision(outcome: "recorded", reason: "the image is healthy; its next change to unhealthy alerts again")
        case .imageUnhealthy:
            let keys = alert.findings.map(\.noiseKey)
            if state.unhealthy && Set(keys).isSubset(of: alerted) {
                suppression = Decision(outcome: "suppressed",
                                       reason: "the image was already alerted as unhealthy with these findings (unchanged)")
            }
            nowAlerted = state.alerted + keys.filter { !alerted.contains($0) }
        case .newFindings:
            var seen = alerted
            let fresh = alert.findings.filter { seen.insert($0.noiseKey).inserted }
            if fresh.isEmpty {
                suppression = Decision(outcome: "suppressed", reason: "every finding was alerted for this image before")
            }
            alert.alert.findings = fresh
            nowAlerted = state.alerted + fresh.map(\.noiseKey)
        case .scansFailing, .feedsStale, .registryUnreachable:
            return nil
        }
        try await connection.query("""
            UPDATE notification.image_states SET unhealthy = \(unhealthy), alerted_findings = \(nowAlerted), updated_at = now()
            WHERE tenant_id = \(tenantID) AND subscription_id = \(subscriptionID) AND image = \(image)
            """, logger: logger)
        return suppression
    }

    /// The rules of the subscription that match, and the channels they name. Without any rule, the default route.
    private func match(_ alert: ValidatedAlert, alertID: String, tenantID: UUID, subscriptionID: UUID,
                       on connection: PostgresConnection) async throws -> Decision {
        let rows = try await connection.query("""
            SELECT id, name, kind, min_severity, min_consecutive_failures, channel_ids, created_at FROM notification.rules
            WHERE tenant_id = \(tenantID) AND subscription_id = \(subscriptionID) ORDER BY created_at, id
            """, logger: logger)
        let rules = try await PostgresNotificationStore.decodeRules(rows)
        var decision = Decision(outcome: "routed")
        var episodeRepeats = 0
        var belowThreshold = 0
        let candidates: [AlertRule]
        if rules.isEmpty {
            let channelRows = try await connection.query("""
                SELECT id FROM notification.channels
                WHERE tenant_id = \(tenantID) AND subscription_id = \(subscriptionID) AND deleted_at IS NULL
                """, logger: logger)
            var all: [UUID] = []
            for try await id in channelRows.decode(UUID.self) { all.append(id) }
            candidates = [AlertRule(id: Self.defaultRoute, name: "default", kind: alert.kind, minSeverity: nil,
                                    minConsecutiveFailures: 1, channelIDs: all, createdAt: Date())]
        } else {
            candidates = rules.filter { $0.kind == alert.kind }
        }
        for rule in candidates {
            if alert.kind.carriesFindings, let floor = rule.minSeverity, !alert.findings.contains(where: { $0.rank >= floor }) {
                continue
            }
            if alert.kind == .scansFailing,
               alert.alert.consecutiveFailures ?? 1 < rule.minConsecutiveFailures ?? AlertRule.defaultConsecutiveFailures {
                belowThreshold += 1
                continue
            }
            if alert.kind.isEpisodic, let (subject, episode) = Self.episode(of: alert) {
                let claimed = try await connection.query("""
                    INSERT INTO notification.episode_alerts (tenant_id, subscription_id, rule_id, kind, subject, episode, alert_id)
                    VALUES (\(tenantID), \(subscriptionID), \(rule.id), \(alert.kind.rawValue), \(subject), \(episode), \(alertID))
                    ON CONFLICT DO NOTHING RETURNING rule_id
                    """, logger: logger)
                var first = false
                for try await _ in claimed { first = true }
                guard first else {
                    episodeRepeats += 1
                    continue
                }
            }
            for channel in rule.channelIDs {
                let floor: FindingSeverity? = alert.kind.carriesFindings ? rule.minSeverity : nil
                // The most permissive floor wins: nil (every finding) is below any severity.
                let merged: FindingSeverity? = switch (decision.channels[channel], floor) {
                case (nil, let floor): floor
                case (.some(nil), _), (_, nil): nil
                case (.some(.some(let existing)), .some(let floor)): min(existing, floor)
                }
                decision.channels[channel] = .some(merged)
            }
        }
        if decision.channels.isEmpty {
            if episodeRepeats > 0 {
                return Decision(outcome: "suppressed", reason: "already alerted for this episode (since \(Self.episode(of: alert)?.1 ?? "-"))")
            }
            if belowThreshold > 0 {
                return Decision(outcome: "unrouted", reason: "fewer consecutive failures than the rules' threshold")
            }
            return Decision(outcome: "unrouted", reason: rules.isEmpty ? "the subscription has no channel"
                                                                      : "no rule of the subscription matches")
        }
        return decision
    }

    /// What an episodic alert is about, and which episode: one alert per rule for each pair.
    static func episode(of alert: ValidatedAlert) -> (String, String)? {
        let since = alert.alert.since.map { $0.formatted(.iso8601) }
        switch alert.kind {
        case .scansFailing: return alert.image.map { ($0, since ?? "streak") }
        case .feedsStale: return (alert.alert.feed ?? "", since ?? "")
        case .registryUnreachable: return ((alert.alert.registryHost ?? "").lowercased(), since ?? "")
        case .imageUnhealthy, .newFindings, .imageHealthy: return nil
        }
    }
}
