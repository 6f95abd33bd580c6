import AsyncHTTPClient
import Foundation
import GantryModel
import GantryRuntime
import GantryTesting
import Logging
import NIOHTTP1
import PostgresNIO
import RegistryClient
@testable import Scanner
import ScannerAPI
import Testing
import VulnerabilityDB

/// The scanner's alert signals (issue 8, "Alert rules"), on a real registry behind a scripted front that
/// answers 500 for the image's manifest twice, a real discovery and a real PostgreSQL: every failed attempt
/// queues `scansFailing` with the streak so far, the unreachable registry one `registryUnreachable` per
/// episode, and the successful third attempt ends both. Feeds not fetched for too long queue `feedsStale`.
@Suite("Scanner alert signals", .enabled(if: Corpus.isAvailable, "the test corpus (../shared/corpus) is missing"))
struct AlertSignalTests {
    static func alerts(_ h: ScannerHarness) async throws -> [(id: String, body: [String: Any])] {
        try await h.outbox().filter { $0.1 == "/internal/v1/alerts" }.map {
            ($0.0, try #require(try JSONSerialization.jsonObject(with: Data($0.2.utf8)) as? [String: Any]))
        }
    }

    @Test("failed attempts raise scansFailing with the streak and one registryUnreachable per episode; a success ends both")
    func failingThenRecovering() async throws {
        let registry = try await TestRegistry.start()
        defer { registry.stop() }
        try Skopeo.copy(ociArchive: try Corpus.file("images/alpine-3.7.3.oci.tar"), to: registry.host, repository: "team/app", tag: "3.7")
        let manifest = try await RegistryClient(httpClient: .shared, logger: Logger(label: "alerts"))
            .manifest(RegistryEndpoint(baseURL: registry.baseURL, credentials: nil), repository: "team/app", reference: "3.7")
        let digest = manifest.digest.description
        let front = try await ScriptedRegistryFront.start(for: registry, rules: [
            .init(match: "/manifests/", answers: [.init(500), .init(500)]),
        ])
        defer { front.stop() }
        try await ScannerHarness.run { h in
            let base = h.env.url(.discovery).absoluteString
            let created = try await TestHTTP.json(
                .POST, "\(base)/v1/tenants/\(h.tenantID)/subscriptions/\(h.subscriptionID)/registries",
                ["loginServer": try #require(front.baseURL.host.map { "\($0):\(front.baseURL.port ?? 80)" }), "insecure": true])
            try #require(created.status == 201, "\(created.text)")
            let registryID = try #require(try created.object()["id"] as? String)
            let host = try #require(try created.object()["loginServer"] as? String)
            let worker = h.worker(ScanQueueTests.settings(maxAttempts: 5, retryBase: .milliseconds(10)))
            let (jobID, _) = try await h.request(.push, digest: digest, registryID: registryID)

            for attempt in 1...2 {
                try await h.execute("UPDATE scanner.scan_jobs SET next_attempt_at = now() WHERE id = \(UUID(uuidString: jobID)!)")
                let job = try #require(try await worker.claim())
                await worker.process(job)
                #expect(try await h.job(jobID).status == "queued", "attempt \(attempt) is retried")
            }
            var alerts = try await Self.alerts(h)
            let failing = alerts.filter { $0.body["kind"] as? String == "scansFailing" }
            #expect(failing.map { $0.body["consecutiveFailures"] as? Int } == [1, 2])
            #expect(Set(failing.map { $0.body["since"] as? String }).count == 1, "one streak, one since")
            #expect(failing.allSatisfy { $0.body["imageDigest"] as? String == digest && $0.body["registryHost"] as? String == host
                && $0.body["repositoryName"] as? String == "team/app" && $0.body["tenantId"] as? String == h.tenantID })
            #expect((failing.first?.body["detail"] as? String)?.contains("500") == true)
            let unreachable = alerts.filter { $0.body["kind"] as? String == "registryUnreachable" }
            #expect(unreachable.count == 1, "one message per episode, not per failure")
            #expect(unreachable.first?.body["registryHost"] as? String == host)

            // The front has used up its 500s: the third attempt scans the image.
            try await h.execute("UPDATE scanner.scan_jobs SET next_attempt_at = now() WHERE id = \(UUID(uuidString: jobID)!)")
            let job = try #require(try await worker.claim())
            await worker.process(job)
            #expect(try await h.job(jobID).status == "succeeded")
            #expect(try await Self.count(h, "SELECT count(*)::int FROM scanner.scan_failure_streaks") == 0)
            #expect(try await Self.count(h, "SELECT count(*)::int FROM scanner.unreachable_registries") == 0)

            // A new failure after the success is a new streak and a new episode.
            let (second, _) = try await h.request(.manual, digest: digest, registryID: registryID)
            let claimed = try #require(try await worker.claim())
            #expect(claimed.id.uuidString.lowercased() == second)
            await worker.fail(claimed, failure: .unreachable("registry answered HTTP 503"), registryHost: host)
            alerts = try await Self.alerts(h)
            #expect(alerts.filter { $0.body["kind"] as? String == "scansFailing" }.last?.body["consecutiveFailures"] as? Int == 1)
            #expect(alerts.filter { $0.body["kind"] as? String == "registryUnreachable" }.count == 2)
        }
    }

    @Test("a feed not fetched for longer than the limit raises feedsStale once per episode; a fetch, even unchanged, ends it")
    func feedsStale() async throws {
        try await ScannerHarness.run { h in
            let document = try ReevaluationTests.secdb(withMusl: true)
            _ = try await h.knowledgeBase.importDocument(document)
            let monitor = FeedStalenessMonitor(runtime: h.runtime, staleAfter: .seconds(86_400), checkInterval: .seconds(60))
            #expect(try await monitor.check().isEmpty)
            try await h.execute("UPDATE scanner.kb_feeds SET checked_at = now() - interval '3 days'")
            #expect(try await monitor.check() == [document.source])
            #expect(try await monitor.check() == [document.source])
            let stale = try await Self.alerts(h).filter { $0.body["kind"] as? String == "feedsStale" }
            #expect(stale.count == 1, "the same episode is one message")
            #expect(stale.first?.body["feed"] as? String == document.source && stale.first?.body["tenantId"] == nil)
            #expect(stale.first?.body["since"] != nil)
            // Re-importing the unchanged feed is a successful fetch: no longer stale.
            #expect(try await h.knowledgeBase.importDocument(document).changed == false)
            #expect(try await monitor.check().isEmpty)
        }
    }

    static func count(_ h: ScannerHarness, _ sql: String) async throws -> Int {
        let logger = h.runtime.logger
        return try await h.runtime.database.withSystemAccess(logger: logger) { connection in
            let rows = try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger)
            for try await value in rows.decode(Int.self) { return value }
            return -1
        }
    }
}
