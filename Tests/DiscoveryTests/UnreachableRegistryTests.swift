import Foundation
import GantryRuntime
import GantryTesting
import NIOHTTP1
import PostgresNIO
import Testing

/// Discovery's periodic crawl of a registry it cannot reach raises notification's `registryUnreachable`, as the
/// scanner does for scans (notification.yaml, "Alert kinds"): a real crawl against a closed port of 127.0.0.1,
/// the alert through discovery's outbox to a real notification service, one alert per registry and episode; a
/// crawl that reaches the registry ends the episode and the next failure opens a new one.
@Suite("Discovery registryUnreachable")
struct UnreachableRegistryTests {
    static let periodic = ["GANTRY_DISCOVERY_CRAWL_INTERVAL_SECONDS": "1", "GANTRY_DISCOVERY_CRAWL_POLL_MILLISECONDS": "100"]

    /// discovery's queued `registryUnreachable` alerts, oldest first, as JSON objects.
    static func queued(_ h: DiscoveryHarness) async throws -> [[String: Any]] {
        try await h.strings("""
            SELECT payload FROM discovery.outbox
            WHERE destination = 'notification' AND path = '/internal/v1/alerts' ORDER BY id
            """).map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
    }

    static func crawls(_ h: DiscoveryHarness, _ ids: (tenant: String, subscription: String, registry: String),
                       status: String) async throws -> [[String: Any]] {
        try await h.items("\(h.registryURL(ids))/crawls").filter { $0["status"] as? String == status }
    }

    @Test("failed crawls of a closed port raise one registryUnreachable per episode, received by notification; a successful crawl ends the episode")
    func closedPort() async throws {
        let port = try FreePort.next()
        let host = "127.0.0.1:\(port)"
        try await DiscoveryHarness.run(extra: Self.periodic, notification: true) { h in
            let ids = try await h.registered(host)
            let failed = try await eventually("two failed periodic crawls", timeout: .seconds(90)) {
                let failed = try await Self.crawls(h, ids, status: "failed")
                return failed.count >= 2 ? failed : nil
            }
            #expect(failed.allSatisfy { ($0["error"] as? String)?.contains(host) == true }, "\(failed)")
            #expect(try await h.count("discovery.unreachable_registries") == 1)

            // One message for the episode however many crawls failed in it, shaped as the scanner's.
            var alerts = try await Self.queued(h)
            #expect(alerts.count == 1, "\(alerts)")
            let alert = try #require(alerts.first)
            #expect(alert["kind"] as? String == "registryUnreachable")
            #expect(alert["registryHost"] as? String == host)
            #expect(alert["tenantId"] as? String == ids.tenant && alert["subscriptionId"] as? String == ids.subscription)
            #expect(alert["since"] != nil && (alert["detail"] as? String)?.isEmpty == false)
            let messageID = try #require(alert["messageId"] as? String)
            #expect(messageID.hasPrefix("alert:registry-unreachable:\(ids.registry):") && messageID.hasSuffix(":\(ids.subscription)"))

            // Notification accepted and recorded it (the outbox relay got a 2xx).
            let notification = h.env.url(.notification).absoluteString
            let received = try await eventually("notification records the alert") { () -> [[String: Any]]? in
                let reply = try await TestHTTP.send(
                    .GET, "\(notification)/v1/tenants/\(ids.tenant)/subscriptions/\(ids.subscription)/alerts")
                try #require(reply.status == 200, "\(reply.text)")
                let items = try #require(try reply.object()["items"] as? [[String: Any]])
                return items.isEmpty ? nil : items
            }
            #expect(received.map { $0["messageId"] as? String } == [messageID])
            #expect(received.first?["kind"] as? String == "registryUnreachable" && received.first?["registryHost"] as? String == host)

            // The registry comes back (an empty one on the same port): the next successful crawl ends the episode.
            try await withRunningServices([FakeRegistry.application(.empty, port: port, counter: PageCounter())], readyPorts: [port]) {
                _ = try await eventually("a crawl that reaches the registry", timeout: .seconds(60)) {
                    try await Self.crawls(h, ids, status: "succeeded").isEmpty ? nil : true
                }
            }
            #expect(try await h.count("discovery.unreachable_registries") == 0)

            // Gone again: a new episode, a second alert.
            alerts = try await eventually("the next episode's alert", timeout: .seconds(90)) {
                let alerts = try await Self.queued(h)
                return alerts.count >= 2 ? alerts : nil
            }
            #expect(alerts.count == 2)
            #expect(Set(alerts.compactMap { $0["messageId"] as? String }).count == 2)
            #expect(alerts.compactMap { $0["since"] as? String }.count == 2)
        }
    }
}
