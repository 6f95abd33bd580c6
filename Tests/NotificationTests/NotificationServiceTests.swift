import Foundation
import GantryRuntime
import GantryTesting
import HTTPTypes
import NIOHTTP1
import Notification
import Testing

/// Webhook channels end to end: the service on a real PostgreSQL, delivering to a real receiver over HTTP.
@Suite struct NotificationServiceTests {
    @Test func webhookURLsAreChecked() async throws {
        try await Harness.run { h in
            let created = try await h.createWebhook(url: h.hookURL)
            #expect(created.status == 201)
            let webhook = try created.object()
            #expect(webhook["url"] as? String == h.hookURL)
            #expect(webhook["secret"] == nil)

            for url in ["http://10.0.0.5/hook", "http://192.168.1.1:8080/hook", "http://169.254.169.254/latest",
                        "https://[fd00::1]/hook", "http://167772161/hook", "http://10.1:8080/hook",
                        "http://[::ffff:10.0.0.1]/hook", "ftp://hooks.example.com/x", "not a url", "/relative/hook",
                        "http://user:pass@hooks.example.com/x"] {
                try expectProblem(try await h.createWebhook(url: url), status: 400)
                for type in ["slack", "teams", "cloudevents"] {
                    try expectProblem(try await h.createChannel(["type": type, "name": type, "url": url]), status: 400)
                }
            }
            let privateRefusal = try await h.createWebhook(url: "http://10.0.0.5/hook")
            #expect(privateRefusal.text.contains("private"))
            try expectProblem(try await h.createWebhook(url: h.hookURL, secret: "short"), status: 400)

            let list = try await TestHTTP.send(.GET, "\(h.subscription)/webhooks")
            let items = try #require(try list.object()["items"] as? [[String: Any]])
            #expect(items.count == 1)
            #expect(items.first?["url"] as? String == h.hookURL)
            #expect(!list.text.contains(Harness.secret))
            // The webhook is a channel of type webhook, signed, its secret never shown.
            let channels = try await TestHTTP.send(.GET, "\(h.subscription)/channels")
            let channel = try #require((try channels.object()["items"] as? [[String: Any]])?.first)
            #expect(channel["type"] as? String == "webhook")
            #expect(channel["signed"] as? Bool == true)
            #expect(!channels.text.contains(Harness.secret))
            #expect(try await h.count("SELECT count(*)::int FROM notification.channels") == 1)
        }
    }

    @Test func productionRequiresHTTPSAndRefusesLoopback() async throws {
        try await Harness.run(environment: ["GANTRY_PROFILE": "production"]) { h in
            let plain = try await h.createWebhook(url: "http://hooks.example.com/gantry")
            #expect(try expectProblem(plain, status: 400).contains("https"))
            try expectProblem(try await h.createWebhook(url: "https://127.0.0.1:9/hook"), status: 400)
            try expectProblem(try await h.createWebhook(url: "https://localhost/hook"), status: 400)
            #expect(try await h.createWebhook(url: "https://hooks.example.com/gantry").status == 201)
        }
    }

    @Test("a delivery is signed over timestamp and body; a receiver in Python verifies it; replays are refused")
    func alertIsDeliveredSignedOnce() async throws {
        try await Harness.run { h in
            #expect(try await h.createWebhook(url: h.hookURL).status == 201)
            let alert = h.alert(messageID: "alert:once")
            #expect(try await h.raised(alert) == 1)

            let delivery = try await eventually("the delivery is logged as delivered") {
                try await h.deliveries().first { $0["status"] as? String == "delivered" }
            }
            let received = await h.receiver.received
            #expect(received.count == 1)
            let post = try #require(received.first)
            let signature = try #require(post.signature)
            let timestamp = try #require(post.timestamp)
            #expect(abs(Double(timestamp)! - Date().timeIntervalSince1970) < 30)
            #expect(WebhookSignature.verify(signature: signature, timestamp: timestamp, body: post.body,
                                            secret: Harness.secret) == .valid)
            // Altered body, wrong secret, a moved timestamp, a replay after the window: all refused.
            #expect(WebhookSignature.verify(signature: signature, timestamp: timestamp, body: post.body + Data(" ".utf8),
                                            secret: Harness.secret) == .badSignature)
            #expect(WebhookSignature.verify(signature: signature, timestamp: timestamp, body: post.body,
                                            secret: Harness.secret + "x") == .badSignature)
            #expect(WebhookSignature.verify(signature: signature, timestamp: String(Int(timestamp)! + 1), body: post.body,
                                            secret: Harness.secret) == .badSignature)
            #expect(WebhookSignature.verify(signature: signature, timestamp: timestamp, body: post.body, secret: Harness.secret,
                                            now: Date().addingTimeInterval(WebhookSignature.replayWindow + 60)) == .outsideReplayWindow)
            if PythonPeers.python(importing: ["hmac"]) != nil {
                let verdict = try PythonPeers.run(PythonPeers.verifySignature, input: [
                    "bodyHex": post.body.map { String(format: "%02x", $0) }.joined(), "timestamp": timestamp,
                    "signature": signature, "secret": Harness.secret]) as? [String: Any]
                #expect(verdict?["valid"] as? Bool == true)
                let forged = try PythonPeers.run(PythonPeers.verifySignature, input: [
                    "bodyHex": (post.body + Data("x".utf8)).map { String(format: "%02x", $0) }.joined(), "timestamp": timestamp,
                    "signature": signature, "secret": Harness.secret]) as? [String: Any]
                #expect(forged?["valid"] as? Bool == false)
            }
            #expect(post.event == "imageUnhealthy")
            #expect(post.deliveryID == delivery["id"] as? String)
            #expect(post.contentType == "application/json")
            // The body is the alert, field for field.
            let body = try #require(try JSONSerialization.jsonObject(with: post.body) as? NSDictionary)
            #expect(body == alert as NSDictionary)

            #expect(delivery["alertId"] as? String == "alert:once")
            #expect(delivery["channelType"] as? String == "webhook")
            #expect(delivery["attempts"] as? Int == 1)
            #expect(delivery["lastStatusCode"] as? Int == 204)
            #expect(delivery["lastError"] == nil)
            #expect(delivery["deliveredAt"] != nil)
            #expect(delivery["url"] as? String == h.hookURL)

            // The same alert again (a redelivery from the outbox): no second delivery.
            #expect(try await h.raised(alert) == 0)
            try await Task.sleep(for: .milliseconds(500))
            #expect(try await h.deliveries().count == 1)
            #expect(await h.receiver.received.count == 1)
        }
    }

    @Test("racing copies of one alert, and racing unchanged rescans of one image, make one delivery")
    func racingAlertsDeliverOnce() async throws {
        try await Harness.run { h in
            #expect(try await h.createWebhook(url: h.hookURL).status == 201)
            let copy = try JSONSerialization.data(withJSONObject: h.alert(messageID: "alert:raced"))
            let rescans = try (0..<10).map { try JSONSerialization.data(withJSONObject: h.alert(messageID: "alert:rescan-\($0)")) }
            let queued = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<10 { group.addTask { try await h.raised(json: copy) } }
                for rescan in rescans { group.addTask { try await h.raised(json: rescan) } }
                return try await group.reduce(0, +)
            }
            #expect(queued == 1)
            _ = try await eventually("the delivery") { await h.receiver.received.first }
            try await Task.sleep(for: .milliseconds(500))
            #expect(await h.receiver.received.count == 1)
            #expect(try await h.count("SELECT count(*)::int FROM notification.deliveries") == 1)
            #expect(try await h.count("SELECT count(*)::int FROM notification.alerts WHERE outcome = 'suppressed'") == 10)
        }
    }

    @Test func failingReceiverIsRetriedUntilDelivered() async throws {
        try await Harness.run(environment: Harness.fastRetries, receiverMode: .answer(.internalServerError)) { h in
            #expect(try await h.createWebhook(url: h.hookURL).status == 201)
            #expect(try await h.raised(h.alert(messageID: "alert:retry")) == 1)

            let failed = try await eventually("two failed attempts are logged") {
                try await h.deliveries().first { ($0["attempts"] as? Int ?? 0) >= 2 }
            }
            #expect(failed["status"] as? String == "pending")
            #expect(failed["lastStatusCode"] as? Int == 500)
            #expect((failed["lastError"] as? String)?.contains("HTTP 500") == true)
            #expect(failed["deliveredAt"] == nil)

            await h.receiver.set(.answer(.ok))
            let delivered = try await eventually("the retry is delivered") {
                try await h.deliveries().first { $0["status"] as? String == "delivered" }
            }
            #expect(delivered["lastStatusCode"] as? Int == 200)
            #expect(delivered["lastError"] == nil)
            try await Task.sleep(for: .milliseconds(600))
            let received = await h.receiver.received
            #expect(received.filter { $0.answered == 200 }.count == 1)
            #expect(received.last?.answered == 200)
            // Every retry carries the same delivery ID and a fresh, valid signature.
            #expect(Set(received.compactMap(\.deliveryID)) == [delivered["id"] as? String])
            for post in received {
                #expect(WebhookSignature.verify(signature: post.signature ?? "", timestamp: post.timestamp ?? "", body: post.body,
                                                secret: Harness.secret) == .valid)
            }
            // The log lists every attempt with its outcome; backoff spaced them out.
            let detail = try await h.delivery(try #require(delivered["id"] as? String))
            let attempts = try #require(detail["attempts"] as? [[String: Any]])
            #expect(attempts.count == received.count)
            #expect(attempts.map { $0["attempt"] as? Int } == Array(1...attempts.count).map { Optional($0) })
            #expect(attempts.last?["outcome"] as? String == "delivered")
            #expect(attempts.dropLast().allSatisfy { $0["outcome"] as? String == "failed" && $0["statusCode"] as? Int == 500 })
            let times = received.map(\.at)
            #expect(zip(times, times.dropFirst()).allSatisfy { $1.timeIntervalSince($0) >= 0.07 })
        }
    }

    @Test func redirectsAreNotFollowed() async throws {
        try await Harness.run { h in
            #expect(try await h.createWebhook(url: "http://127.0.0.1:\(h.receiverPort)/redirect").status == 201)
            #expect(try await h.raised(h.alert()) == 1)
            let failed = try await eventually("a failed attempt is logged") {
                try await h.deliveries().first { ($0["attempts"] as? Int ?? 0) >= 1 }
            }
            #expect(failed["status"] as? String == "pending")
            #expect(failed["lastStatusCode"] as? Int == 307)
            #expect(await h.receiver.received.isEmpty)
        }
    }

    @Test func unreachableReceiverIsLoggedWithoutStatusCode() async throws {
        try await Harness.run { h in
            let closedPort = try FreePort.next()
            #expect(try await h.createWebhook(url: "http://127.0.0.1:\(closedPort)/hook").status == 201)
            #expect(try await h.raised(h.alert()) == 1)
            let failed = try await eventually("a failed attempt is logged") {
                try await h.deliveries().first { ($0["attempts"] as? Int ?? 0) >= 1 }
            }
            #expect(failed["status"] as? String == "pending")
            #expect(failed["lastStatusCode"] == nil)
            #expect((failed["lastError"] as? String)?.isEmpty == false)
            #expect(failed["nextAttemptAt"] != nil)
        }
    }

    @Test func alertsNeedAServiceTokenAndAreScopedToTheirSubscription() async throws {
        try await Harness.run { h in
            #expect(try await h.createWebhook(url: h.hookURL).status == 201)
            let anonymous = try await TestHTTP.json(.POST, "\(h.base)/internal/v1/alerts", h.alert())
            try expectProblem(anonymous, status: 401)

            // An alert for another subscription reaches none of this subscription's webhooks.
            var elsewhere = h.alert()
            elsewhere["subscriptionId"] = UUID().uuidString.lowercased()
            #expect(try await h.raised(elsewhere) == 0)
            try await Task.sleep(for: .milliseconds(400))
            #expect(try await h.deliveries().isEmpty)
            #expect(await h.receiver.received.isEmpty)
        }
    }

    @Test("bad alerts are 400 problems naming the field, and nothing is stored")
    func badAlertsAreRefused() async throws {
        try await Harness.run { h in
            #expect(try await h.createWebhook(url: h.hookURL).status == 201)
            func refused(_ alert: [String: Any], _ expected: String, sourceLocation: SourceLocation = #_sourceLocation) async throws {
                let detail = try expectProblem(try await h.raise(alert), status: 400, sourceLocation: sourceLocation)
                #expect(detail.contains(expected), "\(detail)", sourceLocation: sourceLocation)
            }
            var alert = h.alert()
            alert["tenantId"] = "tenant-1"
            try await refused(alert, "tenantId")
            alert = h.alert()
            alert.removeValue(forKey: "summary")
            try await refused(alert, "summary")
            alert = h.alert()
            alert.removeValue(forKey: "subscriptionId")
            try await refused(alert, "subscriptionId")
            try await refused(h.alert(digest: "sha256:nothex"), "imageDigest")
            alert = h.alert()
            alert["repositoryName"] = "Upper/Case"
            try await refused(alert, "repositoryName")
            alert = h.alert()
            alert.removeValue(forKey: "registryHost")
            try await refused(alert, "registryHost")
            try await refused(h.alert(findings: [Harness.finding("CVE-1", severity: "Severe")]), "findings[0].severity")
            try await refused(h.alert("newFindings", findings: []), "at least one finding")
            try await refused(h.alert("kindOfBad"), "kind")
            try await refused(h.alert("feedsStale", extra: ["since": "2024-01-01T00:00:00Z"]), "feed")
            try await refused(h.alert("feedsStale", extra: ["feed": "alpine-secdb"]), "since")
            try await refused(h.alert("registryUnreachable"), "since")
            alert = h.alert()
            alert["messageId"] = "   "
            try await refused(alert, "messageId")
            let malformed = try await TestHTTP.send(.POST, "\(h.base)/internal/v1/alerts", body: Data("{\"messageId\":".utf8),
                headers: ["Content-Type": "application/json",
                          "Authorization": "Bearer \(try await h.env.tokens(issuer: "findings-policy").token(for: "notification"))"])
            try expectProblem(malformed, status: 400)

            #expect(try await h.count("SELECT count(*)::int FROM notification.alerts") == 0)
            #expect(try await h.count("SELECT count(*)::int FROM notification.inbox") == 0)
            #expect(try await h.count("SELECT count(*)::int FROM notification.image_states") == 0)
            #expect(try await h.deliveries().isEmpty)
            // A refused message can be sent again, corrected: its ID was not used up.
            alert = h.alert(messageID: "alert:corrected")
            #expect(try await h.raised(alert) == 1)

            try expectProblem(try await TestHTTP.send(.GET, "\(h.subscription)/deliveries?limit=0"), status: 400)
            try expectProblem(try await TestHTTP.send(.GET, "\(h.subscription)/deliveries?status=lost"), status: 400)
            try expectProblem(try await TestHTTP.send(.GET, "\(h.subscription)/deliveries?channelId=x"), status: 400)
            try expectProblem(try await TestHTTP.send(.GET, "\(h.base)/v1/tenants/x/subscriptions/\(h.subscriptionID)/deliveries"),
                              status: 400)
        }
    }

    @Test func signatureFormat() {
        let signature = WebhookSignature.sign(timestamp: 1_700_000_000, body: Data("{}".utf8), secret: "key")
        let now = Date(timeIntervalSince1970: 1_700_000_100)
        #expect(signature.hasPrefix("sha256="))
        #expect(signature.count == 7 + 64)
        #expect(WebhookSignature.verify(signature: signature, timestamp: "1700000000", body: Data("{}".utf8), secret: "key",
                                        now: now) == .valid)
        // Known answer, computed with Python's hmac: HMAC-SHA256(key "key", "1700000000.{}").
        #expect(signature == "sha256=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae")
        for (candidate, timestamp, verdict) in [
            ("sha256=zz", "1700000000", WebhookSignature.Verdict.badSignature),
            (signature.uppercased(), "1700000000", .badSignature),
            (String(signature.dropFirst(7)), "1700000000", .badSignature),
            (signature, "", .malformedTimestamp),
            (signature, "17e8", .malformedTimestamp),
            (signature, "-1700000000", .malformedTimestamp),
            (signature, "1699999000", .outsideReplayWindow),
        ] {
            #expect(WebhookSignature.verify(signature: candidate, timestamp: timestamp, body: Data("{}".utf8), secret: "key",
                                            now: now) == verdict, "\(candidate) \(timestamp)")
        }
    }
}
