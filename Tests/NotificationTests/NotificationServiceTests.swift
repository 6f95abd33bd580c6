import Foundation
import GantryRuntime
import GantryTesting
import HTTPTypes
import Hummingbird
import Logging
import NIOHTTP1
import Notification
import PostgresNIO
import ServiceLifecycle
import Testing

/// A real webhook receiver: records every POST with its exact body and headers, answering `status`.
actor WebhookReceiver {
    struct Received: Sendable {
        var body: Data
        var signature: String?
        var event: String?
        var deliveryID: String?
        var answered: Int
    }

    var status: HTTPResponse.Status
    private(set) var received: [Received] = []

    init(status: HTTPResponse.Status = .noContent) { self.status = status }

    func answer(with status: HTTPResponse.Status) { self.status = status }

    func record(_ body: Data, _ headers: HTTPFields) -> HTTPResponse.Status {
        received.append(Received(body: body, signature: headers[HTTPField.Name(WebhookSignature.header)!],
                                 event: headers[HTTPField.Name("X-Gantry-Event")!],
                                 deliveryID: headers[HTTPField.Name("X-Gantry-Delivery")!], answered: status.code))
        return status
    }

    nonisolated func application(port: Int) -> some ApplicationProtocol {
        let router = Router()
        router.get("/readyz") { _, _ in HTTPResponse.Status.ok }
        // Bounces the delivery elsewhere; the worker must not follow (the target was never checked).
        router.post("/redirect") { _, _ -> Response in
            Response(status: .temporaryRedirect, headers: [.location: "/hook"])
        }
        router.post("/hook") { request, _ -> HTTPResponse.Status in
            let body = Data(try await request.body.collect(upTo: 1 << 20).readableBytesView)
            return await self.record(body, request.headers)
        }
        return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)))
    }
}

/// The notification service in-process on a real PostgreSQL, delivering to a real receiver over HTTP.
@Suite struct NotificationServiceTests {
    static let logger = Logger(label: "notification-test")
    static let secret = "webhook-secret-0123456789"

    struct Harness: Sendable {
        let env: TestEnvironment
        let receiver: WebhookReceiver
        let receiverPort: Int
        let tenantID = UUID().uuidString.lowercased()
        let subscriptionID = UUID().uuidString.lowercased()

        var base: String { env.url(.notification).absoluteString }
        var subscription: String { "\(base)/v1/tenants/\(tenantID)/subscriptions/\(subscriptionID)" }
        var hookURL: String { "http://127.0.0.1:\(receiverPort)/hook" }

        func createWebhook(url: String, secret: String = NotificationServiceTests.secret) async throws -> TestHTTP.Reply {
            try await TestHTTP.json(.POST, "\(subscription)/webhooks", ["url": url, "secret": secret])
        }

        func alert(messageID: String = "alert:\(UUID().uuidString.lowercased())", subscriptionID: String? = nil) -> [String: Any] {
            [
                "messageId": messageID, "tenantId": tenantID, "subscriptionId": subscriptionID ?? self.subscriptionID,
                "kind": "imageUnhealthy", "imageDigest": "sha256:" + String(repeating: "ab", count: 32),
                "repositoryName": "library/alpine", "registryHost": "registry.example.com",
                "summary": "1 vulnerability findings (1 patchable) should be resolved",
                "findings": [["vulnerabilityId": "CVE-2019-14697", "packageName": "musl", "installedVersion": "1.1.18-r3",
                              "fixedVersion": "1.1.18-r4", "severity": "Critical"]],
            ]
        }

        func raise(_ alert: [String: Any]) async throws -> TestHTTP.Reply {
            let token = try await env.tokens(issuer: "findings-policy").token(for: "notification")
            return try await TestHTTP.json(.POST, "\(base)/internal/v1/alerts", alert, headers: [
                "Content-Type": "application/json", "Authorization": "Bearer \(token)"])
        }

        func deliveries() async throws -> [[String: Any]] {
            let reply = try await TestHTTP.send(.GET, "\(subscription)/deliveries")
            return ((try reply.json() as? [String: Any])?["items"] as? [[String: Any]]) ?? []
        }

        func execute(_ sql: String) async throws {
            try await env.database.withClient { client in
                try await client.query(PostgresQuery(unsafeSQL: sql), logger: NotificationServiceTests.logger)
            }
        }
    }

    static func withService(environment extra: [String: String] = [:], receiverStatus: HTTPResponse.Status = .noContent,
                            _ body: @Sendable (Harness) async throws -> Void) async throws {
        let database = try await TestDatabase.create()
        do {
            let env = try TestEnvironment(database: database, extra: extra)
            let app = try await buildNotificationApplication(configuration: env.configuration(.notification))
            let receiver = WebhookReceiver(status: receiverStatus)
            let receiverPort = try FreePort.next()
            let services: [any Service] = [app, receiver.application(port: receiverPort)]
            try await withRunningServices(services, readyPorts: [env.ports[.notification]!, receiverPort]) {
                try await body(Harness(env: env, receiver: receiver, receiverPort: receiverPort))
            }
            await database.drop()
        } catch {
            await database.drop()
            throw error
        }
    }

    @Test func webhookURLsAreChecked() async throws {
        try await Self.withService { h in
            let created = try await h.createWebhook(url: h.hookURL)
            #expect(created.status == 201)
            let webhook = try #require(try created.json() as? [String: Any])
            #expect(webhook["url"] as? String == h.hookURL)
            #expect(webhook["secret"] == nil)

            for url in ["http://10.0.0.5/hook", "http://192.168.1.1:8080/hook", "http://169.254.169.254/latest",
                        "https://[fd00::1]/hook", "http://167772161/hook", "http://10.1:8080/hook",
                        "http://[::ffff:10.0.0.1]/hook", "ftp://hooks.example.com/x", "not a url", "/relative/hook"] {
                let refused = try await h.createWebhook(url: url)
                #expect(refused.status == 400, "\(url): \(refused.text)")
                #expect(refused.header("Content-Type") == "application/problem+json", "\(url)")
            }
            let privateRefusal = try await h.createWebhook(url: "http://10.0.0.5/hook")
            #expect(privateRefusal.text.contains("private"))
            let shortSecret = try await h.createWebhook(url: h.hookURL, secret: "short")
            #expect(shortSecret.status == 400)

            let list = try await TestHTTP.send(.GET, "\(h.subscription)/webhooks")
            let items = try #require((try list.json() as? [String: Any])?["items"] as? [[String: Any]])
            #expect(items.count == 1)
            #expect(items.first?["url"] as? String == h.hookURL)
            #expect(!list.text.contains(Self.secret))
        }
    }

    @Test func productionRequiresHTTPSAndRefusesLoopback() async throws {
        try await Self.withService(environment: ["GANTRY_PROFILE": "production"]) { h in
            let plain = try await h.createWebhook(url: "http://hooks.example.com/gantry")
            #expect(plain.status == 400)
            #expect(plain.text.contains("https"))
            let loopback = try await h.createWebhook(url: "https://127.0.0.1:9/hook")
            #expect(loopback.status == 400)
            #expect(try await h.createWebhook(url: "https://hooks.example.com/gantry").status == 201)
        }
    }

    @Test func alertIsDeliveredSignedOnce() async throws {
        try await Self.withService { h in
            #expect(try await h.createWebhook(url: h.hookURL).status == 201)
            let alert = h.alert(messageID: "alert:once")
            let raised = try await h.raise(alert)
            #expect(raised.status == 202)
            #expect((try raised.json() as? [String: Any])?["deliveries"] as? Int == 1)

            let delivery = try await eventually("the delivery is logged as delivered") {
                try await h.deliveries().first { $0["status"] as? String == "delivered" }
            }
            let received = await h.receiver.received
            #expect(received.count == 1)
            let post = try #require(received.first)
            let signature = try #require(post.signature)
            #expect(WebhookSignature.verify(signature: signature, body: post.body, secret: Self.secret))
            #expect(!WebhookSignature.verify(signature: signature, body: post.body + Data(" ".utf8), secret: Self.secret))
            #expect(!WebhookSignature.verify(signature: signature, body: post.body, secret: Self.secret + "x"))
            #expect(post.event == "imageUnhealthy")
            #expect(post.deliveryID == delivery["id"] as? String)
            // The body is the alert, field for field.
            let body = try #require(try JSONSerialization.jsonObject(with: post.body) as? NSDictionary)
            #expect(body == alert as NSDictionary)

            #expect(delivery["alertId"] as? String == "alert:once")
            #expect(delivery["attempts"] as? Int == 1)
            #expect(delivery["lastStatusCode"] as? Int == 204)
            #expect(delivery["lastError"] == nil)
            #expect(delivery["deliveredAt"] != nil)
            #expect(delivery["url"] as? String == h.hookURL)

            // The same alert again (a redelivery from the outbox): no second delivery.
            let again = try await h.raise(alert)
            #expect(again.status == 202)
            #expect((try again.json() as? [String: Any])?["deliveries"] as? Int == 0)
            try await Task.sleep(for: .milliseconds(600))
            #expect(try await h.deliveries().count == 1)
            #expect(await h.receiver.received.count == 1)
        }
    }

    @Test func failingReceiverIsRetriedUntilDelivered() async throws {
        try await Self.withService(receiverStatus: .internalServerError) { h in
            #expect(try await h.createWebhook(url: h.hookURL).status == 201)
            #expect(try await h.raise(h.alert(messageID: "alert:retry")).status == 202)

            let failed = try await eventually("a failed attempt is logged") {
                try await h.deliveries().first { ($0["attempts"] as? Int ?? 0) >= 1 }
            }
            #expect(failed["status"] as? String == "pending")
            #expect(failed["lastStatusCode"] as? Int == 500)
            #expect((failed["lastError"] as? String)?.contains("HTTP 500") == true)
            #expect(failed["deliveredAt"] == nil)

            await h.receiver.answer(with: .ok)
            try await h.execute("UPDATE notification.deliveries SET next_attempt_at = now()")
            let delivered = try await eventually("the retry is delivered") {
                try await h.deliveries().first { $0["status"] as? String == "delivered" }
            }
            #expect(delivered["lastStatusCode"] as? Int == 200)
            #expect(delivered["lastError"] == nil)
            #expect((delivered["attempts"] as? Int ?? 0) >= 2)
            try await Task.sleep(for: .milliseconds(600))
            let answered = await h.receiver.received.map(\.answered)
            #expect(answered.filter { $0 == 200 }.count == 1)
            #expect(answered.allSatisfy { $0 == 500 || $0 == 200 })
            #expect(answered.last == 200)
        }
    }

    @Test func redirectsAreNotFollowed() async throws {
        try await Self.withService { h in
            #expect(try await h.createWebhook(url: "http://127.0.0.1:\(h.receiverPort)/redirect").status == 201)
            #expect(try await h.raise(h.alert()).status == 202)
            let failed = try await eventually("a failed attempt is logged") {
                try await h.deliveries().first { ($0["attempts"] as? Int ?? 0) >= 1 }
            }
            #expect(failed["status"] as? String == "pending")
            #expect(failed["lastStatusCode"] as? Int == 307)
            #expect(await h.receiver.received.isEmpty)
        }
    }

    @Test func unreachableReceiverIsLoggedWithoutStatusCode() async throws {
        try await Self.withService { h in
            let closedPort = try FreePort.next()
            #expect(try await h.createWebhook(url: "http://127.0.0.1:\(closedPort)/hook").status == 201)
            #expect(try await h.raise(h.alert()).status == 202)
            let failed = try await eventually("a failed attempt is logged") {
                try await h.deliveries().first { ($0["attempts"] as? Int ?? 0) >= 1 }
            }
            #expect(failed["status"] as? String == "pending")
            #expect(failed["lastStatusCode"] == nil)
            #expect((failed["lastError"] as? String)?.isEmpty == false)
        }
    }

    @Test func alertsNeedAServiceTokenAndAreScopedToTheirSubscription() async throws {
        try await Self.withService { h in
            #expect(try await h.createWebhook(url: h.hookURL).status == 201)
            let anonymous = try await TestHTTP.json(.POST, "\(h.base)/internal/v1/alerts", h.alert())
            #expect(anonymous.status == 401)
            #expect(anonymous.header("Content-Type") == "application/problem+json")

            // An alert for another subscription reaches none of this subscription's webhooks.
            let elsewhere = try await h.raise(h.alert(subscriptionID: UUID().uuidString.lowercased()))
            #expect(elsewhere.status == 202)
            #expect((try elsewhere.json() as? [String: Any])?["deliveries"] as? Int == 0)

            var malformed = h.alert()
            malformed["tenantId"] = "tenant-1"
            let bad = try await h.raise(malformed)
            #expect(bad.status == 400)
            #expect(bad.text.contains("tenantId"))
            var missing = h.alert()
            missing.removeValue(forKey: "summary")
            #expect(try await h.raise(missing).status == 400)

            try await Task.sleep(for: .milliseconds(400))
            #expect(try await h.deliveries().isEmpty)
            #expect(await h.receiver.received.isEmpty)
        }
    }

    @Test func signatureFormat() {
        let signature = WebhookSignature.sign(body: Data("{}".utf8), secret: "key")
        #expect(signature.hasPrefix("sha256="))
        #expect(signature.count == 7 + 64)
        #expect(WebhookSignature.verify(signature: signature, body: Data("{}".utf8), secret: "key"))
        #expect(!WebhookSignature.verify(signature: "sha256=zz", body: Data("{}".utf8), secret: "key"))
        #expect(!WebhookSignature.verify(signature: signature.uppercased(), body: Data("{}".utf8), secret: "key"))
        #expect(!WebhookSignature.verify(signature: String(signature.dropFirst(7)), body: Data("{}".utf8), secret: "key"))
    }
}
