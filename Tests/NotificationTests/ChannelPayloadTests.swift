import Foundation
import GantryRuntime
import GantryTesting
import HTTPTypes
import NIOHTTP1
import Notification
import Testing

/// Slack, Teams and CloudEvents channels: each receives its own format over real HTTP, checked by the
/// format's own implementation where one exists (slack-sdk's Block Kit models, the CloudEvents SDK).
@Suite struct ChannelPayloadTests {
    nonisolated(unsafe) static let manyFindings = (1...45).map {
        Harness.finding("CVE-2024-\(2000 + $0)", "lib<\($0)>&co", severity: $0 == 7 ? "Critical" : ($0 % 2 == 0 ? "High" : "Medium"))
    }

    @Test("one alert with 45 findings reaches Slack, Teams and CloudEvents channels as one message each")
    func chatAndCloudEventPayloads() async throws {
        try await Harness.run { h in
            _ = try await h.channel("slack", url: h.hookURL + "/slack")
            _ = try await h.channel("teams", url: h.hookURL + "/teams")
            _ = try await h.channel("cloudevents", url: h.hookURL + "/events", secret: Harness.secret)
            _ = try await h.channel("cloudevents", name: "unsigned", url: h.hookURL + "/plain-events")
            let alert = h.alert(messageID: "alert:payloads", findings: Self.manyFindings)
            #expect(try await h.raised(alert) == 4)
            let received = try await eventually("four deliveries") {
                let received = await h.receiver.received
                return received.count == 4 ? received : nil
            }
            let byPath = Dictionary(uniqueKeysWithValues: received.map { ($0.path, $0) })

            // Slack: text plus Block Kit blocks within Slack's limits, the most severe finding first, the rest counted.
            let slackPost = try #require(byPath["/hook/slack"])
            #expect(slackPost.signature == nil)
            #expect(slackPost.contentType == "application/json")
            let slackMessage = try slackPost.json()
            #expect((slackMessage["text"] as? String)?.hasPrefix("Image unhealthy: registry.example.com/library/alpine@sha256:abab") == true)
            let blocks = try #require(slackMessage["blocks"] as? [[String: Any]])
            #expect(blocks.first?["type"] as? String == "header")
            let findingsText = try #require(blocks.compactMap { ($0["text"] as? [String: Any])?["text"] as? String }
                .first { $0.contains("CVE-2024-") })
            #expect(findingsText.hasPrefix("• CVE-2024-2007 [Critical] lib&lt;7&gt;&amp;co"))
            #expect(findingsText.hasSuffix("…and 25 more"))
            #expect(findingsText.components(separatedBy: "\n").count == ChannelPayloadsLimits.chat + 1)
            if PythonPeers.python(importing: ["slack_sdk.models.blocks"]) != nil {
                let checked = try PythonPeers.run(PythonPeers.validateSlack, input: slackMessage) as? [String: Any]
                #expect(checked?["types"] as? [String] == ["header", "section", "section", "section", "context"])
                #expect(checked?["roundTrip"] as? Bool == true)
            }

            // Teams: a message with one Adaptive Card 1.4.
            let teamsMessage = try #require(try byPath["/hook/teams"]?.json())
            #expect(teamsMessage["type"] as? String == "message")
            let attachment = try #require((teamsMessage["attachments"] as? [[String: Any]])?.first)
            #expect(attachment["contentType"] as? String == "application/vnd.microsoft.card.adaptive")
            let card = try #require(attachment["content"] as? [String: Any])
            #expect(card["type"] as? String == "AdaptiveCard")
            #expect(card["version"] as? String == "1.4")
            #expect(card["$schema"] as? String == "http://adaptivecards.io/schemas/adaptive-card.json")
            let body = try #require(card["body"] as? [[String: Any]])
            #expect(body.allSatisfy { ["TextBlock", "FactSet"].contains($0["type"] as? String ?? "") })
            let facts = try #require(body.first { $0["type"] as? String == "FactSet" }?["facts"] as? [[String: String]])
            #expect(facts.contains { $0["title"] == "Findings" && $0["value"] == "45 findings: 1 Critical, 22 High, 22 Medium" })
            #expect(facts.contains { $0["title"] == "Digest" && $0["value"] == Harness.digest })
            #expect(try #require(byPath["/hook/teams"]).body.count < 28_000)

            // CloudEvents 1.0, structured mode, parsed by the CloudEvents SDK; signed when the channel has a secret.
            for path in ["/hook/events", "/hook/plain-events"] {
                let post = try #require(byPath[path])
                #expect(post.contentType == "application/cloudevents+json; charset=utf-8")
                let event = try post.json()
                #expect(event["specversion"] as? String == "1.0")
                #expect(event["id"] as? String == "alert:payloads")
                #expect(event["type"] as? String == "gantry.alert.imageUnhealthy")
                #expect(event["source"] as? String == "/gantry/tenants/\(h.tenantID)/subscriptions/\(h.subscriptionID)")
                #expect(event["subject"] as? String == "registry.example.com/library/alpine@\(Harness.digest)")
                #expect(((event["data"] as? [String: Any])?["findings"] as? [Any])?.count == 45)
                if PythonPeers.python(importing: ["cloudevents.core.bindings.http"]) != nil {
                    let parsed = try PythonPeers.run(PythonPeers.parseCloudEvent, input: [
                        "headers": ["content-type": post.contentType ?? ""],
                        "bodyHex": post.body.map { String(format: "%02x", $0) }.joined()]) as? [String: Any]
                    #expect(parsed?["specversion"] as? String == "1.0")
                    #expect(parsed?["id"] as? String == "alert:payloads")
                    #expect(parsed?["datacontenttype"] as? String == "application/json")
                    #expect(((parsed?["data"] as? [String: Any])?["imageDigest"]) as? String == Harness.digest)
                }
            }
            let signed = try #require(byPath["/hook/events"])
            #expect(WebhookSignature.verify(signature: signed.signature ?? "", timestamp: signed.timestamp ?? "", body: signed.body,
                                            secret: Harness.secret) == .valid)
            #expect(byPath["/hook/plain-events"]?.signature == nil)
        }
    }
}

/// The chat message's finding-line limit, as the tests expect it (20 lines and a count of the rest).
enum ChannelPayloadsLimits {
    static let chat = 20
}
