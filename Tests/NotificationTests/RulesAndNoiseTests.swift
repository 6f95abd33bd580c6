import Foundation
import GantryRuntime
import GantryTesting
import HTTPTypes
import NIOHTTP1
import Notification
import Testing

/// Alert rules (kind, severity floor, channels, failure threshold) and noise control, through the real API.
@Suite struct RulesAndNoiseTests {
    @Test("rules pick channels by kind and severity; each channel lists the findings at or above its floor")
    func rulesRouteBySeverity() async throws {
        try await Harness.run { h in
            let critical = try await h.channel("webhook", name: "critical", url: h.hookURL + "/critical", secret: Harness.secret)
            let everything = try await h.channel("webhook", name: "everything", url: h.hookURL + "/all", secret: Harness.secret)
            let idle = try await h.channel("webhook", name: "idle", url: h.hookURL + "/idle", secret: Harness.secret)
            #expect(try await h.rule("imageUnhealthy", channels: [critical], minSeverity: "Critical").status == 201)
            #expect(try await h.rule("imageUnhealthy", channels: [everything]).status == 201)
            #expect(try await h.rule("imageUnhealthy", channels: [critical], minSeverity: "High", name: "also high").status == 201)
            #expect(try await h.rule("scansFailing", channels: [idle]).status == 201)

            // Only Medium and Low findings: below both floors of `critical`; `everything` gets them.
            let quiet = h.alert(messageID: "alert:medium", findings: [Harness.finding("CVE-1", severity: "Medium"),
                                                                     Harness.finding("CVE-2", "zlib", severity: "low")])
            #expect(try await h.raised(quiet) == 1)
            // High and Critical: `critical` gets them (its most permissive floor is High), not the Low one.
            let loud = h.alert(messageID: "alert:loud", digest: "sha256:" + String(repeating: "cd", count: 32), findings: [
                Harness.finding("CVE-3", severity: "Low"), Harness.finding("CVE-4", "openssl", severity: "High"),
                Harness.finding("CVE-5", "busybox", severity: "Critical")])
            #expect(try await h.raised(loud) == 2)

            let received = try await eventually("three deliveries") {
                let received = await h.receiver.received
                return received.count >= 3 ? received : nil
            }
            try await Task.sleep(for: .milliseconds(300))
            #expect(await h.receiver.received.count == 3)
            let byPath = Dictionary(grouping: received, by: \.path)
            #expect(byPath["/hook/idle"] == nil)
            let all = try #require(byPath["/hook/all"])
            #expect(all.count == 2)
            let criticalPosts = try #require(byPath["/hook/critical"])
            #expect(criticalPosts.count == 1)
            let body = try criticalPosts[0].json()
            #expect(body["messageId"] as? String == "alert:loud")
            #expect(((body["findings"] as? [[String: Any]]) ?? []).compactMap { $0["vulnerabilityId"] as? String } == ["CVE-4", "CVE-5"])
            let full = try #require(try all.map { try $0.json() }.first { $0["messageId"] as? String == "alert:loud" })
            #expect((full["findings"] as? [Any])?.count == 3)
            // Severities arrive canonical whatever case they were sent in.
            let medium = try #require(try all.map { try $0.json() }.first { $0["messageId"] as? String == "alert:medium" })
            #expect(((medium["findings"] as? [[String: Any]]) ?? []).compactMap { $0["severity"] as? String } == ["Medium", "Low"])

            let rules = try await TestHTTP.send(.GET, "\(h.subscription)/rules").object()["items"] as? [[String: Any]]
            #expect(rules?.count == 4)
            #expect(rules?.first?["minSeverity"] as? String == "Critical")
            #expect(rules?.last?["minConsecutiveFailures"] as? Int == 3)
        }
    }

    @Test("rules and channels are checked, scoped to their subscription, and a used channel cannot be deleted")
    func rulesAndChannelsAreChecked() async throws {
        try await Harness.run { h in
            let hook = try await h.channel("webhook", url: h.hookURL, secret: Harness.secret)
            try expectProblem(try await h.rule("imageUnhealthy", channels: []), status: 400)
            try expectProblem(try await h.rule("imageUnhealthy", channels: ["not-a-uuid"]), status: 400)
            let foreign = UUID().uuidString.lowercased()
            #expect(try expectProblem(try await h.rule("imageUnhealthy", channels: [foreign]), status: 400).contains(foreign))
            try expectProblem(try await h.rule("imageExploded", channels: [hook]), status: 400)
            try expectProblem(try await h.rule("imageUnhealthy", channels: [hook], minSeverity: "Severe"), status: 400)
            try expectProblem(try await h.rule("feedsStale", channels: [hook], minSeverity: "High"), status: 400)
            try expectProblem(try await h.rule("imageUnhealthy", channels: [hook], minConsecutiveFailures: 2), status: 400)
            try expectProblem(try await h.rule("scansFailing", channels: [hook], minConsecutiveFailures: 0), status: 400)
            // Channel fields by type.
            try expectProblem(try await h.createChannel(["type": "webhook", "name": "x", "url": h.hookURL]), status: 400)
            try expectProblem(try await h.createChannel(["type": "slack", "name": "x", "url": h.hookURL, "secret": Harness.secret]),
                              status: 400)
            try expectProblem(try await h.createChannel(["type": "email", "name": "x", "recipients": ["ops@example.com"]]),
                              status: 400)  // no SMTP relay in this deployment
            try expectProblem(try await h.createChannel(["type": "pager", "name": "x", "url": h.hookURL]), status: 400)
            try expectProblem(try await h.createChannel(["type": "slack", "name": " ", "url": h.hookURL]), status: 400)
            try expectProblem(try await h.createChannel(["type": "slack", "name": "x"]), status: 400)
            #expect(try await h.count("SELECT count(*)::int FROM notification.rules") == 0)
            #expect(try await h.count("SELECT count(*)::int FROM notification.channels") == 1)

            let created = try await h.rule("imageUnhealthy", channels: [hook, hook], minSeverity: "High")
            #expect(created.status == 201)
            let rule = try created.object()
            #expect(rule["channelIds"] as? [String] == [hook])
            #expect(rule["minSeverity"] as? String == "High")
            let ruleID = try #require(rule["id"] as? String)
            #expect(try await TestHTTP.send(.GET, "\(h.subscription)/rules/\(ruleID)").status == 200)

            // Another subscription of the same tenant sees none of it.
            let other = h.base + (try await TestSubscription.create(in: h.env, tenantID: h.tenantID)).path
            try expectProblem(try await TestHTTP.send(.GET, "\(other)/rules/\(ruleID)"), status: 404)
            try expectProblem(try await TestHTTP.send(.GET, "\(other)/channels/\(hook)"), status: 404)
            try expectProblem(try await TestHTTP.send(.DELETE, "\(other)/channels/\(hook)"), status: 404)
            #expect((try await TestHTTP.send(.GET, "\(other)/channels").object()["items"] as? [Any])?.isEmpty == true)

            let inUse = try await TestHTTP.send(.DELETE, "\(h.subscription)/channels/\(hook)")
            #expect(try expectProblem(inUse, status: 409).contains("imageUnhealthy"))
            #expect(try await TestHTTP.send(.DELETE, "\(h.subscription)/rules/\(ruleID)").status == 204)
            try expectProblem(try await TestHTTP.send(.DELETE, "\(h.subscription)/rules/\(ruleID)"), status: 404)
            #expect(try await TestHTTP.send(.DELETE, "\(h.subscription)/channels/\(hook)").status == 204)
            try expectProblem(try await TestHTTP.send(.GET, "\(h.subscription)/channels/\(hook)"), status: 404)
            // No channel left: the alert is recorded as unrouted, nothing is sent.
            #expect(try await h.raised(h.alert(messageID: "alert:nowhere")) == 0)
            let record = try #require(try await h.alertRecord("alert:nowhere"))
            #expect(record["outcome"] as? String == "unrouted")
            #expect(await h.receiver.received.isEmpty)
        }
    }

    @Test("one alert per change of an image's state: an unchanged rescan alerts nobody; all findings in one message")
    func unchangedRescanAlertsNobody() async throws {
        try await Harness.run { h in
            #expect(try await h.createWebhook(url: h.hookURL).status == 201)
            let findings = (1...150).map { Harness.finding("CVE-2024-\(1000 + $0)", "pkg\($0)", severity: $0 % 3 == 0 ? "High" : "Low") }
            #expect(try await h.raised(h.alert(messageID: "alert:scan-1", findings: findings)) == 1)
            // The same image, rescanned with the same findings (another scan, another message ID).
            #expect(try await h.raised(h.alert(messageID: "alert:scan-2", findings: findings.reversed())) == 0)
            // A subset is no news either.
            #expect(try await h.raised(h.alert(messageID: "alert:scan-3", findings: Array(findings.prefix(10)))) == 0)
            let received = try await eventually("one delivery") {
                let received = await h.receiver.received
                return received.isEmpty ? nil : received
            }
            try await Task.sleep(for: .milliseconds(400))
            #expect(await h.receiver.received.count == 1)
            #expect((try received[0].json()["findings"] as? [Any])?.count == 150)
            let suppressed = try #require(try await h.alertRecord("alert:scan-2"))
            #expect(suppressed["outcome"] as? String == "suppressed")
            #expect((suppressed["reason"] as? String)?.contains("unchanged") == true)
            #expect(suppressed["deliveries"] as? Int == 0)
            #expect(try await h.alertRecord("alert:scan-1")?["outcome"] as? String == "routed")

            // A new finding appears on the unhealthy image: that is news, and alerts.
            #expect(try await h.raised(h.alert(messageID: "alert:scan-4", findings: findings + [Harness.finding("CVE-2025-1")])) == 1)
            // The image becomes healthy (recorded, not delivered), then unhealthy again with old findings: alerts again.
            #expect(try await h.raised(h.alert("imageHealthy", messageID: "alert:healthy", findings: [])) == 0)
            #expect(try await h.alertRecord("alert:healthy")?["outcome"] as? String == "recorded")
            #expect(try await h.raised(h.alert(messageID: "alert:scan-5", findings: Array(findings.prefix(2)))) == 1)
            // Another image with the same findings is another image.
            #expect(try await h.raised(h.alert(messageID: "alert:other-image", digest: "sha256:" + String(repeating: "ef", count: 32),
                                               findings: Array(findings.prefix(2)))) == 1)
            _ = try await eventually("four deliveries") {
                await h.receiver.received.count == 4 ? true : nil
            }
            #expect(await h.receiver.received.allSatisfy { $0.event == "imageUnhealthy" })
        }
    }

    @Test("newFindings lists only findings never alerted for the image, at or above the rule's floor")
    func newFindingsAfterAFeedUpdate() async throws {
        try await Harness.run { h in
            let hook = try await h.channel("webhook", url: h.hookURL, secret: Harness.secret)
            #expect(try await h.rule("imageUnhealthy", channels: [hook]).status == 201)
            #expect(try await h.rule("newFindings", channels: [hook], minSeverity: "High").status == 201)
            let first = [Harness.finding("CVE-1"), Harness.finding("CVE-2", "zlib", severity: "Medium")]
            #expect(try await h.raised(h.alert(messageID: "alert:unhealthy", findings: first)) == 1)
            // A feed update re-evaluates the stored image: two old findings, one new High, one new Low.
            let evaluated = first + [Harness.finding("CVE-3", "openssl", severity: "High"), Harness.finding("CVE-4", "curl", severity: "Low")]
            #expect(try await h.raised(h.alert("newFindings", messageID: "alert:feed-1", findings: evaluated)) == 1)
            // The same re-evaluation again (another feed run): nothing new.
            #expect(try await h.raised(h.alert("newFindings", messageID: "alert:feed-2", findings: evaluated)) == 0)
            #expect(try await h.alertRecord("alert:feed-2")?["outcome"] as? String == "suppressed")
            // Only a new Low finding: below the rule's floor, so no delivery, but remembered.
            let low = evaluated + [Harness.finding("CVE-5", "bash", severity: "Low")]
            #expect(try await h.raised(h.alert("newFindings", messageID: "alert:feed-3", findings: low)) == 0)
            #expect(try await h.alertRecord("alert:feed-3")?["outcome"] as? String == "unrouted")

            let received = try await eventually("two deliveries") {
                let received = await h.receiver.received
                return received.count == 2 ? received : nil
            }
            let news = try #require(try received.map { try $0.json() }.first { $0["kind"] as? String == "newFindings" })
            #expect(((news["findings"] as? [[String: Any]]) ?? []).compactMap { $0["vulnerabilityId"] as? String } == ["CVE-3"])
            #expect(received.map(\.event) == ["imageUnhealthy", "newFindings"])
        }
    }

    @Test("scansFailing alerts once per streak at the threshold; feedsStale and registryUnreachable once per episode")
    func episodesAlertOnce() async throws {
        try await Harness.run { h in
            let hook = try await h.channel("webhook", url: h.hookURL, secret: Harness.secret)
            #expect(try await h.rule("scansFailing", channels: [hook], minConsecutiveFailures: 3).status == 201)
            #expect(try await h.rule("registryUnreachable", channels: [hook]).status == 201)
            #expect(try await h.rule("feedsStale", channels: [hook]).status == 201)
            func failing(_ count: Int, _ id: String) -> [String: Any] {
                h.alert("scansFailing", messageID: id, findings: [], extra: ["consecutiveFailures": count,
                                                                             "detail": "manifest unknown"])
            }
            #expect(try await h.raised(failing(1, "fail-1")) == 0)
            #expect(try await h.raised(failing(2, "fail-2")) == 0)
            #expect(try await h.alertRecord("fail-2")?["outcome"] as? String == "unrouted")
            #expect(try await h.raised(failing(3, "fail-3")) == 1)
            #expect(try await h.raised(failing(4, "fail-4")) == 0)
            #expect(try await h.alertRecord("fail-4")?["outcome"] as? String == "suppressed")
            // A successful scan (any image report) ends the streak; the next streak alerts again.
            #expect(try await h.raised(h.alert("imageHealthy", messageID: "ok-1", findings: [])) == 0)
            #expect(try await h.raised(failing(3, "fail-again-3")) == 1)

            let since = "2024-05-01T10:00:00Z"
            let unreachable = h.alert("registryUnreachable", messageID: "reg-1", findings: [],
                                      extra: ["since": since, "detail": "connection refused"])
            #expect(try await h.raised(unreachable) == 1)
            var again = unreachable
            again["messageId"] = "reg-2"
            #expect(try await h.raised(again) == 0)
            again["messageId"] = "reg-3"
            again["since"] = "2024-05-02T10:00:00Z"
            #expect(try await h.raised(again) == 1)

            // feedsStale is deployment-wide: without tenant and subscription it reaches every subscription with a rule.
            let stale: [String: Any] = ["messageId": "feed-1", "kind": "feedsStale", "feed": "alpine-secdb",
                                        "since": since, "summary": "alpine-secdb was last updated 3 days ago"]
            #expect(try await h.raised(stale) == 1)
            #expect(try await h.raised(stale) == 0)  // the same message
            var later = stale
            later["messageId"] = "feed-2"
            #expect(try await h.raised(later) == 0)  // the same episode
            let record = try #require(try await h.alertRecord("feed-1/\(h.subscriptionID)"))
            #expect(record["kind"] as? String == "feedsStale")

            let received = try await eventually("five deliveries") {
                let received = await h.receiver.received
                return received.count == 5 ? received : nil
            }
            try await Task.sleep(for: .milliseconds(300))
            #expect(await h.receiver.received.count == 5)
            #expect(received.compactMap(\.event).sorted()
                    == ["feedsStale", "registryUnreachable", "registryUnreachable", "scansFailing", "scansFailing"])
            let feed = try #require(try received.map { try $0.json() }.first { $0["kind"] as? String == "feedsStale" })
            #expect(feed["subscriptionId"] as? String == h.subscriptionID)
            #expect(feed["tenantId"] as? String == h.tenantID)
        }
    }
}
