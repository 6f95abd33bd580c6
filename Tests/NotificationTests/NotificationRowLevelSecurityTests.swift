import Foundation
import GantryRuntime
import GantryTesting
import Logging
import NIOHTTP1
import PostgresNIO
import Testing

/// Row-level security on notification's tenant tables (issue 6, "Isolation"; migration 0003, `TenantScope`),
/// with two tenants that each have a channel, a rule, an alert and a delivered delivery.
@Suite("Notification row-level security")
struct NotificationRowLevelSecurityTests {
    static let logger = Logger(label: "notification-rls-test")
    /// Every notification table holding tenant rows; delivery_attempts is secured through its delivery.
    static let securedTables = ["alerts", "channels", "deliveries", "delivery_attempts", "episode_alerts", "image_states", "rules"]

    /// One tenant's subscription with a webhook channel, an imageUnhealthy rule and one delivered alert.
    struct Tenant: Sendable {
        let tenantID: String
        let subscriptionID: String
        var channelID = ""
        var ruleID = ""
        var deliveryID = ""
        let messageID = "alert:\(UUID().uuidString.lowercased())"

        func base(_ h: Harness) -> String { "\(h.base)/v1/tenants/\(tenantID)/subscriptions/\(subscriptionID)" }

        static func make(_ h: Harness) async throws -> Tenant {
            let registered = try await TestSubscription.create(in: h.env)
            var tenant = Tenant(tenantID: registered.tenantID, subscriptionID: registered.subscriptionID)
            let channel = try await TestHTTP.json(.POST, "\(tenant.base(h))/channels",
                                                  ["type": "webhook", "name": "hook", "url": h.hookURL, "secret": Harness.secret])
            try #require(channel.status == 201, "\(channel.text)")
            tenant.channelID = try #require(try channel.object()["id"] as? String)
            let rule = try await TestHTTP.json(.POST, "\(tenant.base(h))/rules",
                                               ["name": "unhealthy", "kind": "imageUnhealthy", "channelIds": [tenant.channelID]])
            try #require(rule.status == 201, "\(rule.text)")
            tenant.ruleID = try #require(try rule.object()["id"] as? String)
            #expect(try await h.raised(h.alert(messageID: tenant.messageID,
                                               extra: ["tenantId": tenant.tenantID, "subscriptionId": tenant.subscriptionID])) == 1)
            let base = tenant.base(h)
            let delivered = try await eventually("the tenant's delivery is delivered") { () async throws -> String? in
                let items = try await TestHTTP.send(.GET, "\(base)/deliveries?status=delivered").object()["items"] as? [[String: Any]]
                return items?.first?["id"] as? String
            }
            tenant.deliveryID = delivered
            return tenant
        }
    }

    @Test("tables secured; no rows without a tenant; a tenant sees only its rows; writes for another tenant fail")
    func sqlLevelIsolation() async throws {
        try await Harness.run { h in
            let a = try await Tenant.make(h), b = try await Tenant.make(h)
            let tenantA = try #require(UUID(uuidString: a.tenantID)), tenantB = try #require(UUID(uuidString: b.tenantID))
            try await RowLevelSecurityProbe.run(h.env.database) { probe in
                let client = probe.client, logger = Self.logger
                let tables = try await probe.expectTablesSecured(schema: "notification")
                // delivery_attempts has no tenant_id: its policy admits the attempts of deliveries the query can see.
                let secured = tables.filter { $0.hasTenantID || $0.enabled }
                for table in secured {
                    #expect(table.enabled && table.forced && table.policy, "\(table)")
                }
                #expect(secured.map(\.name) == Self.securedTables)

                // imageUnhealthy alerts record no episode: one episode row per tenant, written as that tenant.
                for tenant in [a, b] {
                    try await client.withTenant(UUID(uuidString: tenant.tenantID)!, logger: logger) { connection in
                        try await connection.query("""
                            INSERT INTO notification.episode_alerts (tenant_id, subscription_id, rule_id, kind, subject, episode, alert_id)
                            VALUES (\(UUID(uuidString: tenant.tenantID)!), \(UUID(uuidString: tenant.subscriptionID)!),
                                    \(UUID(uuidString: tenant.ruleID)!), 'scansFailing', 'registry', '1', \(tenant.messageID))
                            """, logger: logger)
                        return
                    }
                }
                try await probe.checkTenantTables(schema: "notification", known: Set(secured.filter(\.hasTenantID).map(\.name)),
                                                  tenantA: tenantA, tenantB: tenantB)
                let attempts: PostgresQuery = "SELECT count(*)::int FROM notification.delivery_attempts"
                let plain = try await client.withConnection { try await RowLevelSecurityProbe.integer($0, attempts) }
                #expect(plain == 0, "delivery_attempts without a tenant setting")
                let everyone = try await client.withSystemAccess(logger: logger) { try await RowLevelSecurityProbe.integer($0, attempts) }
                let ofA = try await client.withTenant(tenantA, logger: logger) { try await RowLevelSecurityProbe.integer($0, attempts) }
                let ofB = try await client.withTenant(tenantB, logger: logger) { try await RowLevelSecurityProbe.integer($0, attempts) }
                #expect(ofA >= 1 && ofB >= 1 && ofA + ofB == everyone, "delivery_attempts: A \(ofA), B \(ofB), all \(everyone)")
                let othersSeenByA = try await client.withTenant(tenantA, logger: logger) { connection in
                    try await RowLevelSecurityProbe.integer(connection, """
                        SELECT count(*)::int FROM notification.delivery_attempts a WHERE a.delivery_id = \(UUID(uuidString: b.deliveryID)!)
                        """)
                }
                #expect(othersSeenByA == 0)
                try await probe.expectNoSettingLeft()

                // A rule for tenant B written while tenant A is set: refused by WITH CHECK (as one without a setting).
                await probe.expectInserts({ tenant in
                    let owner = tenant == tenantA ? a : b
                    return """
                        INSERT INTO notification.rules (id, tenant_id, subscription_id, name, kind, channel_ids)
                        VALUES (\(UUID()), \(tenant), \(UUID(uuidString: owner.subscriptionID)!), 'intruder', 'imageUnhealthy',
                                \([UUID(uuidString: owner.channelID)!]))
                        """
                }, tenantA: tenantA, tenantB: tenantB)
                // Tenant A cannot record an attempt on B's delivery.
                #expect(await RowLevelSecurityProbe.sqlState {
                    try await client.withTenant(tenantA, logger: logger) { connection in
                        _ = try await connection.query("""
                            INSERT INTO notification.delivery_attempts (delivery_id, attempt, started_at, duration_ms, outcome)
                            VALUES (\(UUID(uuidString: b.deliveryID)!), 99, now(), 1, 'failed')
                            """, logger: logger)
                    }
                } == "42501", "an attempt on tenant B's delivery while tenant A is set")
            }
            #expect(try await h.count("SELECT count(*)::int FROM notification.rules") == 2)
            #expect(try await h.count("SELECT count(*)::int FROM notification.delivery_attempts") == 2)
        }
    }

    @Test("another tenant's channel, rule and delivery are 404 under a tenant's path; lists show only its own")
    func apiLevelIsolation() async throws {
        try await Harness.run { h in
            let a = try await Tenant.make(h), b = try await Tenant.make(h)
            // B's owner uses A's subscription and IDs under B's tenant.
            let crossed = "\(h.base)/v1/tenants/\(b.tenantID)/subscriptions/\(a.subscriptionID)"
            for (method, path) in [(HTTPMethod.GET, "/channels/\(a.channelID)"), (.DELETE, "/channels/\(a.channelID)"),
                                   (.GET, "/rules/\(a.ruleID)"), (.DELETE, "/rules/\(a.ruleID)"),
                                   (.GET, "/deliveries/\(a.deliveryID)"), (.POST, "/deliveries/\(a.deliveryID)/redeliver")] {
                let reply = try await TestHTTP.send(method, crossed + path)
                #expect(reply.status == 404, "\(method) \(path): \(reply.status) \(reply.text)")
            }
            // Discovery says the subscription is A's: every list under B's tenant is 404 too.
            for list in ["/channels", "/rules", "/alerts", "/deliveries"] {
                let reply = try await TestHTTP.send(.GET, crossed + list)
                #expect(try expectProblem(reply, status: 404).contains("not found in tenant \(b.tenantID)"), "\(list)")
            }
            // Each tenant's own lists hold only its own items.
            for tenant in [a, b] {
                let channels = try await TestHTTP.send(.GET, "\(tenant.base(h))/channels").object()["items"] as? [[String: Any]]
                #expect(channels?.compactMap { $0["id"] as? String } == [tenant.channelID])
                let deliveries = try await TestHTTP.send(.GET, "\(tenant.base(h))/deliveries").object()["items"] as? [[String: Any]]
                #expect(deliveries?.compactMap { $0["id"] as? String } == [tenant.deliveryID])
                let alerts = try await TestHTTP.send(.GET, "\(tenant.base(h))/alerts").object()["items"] as? [[String: Any]]
                #expect(alerts?.compactMap { $0["messageId"] as? String } == [tenant.messageID])
            }
            // Nothing of A's was changed by B's attempts.
            #expect(try await TestHTTP.send(.GET, "\(a.base(h))/channels/\(a.channelID)").status == 200)
            #expect(try await TestHTTP.send(.GET, "\(a.base(h))/rules/\(a.ruleID)").status == 200)
            #expect(try await h.count("SELECT count(*)::int FROM notification.deliveries WHERE status = 'delivered'") == 2)
        }
    }
}
