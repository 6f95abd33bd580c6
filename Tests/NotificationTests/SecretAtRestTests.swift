import Foundation
import GantryRuntime
import GantryTesting
import NIOHTTP1
import Notification
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
}
