import Foundation
import GantryRuntime
import GantryTesting
import HTTPTypes
import NIOHTTP1
import Notification
import Testing

/// E-mail channels against a real SMTP server (aiosmtpd, started by the test) through curl's SMTP client.
@Suite struct EmailDeliveryTests {
    static func smtpEnvironment(_ server: SMTPTestServer, startTLS: String = "opportunistic") -> [String: String] {
        var environment = Harness.fastRetries
        environment["GANTRY_SMTP_URL"] = server.url
        environment["GANTRY_SMTP_FROM"] = "gantry@alerts.example.com"
        environment["GANTRY_SMTP_STARTTLS"] = startTLS
        if let caFile = server.caFile { environment["GANTRY_SMTP_CA_FILE"] = caFile }
        return environment
    }

    @Test("e-mail goes over STARTTLS, one message per recipient; a rejected recipient is dead at once, other channels unaffected")
    func emailWithStartTLSAndARejectedRecipient() async throws {
        guard PythonPeers.python(importing: ["aiosmtpd"]) != nil else { return }
        let server = try await SMTPTestServer(startTLS: true)
        defer { server.stop() }
        try await Harness.run(environment: Self.smtpEnvironment(server)) { h in
            let mail = try await h.channel("email", name: "on-call",
                                           recipients: ["oncall@example.com", "reject-me@example.com", "tempfail@example.com"])
            let hook = try await h.channel("webhook", url: h.hookURL, secret: Harness.secret)
            #expect(try await h.rule("imageUnhealthy", channels: [mail, hook]).status == 201)
            let findings = [Harness.finding("CVE-2019-14697"), Harness.finding("CVE-2024-0001", "zlib", severity: "High")]
            #expect(try await h.raised(h.alert(messageID: "alert:mail", findings: findings)) == 4)

            let message = try await eventually("the e-mail arrives") { try server.messages().first }
            #expect(message.tls)
            #expect(message.mailFrom == "gantry@alerts.example.com")
            #expect(message.recipients == ["oncall@example.com"])
            #expect(message.subject == "[Gantry] Image unhealthy: registry.example.com/library/alpine@sha256:abababababab (2 findings: 1 Critical, 1 High)")
            #expect(message.text.contains("CVE-2019-14697 [Critical] musl 1.1.18-r3, fixed in 1.1.18-r4"))
            #expect(message.text.contains("Digest: \(Harness.digest)"))
            #expect(message.headers["x-gantry-event"] == "imageUnhealthy")
            #expect(message.headers["to"] == "oncall@example.com")
            #expect(message.headers["content-type"] == "text/plain; charset=\"utf-8\"")

            let rejected = try await eventually("the rejected recipient is dead") {
                try await h.deliveries().first { $0["url"] as? String == "mailto:reject-me@example.com" && $0["status"] as? String == "dead" }
            }
            #expect(rejected["attempts"] as? Int == 1)
            #expect(rejected["lastStatusCode"] as? Int == 550)
            #expect((rejected["lastError"] as? String)?.contains("550 5.1.1 <reject-me@example.com>: Recipient address rejected") == true)
            let detail = try await h.delivery(try #require(rejected["id"] as? String))
            #expect((detail["attempts"] as? [[String: Any]])?.map { $0["outcome"] as? String } == ["rejected"])

            // A temporary refusal (451) is retried.
            let temporary = try await eventually("the temporary failure is retried") {
                try await h.deliveries().first { $0["url"] as? String == "mailto:tempfail@example.com" && ($0["attempts"] as? Int ?? 0) >= 2 }
            }
            #expect(temporary["status"] as? String == "pending")
            #expect(temporary["lastStatusCode"] as? Int == 451)

            let delivered = try await h.deliveries(query: "?status=delivered")
            #expect(Set(delivered.compactMap { $0["channelType"] as? String }) == ["email", "webhook"])
            #expect(delivered.count == 2)
            #expect(await h.receiver.received.count == 1)
            #expect(try server.messages().count == 1)
        }
    }

    @Test("without STARTTLS on offer, opportunistic mode delivers in the clear and required mode refuses, saying why")
    func startTLSModes() async throws {
        guard PythonPeers.python(importing: ["aiosmtpd"]) != nil else { return }
        let server = try await SMTPTestServer(startTLS: false)
        defer { server.stop() }
        try await Harness.run(environment: Self.smtpEnvironment(server)) { h in
            let mail = try await h.channel("email", recipients: ["ops@example.com"])
            #expect(try await h.rule("scansFailing", channels: [mail], minConsecutiveFailures: 1).status == 201)
            #expect(try await h.raised(h.alert("scansFailing", messageID: "alert:plain", findings: [],
                                               extra: ["consecutiveFailures": 1, "summary": "Scans of the image fail — ünïcode"])) == 1)
            let message = try await eventually("the e-mail arrives") { try server.messages().first }
            #expect(!message.tls)
            #expect(message.subject == "[Gantry] Scans failing: registry.example.com/library/alpine@sha256:abababababab")
            #expect(message.text.hasPrefix("Scans of the image fail — ünïcode\n"))
        }
        try await Harness.run(environment: Self.smtpEnvironment(server, startTLS: "required")) { h in
            _ = try await h.channel("email", recipients: ["ops@example.com"])
            #expect(try await h.raised(h.alert(messageID: "alert:required")) == 1)
            let failed = try await eventually("the attempt fails") {
                try await h.deliveries().first { ($0["attempts"] as? Int ?? 0) >= 1 }
            }
            #expect(failed["status"] as? String == "pending")
            #expect((failed["lastError"] as? String)?.contains("curl: (64)") == true, "\(failed["lastError"] ?? "")")
        }
        #expect(try server.messages().count == 1)
    }

    @Test func smtpSettingsAreChecked() async throws {
        // Settings are read before the database is touched; one database serves every case.
        let database = try await TestDatabase.create()
        for (environment, variable) in [
            (["GANTRY_SMTP_URL": "http://mail.example.com"], "GANTRY_SMTP_URL"),
            (["GANTRY_SMTP_URL": "smtp://user:pw@mail.example.com"], "GANTRY_SMTP_URL"),
            (["GANTRY_SMTP_URL": "smtp://mail.example.com"], "GANTRY_SMTP_FROM"),
            (["GANTRY_SMTP_URL": "smtp://mail.example.com", "GANTRY_SMTP_FROM": "not an address"], "GANTRY_SMTP_FROM"),
            (["GANTRY_SMTP_URL": "smtp://mail.example.com", "GANTRY_SMTP_FROM": "a@example.com", "GANTRY_SMTP_STARTTLS": "never"],
             "GANTRY_SMTP_STARTTLS"),
            (["GANTRY_NOTIFICATION_RETRY_WINDOW_SECONDS": "0"], "GANTRY_NOTIFICATION_RETRY_WINDOW_SECONDS"),
            (["GANTRY_NOTIFICATION_TIMEOUT_MS": "soon"], "GANTRY_NOTIFICATION_TIMEOUT_MS"),
        ] {
            do {
                let env = try TestEnvironment(database: database, extra: environment)
                _ = try await buildNotificationApplication(configuration: env.configuration(.notification))
                Issue.record("accepted \(environment)")
            } catch {
                #expect("\(error)".contains(variable), "\(error)")
            }
        }
        await database.drop()
    }
}
