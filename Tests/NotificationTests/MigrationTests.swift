import Foundation
import GantryRuntime
import GantryTesting
import HTTPTypes
import Logging
import NIOHTTP1
import Notification
import PostgresNIO
import Synchronization
import Testing

/// The upgrade from webhooks to channels (migration 0002) on a database that has data from 0001.
@Suite struct MigrationTests {
    static var migrations: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Services/Notification/Sources/Migrations").standardizedFileURL
    }

    @Test("webhooks, alerts and deliveries of 0001 survive as channels; a pending delivery is still delivered")
    func webhooksBecomeChannels() async throws {
        let tenant = UUID(), subscription = UUID(), webhook = UUID(), delivered = UUID(), pending = UUID()
        let logger = Logger(label: "migration-test")
        try await Harness.run(prepare: { database, port in
            let first = try Migration.load(from: Self.migrations).filter { $0.version == 1 }
            try #require(first.count == 1)
            try await database.withClient { client in
                try await Migrator(schema: "notification", migrations: first).migrate(client: client, logger: logger)
                let url = "http://127.0.0.1:\(port)/hook/old"
                let payload = #"{"findings":[],"imageDigest":"sha256:\#(String(repeating: "ab", count: 32))","kind":"imageUnhealthy","messageId":"old","registryHost":"registry.example.com","repositoryName":"library/alpine","subscriptionId":"\#(subscription.uuidString.lowercased())","summary":"old alert","tenantId":"\#(tenant.uuidString.lowercased())"}"#
                try await client.query("""
                    INSERT INTO notification.webhooks (id, tenant_id, subscription_id, url, secret)
                    VALUES (\(webhook), \(tenant), \(subscription), \(url), \(Harness.secret))
                    """, logger: logger)
                for (id, message) in [(delivered, "old-1"), (pending, "old-2")] {
                    try await client.query("""
                        INSERT INTO notification.alerts (message_id, tenant_id, subscription_id, kind, payload)
                        VALUES (\(message), \(tenant), \(subscription), 'imageUnhealthy', \(payload))
                        """, logger: logger)
                    try await client.query("""
                        INSERT INTO notification.deliveries (id, tenant_id, subscription_id, webhook_id, alert_id, status, attempts,
                                                             delivered_at)
                        VALUES (\(id), \(tenant), \(subscription), \(webhook), \(message),
                                \(id == delivered ? "delivered" : "pending"), \(id == delivered ? 1 : 0),
                                \(id == delivered ? Date() : nil))
                        """, logger: logger)
                }
            }
        }) { h in
            // The old release's discovery knew this tenant and subscription too (the public routes ask it).
            try await h.execute("INSERT INTO discovery.tenants (id, name) VALUES ('\(tenant)', 'migrated-\(tenant)')")
            try await h.execute("""
                INSERT INTO discovery.subscriptions (id, tenant_id, name, cloud_type)
                VALUES ('\(subscription)', '\(tenant)', 'migrated', 'commercial')
                """)
            let base = "\(h.base)/v1/tenants/\(tenant.uuidString.lowercased())/subscriptions/\(subscription.uuidString.lowercased())"
            let hooks = try await TestHTTP.send(.GET, "\(base)/webhooks").object()["items"] as? [[String: Any]]
            #expect(hooks?.map { $0["id"] as? String } == [webhook.uuidString.lowercased()])
            let channels = try await TestHTTP.send(.GET, "\(base)/channels").object()["items"] as? [[String: Any]]
            #expect(channels?.first?["type"] as? String == "webhook")
            #expect(channels?.first?["signed"] as? Bool == true)
            // The pending delivery goes out, signed with the secret kept through the migration.
            let post = try await eventually("the old pending delivery arrives") { await h.receiver.received.first }
            #expect(post.path == "/hook/old")
            #expect(post.deliveryID == pending.uuidString.lowercased())
            #expect(WebhookSignature.verify(signature: post.signature ?? "", timestamp: post.timestamp ?? "", body: post.body,
                                            secret: Harness.secret) == .valid)
            // The secret stored in clear by the old release is sealed at start-up.
            #expect(try await h.count("SELECT count(*)::int FROM notification.channels WHERE secret LIKE 'sealed:v1:%'") == 1)
            #expect(try await h.count("SELECT count(*)::int FROM notification.channels WHERE secret LIKE '%\(Harness.secret)%'") == 0)
            let log = try await eventually("both deliveries are delivered") {
                let items = try await TestHTTP.send(.GET, "\(base)/deliveries?status=delivered").object()["items"] as? [[String: Any]]
                return items?.count == 2 ? items : nil
            }
            #expect(Set(log.compactMap { $0["id"] as? String }) == [delivered, pending].map { $0.uuidString.lowercased() }.asSet)
            #expect(log.allSatisfy { ($0["url"] as? String)?.hasSuffix("/hook/old") == true && $0["channelType"] as? String == "webhook" })
            // The alert list counts what the delivery log shows, for alerts recorded before delivery counts were.
            let alerts = try await TestHTTP.send(.GET, "\(base)/alerts").object()["items"] as? [[String: Any]]
            #expect(alerts?.count == 2)
            #expect(alerts?.allSatisfy { $0["deliveries"] as? Int == 1 } == true, "\(alerts ?? [])")
            #expect(try await h.count("SELECT count(*)::int FROM information_schema.tables WHERE table_schema = 'notification' AND table_name = 'webhooks'") == 0)
        }
    }
}

/// Migration 0004: Slack and Teams URLs stored in clear by earlier releases are masked in `url` and sealed as the
/// channel's secret (at start-up); their deliveries keep going to the full URL.
@Suite struct ChatURLMigrationTests {
    @Test("a Slack channel stored in clear is masked and sealed on upgrade; its pending delivery still arrives")
    func chatURLsSealedOnUpgrade() async throws {
        let tenant = UUID(), subscription = UUID(), channel = UUID(), pending = UUID()
        let logger = Logger(label: "migration-test")
        let masked = Mutex<String>("")
        try await Harness.run(prepare: { database, port in
            let before = try Migration.load(from: MigrationTests.migrations).filter { $0.version <= 3 }
            try #require(before.count == 3)
            try await database.withClient { client in
                try await Migrator(schema: "notification", migrations: before).migrate(client: client, logger: logger)
                let url = "http://127.0.0.1:\(port)/hook/slack-T1-B2-OldSlackToken42"
                masked.withLock { $0 = "http://127.0.0.1:\(port)/hook/****" }
                let payload = #"{"findings":[],"imageDigest":"sha256:\#(String(repeating: "ab", count: 32))","kind":"imageUnhealthy","messageId":"old","registryHost":"registry.example.com","repositoryName":"library/alpine","subscriptionId":"\#(subscription.uuidString.lowercased())","summary":"old alert","tenantId":"\#(tenant.uuidString.lowercased())"}"#
                try await client.withTransaction(logger: logger) { connection in
                    try await connection.query("SELECT set_config('gantry.system', 'on', true)", logger: logger)
                    try await connection.query("""
                        INSERT INTO notification.channels (id, tenant_id, subscription_id, type, name, url)
                        VALUES (\(channel), \(tenant), \(subscription), 'slack', 'old chat', \(url))
                        """, logger: logger)
                    try await connection.query("""
                        INSERT INTO notification.alerts (message_id, tenant_id, subscription_id, kind, payload)
                        VALUES ('old-chat', \(tenant), \(subscription), 'imageUnhealthy', \(payload))
                        """, logger: logger)
                    try await connection.query("""
                        INSERT INTO notification.deliveries (id, tenant_id, subscription_id, channel_id, alert_id, target, status,
                                                             attempts, give_up_at)
                        VALUES (\(pending), \(tenant), \(subscription), \(channel), 'old-chat', \(url), 'pending', 0,
                                now() + interval '1 hour')
                        """, logger: logger)
                }
            }
        }) { h in
            let post = try await eventually("the old pending delivery arrives") { await h.receiver.received.first }
            #expect(post.path == "/hook/slack-T1-B2-OldSlackToken42")
            #expect(post.deliveryID == pending.uuidString.lowercased())
            let expected = masked.withLock { $0 }
            #expect(try await h.count("SELECT count(*)::int FROM notification.channels WHERE url = '\(expected)' AND secret LIKE 'sealed:v1:%'") == 1)
            #expect(try await h.count("SELECT count(*)::int FROM notification.channels WHERE url LIKE '%OldSlackToken42%' OR secret LIKE '%OldSlackToken42%'") == 0)
            #expect(try await h.count("SELECT count(*)::int FROM notification.deliveries WHERE target = '\(expected)'") == 1)
        }
    }
}

extension Array where Element: Hashable {
    var asSet: Set<Element> { Set(self) }
}
