import Foundation
import GantryRuntime
import GantryTesting
import HTTPTypes
import NIOHTTP1
import Notification
import Testing

/// Faults on the receiving side: a receiver that is down for a while, one that answers 500 forever, one that
/// hangs. Every alert arrives exactly once when the receiver returns; retries are bounded in time; a failing
/// channel does not hold up another.
@Suite struct DeliveryFaultTests {
    /// The issue's "down for ten minutes", shortened for `make test`: `GANTRY_TEST_WEBHOOK_DOWNTIME_SECONDS`
    /// (3 s by default; the retry schedule is scaled down the same way, 100 ms doubling up to 400 ms).
    static var downtime: Duration {
        .seconds(Double(ProcessInfo.processInfo.environment["GANTRY_TEST_WEBHOOK_DOWNTIME_SECONDS"] ?? "") ?? 3)
    }

    @Test("a receiver down for a while, then back, receives every alert exactly once")
    func receiverDownThenBack() async throws {
        try await Harness.run(environment: Harness.fastRetries) { h in
            let downReceiver = WebhookReceiver()
            let port = try FreePort.next()
            _ = try await h.channel("webhook", url: "http://127.0.0.1:\(port)/hook", secret: Harness.secret)
            let started = ContinuousClock.now
            // Ten unhealthy images while the receiver is down.
            let ids = (0..<10).map { "alert:down-\($0)" }
            for (index, id) in ids.enumerated() {
                let digest = "sha256:" + String(repeating: String(format: "%02x", index), count: 32)
                #expect(try await h.raised(h.alert(messageID: id, digest: digest)) == 1)
            }
            try await Task.sleep(until: started + Self.downtime)
            let waiting = try await h.deliveries()
            #expect(waiting.count == 10)
            #expect(waiting.allSatisfy { $0["status"] as? String == "pending" })
            let attempted = waiting.filter { ($0["attempts"] as? Int ?? 0) > 0 }
            #expect(attempted.reduce(0) { $0 + ($1["attempts"] as? Int ?? 0) } >= 10)
            #expect(attempted.allSatisfy { $0["lastStatusCode"] == nil && ($0["lastError"] as? String)?.isEmpty == false })

            // Back up on the same port.
            try await whileRunning(downReceiver.application(port: port), port: port) {
                _ = try await eventually("every delivery is delivered", timeout: .seconds(30)) {
                    try await h.deliveries(query: "?status=delivered").count == 10 ? true : nil
                }
                try await Task.sleep(for: .seconds(1))
            }
            let received = await downReceiver.received
            #expect(received.count == 10)
            let alertIDs = try received.map { try $0.json()["messageId"] as? String ?? "" }
            #expect(alertIDs.sorted() == ids.sorted())
            #expect(Set(received.compactMap(\.deliveryID)).count == 10)
            #expect(received.allSatisfy {
                WebhookSignature.verify(signature: $0.signature ?? "", timestamp: $0.timestamp ?? "", body: $0.body,
                                        secret: Harness.secret) == .valid
            })
        }
    }

    @Test("a receiver answering 500 forever: bounded retries, then dead; the other channel is served; manual redelivery")
    func failingForeverIsDeadLettered() async throws {
        var environment = Harness.fastRetries
        environment["GANTRY_NOTIFICATION_RETRY_WINDOW_SECONDS"] = "2"
        try await Harness.run(environment: environment, receiverMode: .answer(.internalServerError)) { h in
            let healthy = WebhookReceiver()
            let healthyPort = try FreePort.next()
            let failingChannel = try await h.channel("webhook", name: "failing", url: h.hookURL, secret: Harness.secret)
            let healthyChannel = try await h.channel("slack", name: "healthy", url: "http://127.0.0.1:\(healthyPort)/hook")
            try await whileRunning(healthy.application(port: healthyPort), port: healthyPort) {
                #expect(try await h.raised(h.alert(messageID: "alert:forever")) == 2)
                _ = try await eventually("the healthy channel is served") {
                    try await h.deliveries(query: "?channelId=\(healthyChannel)&status=delivered").first
                }
                let dead = try await eventually("the failing delivery is dead", timeout: .seconds(15)) {
                    try await h.deliveries(query: "?channelId=\(failingChannel)&status=dead").first
                }
                let attempts = try #require(dead["attempts"] as? Int)
                #expect((1...30).contains(attempts))
                #expect(dead["lastStatusCode"] as? Int == 500)
                #expect((dead["lastError"] as? String)?.hasPrefix("HTTP 500") == true)
                #expect(dead["nextAttemptAt"] == nil)
                let created = try #require((dead["createdAt"] as? String).flatMap(Harness.date))
                let giveUp = try #require((dead["giveUpAt"] as? String).flatMap(Harness.date))
                #expect(abs(giveUp.timeIntervalSince(created) - 2) < 0.5)
                let deadID = try #require(dead["id"] as? String)
                let log = try #require(try await h.delivery(deadID)["attempts"] as? [[String: Any]])
                #expect(log.count == attempts)
                #expect(log.allSatisfy { $0["outcome"] as? String == "failed" && $0["statusCode"] as? Int == 500 })
                // Retried until the window closed: the last attempt started at (or just before) giveUpAt.
                let lastStartText = try #require(log.last?["startedAt"] as? String)
                let lastStart = try #require(Harness.date(lastStartText))
                #expect(lastStart > giveUp.addingTimeInterval(-1))
                // Nothing more after the dead letter.
                try await Task.sleep(for: .seconds(1))
                #expect(await h.receiver.received.count == attempts)
                #expect(await healthy.received.count == 1)

                // Manual redelivery, once the receiver is fixed: same delivery ID, delivered.
                await h.receiver.set(.answer(.ok))
                let redelivered = try await TestHTTP.send(.POST, "\(h.subscription)/deliveries/\(deadID)/redeliver")
                #expect(redelivered.status == 202, "\(redelivered.text)")
                _ = try await eventually("the redelivery is delivered") {
                    try await h.deliveries(query: "?status=delivered&channelId=\(failingChannel)").first
                }
                #expect(await h.receiver.received.last?.deliveryID == deadID)
                #expect(await h.receiver.received.last?.answered == 200)
                try expectProblem(try await TestHTTP.send(.POST, "\(h.subscription)/deliveries/\(UUID().uuidString)/redeliver"),
                                  status: 404)
                try expectProblem(try await TestHTTP.send(.POST, "\(h.subscription)/deliveries/nope/redeliver"), status: 400)
            }
        }
    }

    @Test("a receiver that hangs: each attempt is cut at the timeout, and another channel's alerts arrive meanwhile")
    func hangingReceiverDelaysNobody() async throws {
        var environment = Harness.fastRetries
        environment["GANTRY_NOTIFICATION_TIMEOUT_MS"] = "2500"
        try await Harness.run(environment: environment, receiverMode: .hang) { h in
            let healthy = WebhookReceiver()
            let healthyPort = try FreePort.next()
            let hangingChannel = try await h.channel("webhook", name: "hanging", url: h.hookURL, secret: Harness.secret)
            _ = try await h.channel("teams", name: "healthy", url: "http://127.0.0.1:\(healthyPort)/hook")
            try await whileRunning(healthy.application(port: healthyPort), port: healthyPort) {
                var latencies: [Duration] = []
                for index in 0..<4 {
                    let raisedAt = ContinuousClock.now
                    let digest = "sha256:" + String(repeating: String(format: "%02x", index + 16), count: 32)
                    #expect(try await h.raised(h.alert(messageID: "alert:hang-\(index)", digest: digest)) == 2)
                    _ = try await eventually("the healthy channel gets alert \(index)") {
                        await healthy.received.count == index + 1 ? true : nil
                    }
                    latencies.append(ContinuousClock.now - raisedAt)
                }
                // The healthy channel is served while the hanging one has an attempt in flight (which lasts the
                // 2.5 s timeout): had deliveries queued behind it, none could land inside such a window.
                let hangStarts = await h.receiver.received.map(\.at)
                let servedDuringHang = await healthy.received.filter { post in
                    hangStarts.contains { post.at > $0 && post.at < $0.addingTimeInterval(2.4) }
                }
                #expect(!servedDuringHang.isEmpty, "\(latencies)")
                #expect(latencies.allSatisfy { $0 < .seconds(10) }, "\(latencies)")

                let failed = try await eventually("a timed-out attempt is logged") {
                    try await h.deliveries(query: "?channelId=\(hangingChannel)").first { ($0["attempts"] as? Int ?? 0) >= 1 }
                }
                #expect(failed["status"] as? String == "pending")
                #expect((failed["lastError"] as? String)?.contains("timed out") == true, "\(failed["lastError"] ?? "")")
                let id = try #require(failed["id"] as? String)
                let log = try #require(try await h.delivery(id)["attempts"] as? [[String: Any]])
                #expect(!log.isEmpty && log.allSatisfy { ($0["durationMs"] as? Int ?? 0) >= 2400 && ($0["durationMs"] as? Int ?? 0) < 5000 })
                // One attempt in flight per channel: the hanging receiver never saw two requests at once.
                let hangs = await h.receiver.received.map(\.at)
                let gaps = zip(hangs, hangs.dropFirst()).map { $1.timeIntervalSince($0) }
                #expect(gaps.allSatisfy { $0 >= 2.4 }, "\(gaps)")
                // A pending delivery is not redelivered by hand: it is being attempted.
                try expectProblem(try await TestHTTP.send(.POST, "\(h.subscription)/deliveries/\(id)/redeliver"), status: 409)
            }
        }
    }
}
