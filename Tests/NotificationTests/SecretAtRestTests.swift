import Foundation
import GantryRuntime
import GantryTesting
import NIOHTTP1
@testable import Notification
import Testing

/// Channel signing secrets at rest: sealed with AES-GCM under `GANTRY_SECRET_KEY` (never stored in clear),
/// opened only to sign, and bound to their own channel row.
@Suite struct SecretAtRestTests {
    @Test("a channel's secret is stored sealed, deliveries are still signed with it, and a sealed value moved to another row does not open")
    func sealedSecrets() async throws {
        try await Harness.run { h in
            let first = try await h.channel("webhook", name: "first", url: "\(h.hookURL)/first", secret: Harness.secret)
            let second = try await h.channel("webhook", name: "second", url: "\(h.hookURL)/second", secret: "another-secret-0123456789")
            #expect(try await h.count("SELECT count(*)::int FROM notification.channels WHERE secret LIKE 'sealed:v1:%'") == 2)
            #expect(try await h.count("SELECT count(*)::int FROM notification.channels WHERE secret LIKE '%secret-0123456789%'") == 0)
            let listed = try await TestHTTP.send(.GET, "\(h.subscription)/channels")
            #expect(!listed.text.contains("secret-0123456789") && !listed.text.contains("sealed:v1:"))

            // The first channel's sealed secret copied onto the second: it must not open there.
            try await h.execute("""
                UPDATE notification.channels SET secret = (SELECT secret FROM notification.channels WHERE id = '\(first)')
                WHERE id = '\(second)'
                """)
            #expect(try await h.raised(h.alert(messageID: "alert:sealed")) == 2)
            let signed = try await eventually("the first channel's delivery") {
                await h.receiver.received.first { $0.path == "/hook/first" }
            }
            #expect(WebhookSignature.verify(signature: signed.signature ?? "", timestamp: signed.timestamp ?? "", body: signed.body,
                                            secret: Harness.secret) == .valid)
            let refused = try await eventually("the second channel's delivery to fail") {
                try await h.deliveries().first { $0["channelId"] as? String == second && $0["lastError"] != nil }
            }
            #expect((refused["lastError"] as? String)?.contains("cannot be opened") == true, "\(refused)")
            #expect(await h.receiver.received.contains { $0.path == "/hook/second" } == false)
        }
    }

    @Test("Slack and Teams URLs are sealed at rest and masked in every answer; deliveries still go to the full URL")
    func chatWebhookURLsSealed() async throws {
        try await Harness.run { h in
            let slackURL = "\(h.hookURL)/slack-T0001-B0002-SlackToken0123"
            let teamsURL = "\(h.hookURL)/teams-workflow0456?api-version=2016-06-01&sig=TeamsSignature0789"
            let masked = "http://127.0.0.1:\(h.receiverPort)/hook/****"
            let slack = try await h.createChannel(["type": "slack", "name": "chat", "url": slackURL])
            #expect(slack.status == 201, "\(slack.text)")
            #expect(try slack.object()["url"] as? String == masked)
            #expect(try slack.object()["signed"] as? Bool == false)
            let teams = try await h.createChannel(["type": "teams", "name": "cards", "url": teamsURL])
            #expect(try teams.object()["url"] as? String == masked)
            for needle in ["SlackToken0123", "workflow0456", "TeamsSignature0789"] {
                #expect(try await h.count("SELECT count(*)::int FROM notification.channels WHERE url LIKE '%\(needle)%' OR secret LIKE '%\(needle)%'") == 0)
            }
            #expect(try await h.count("SELECT count(*)::int FROM notification.channels WHERE type IN ('slack', 'teams') AND secret LIKE 'sealed:v1:%'") == 2)

            #expect(try await h.raised(h.alert(messageID: "alert:chat")) == 2)
            let received = try await eventually("both chat deliveries") {
                let received = await h.receiver.received
                return received.count == 2 ? received : nil
            }
            #expect(Set(received.map(\.path)) == ["/hook/slack-T0001-B0002-SlackToken0123", "/hook/teams-workflow0456"])
            #expect(received.allSatisfy { $0.signature == nil })
            for needle in ["SlackToken0123", "workflow0456", "TeamsSignature0789"] {
                #expect(try await h.count("SELECT count(*)::int FROM notification.deliveries WHERE target LIKE '%\(needle)%'") == 0)
            }
            let log = try await h.deliveries()
            #expect(log.count == 2 && log.allSatisfy { $0["url"] as? String == masked }, "\(log)")
            let listed = try await TestHTTP.send(.GET, "\(h.subscription)/channels")
            #expect(!listed.text.contains("SlackToken0123") && !listed.text.contains("TeamsSignature0789") && !listed.text.contains("sealed:"))
        }
    }

    @Test("the masked form keeps scheme, host, port and a leading path segment only")
    func maskedURLForm() {
        #expect(Channel.maskedURL("https://hooks.slack.com/services/T0/B0/xyz") == "https://hooks.slack.com/services/****")
        #expect(Channel.maskedURL("https://example.webhook.office.com/webhookb2/a@b/IncomingWebhook/c/d")
                    == "https://example.webhook.office.com/webhookb2/****")
        #expect(Channel.maskedURL("https://prod.logic.azure.com:443/workflows/abc?sig=secret") == "https://prod.logic.azure.com:443/workflows/****")
        #expect(Channel.maskedURL("https://hooks.example.com/onlysecret") == "https://hooks.example.com/****")
        #expect(Channel.maskedURL("https://hooks.example.com?token=secret") == "https://hooks.example.com/****")
    }
}
