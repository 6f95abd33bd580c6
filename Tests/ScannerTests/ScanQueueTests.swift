import Foundation
import GantryRuntime
import GantryTesting
import PostgresNIO
@testable import Scanner
import ScannerAPI
import Testing

/// The scan queue on a real PostgreSQL database: priorities, de-duplication, per-registry concurrency
/// and rate limits (raced by concurrent claimers), retries with backoff and jitter, dead-lettering,
/// deadlines, cancellation by deletion, and the history endpoint.
@Suite("Scan queue")
struct ScanQueueTests {
    static func settings(concurrency: Int = 10, rate: Int = 1000, maxAttempts: Int = 3, retryBase: Duration = .seconds(2))
        -> ScanQueueSettings {
        var settings = ScanQueueSettings()
        settings.registryConcurrency = concurrency
        settings.registryRatePerMinute = rate
        settings.maxAttempts = maxAttempts
        settings.retryBase = retryBase
        return settings
    }

    @Test("pushes before manual scans before rescans; the same image twice is one job; a redelivered request too")
    func priorityAndDeduplication() async throws {
        try await ScannerHarness.run { h in
            let (rescan, _) = try await h.request(.rescan, digest: ScannerHarness.digest("01"))
            let (manual, _) = try await h.request(.manual, digest: ScannerHarness.digest("02"))
            let (push, _) = try await h.request(.push, digest: ScannerHarness.digest("03"), messageID: "m-push")
            let (again, deduplicated) = try await h.request(.push, digest: ScannerHarness.digest("03"))
            #expect(again == push && deduplicated)
            let (redelivered, redeliveredDeduplicated) = try await h.request(.push, digest: ScannerHarness.digest("03"), messageID: "m-push")
            #expect(redelivered == push && redeliveredDeduplicated)
            let worker = h.worker(Self.settings())
            var order: [String] = []
            while let job = try await worker.claim() { order.append(job.id.uuidString.lowercased()) }
            #expect(order == [push, manual, rescan])
        }
    }

    @Test("per-registry concurrency: 12 concurrent claimers, 6 jobs per registry, limit 2 → exactly 2 running per registry")
    func registryConcurrency() async throws {
        try await ScannerHarness.run { h in
            for index in 0..<6 {
                try await h.request(.push, digest: ScannerHarness.digest(String(format: "a%d", index)))
                try await h.request(.push, digest: ScannerHarness.digest(String(format: "b%d", index)), registryID: h.secondRegistryID)
            }
            let worker = h.worker(Self.settings(concurrency: 2))
            let claimed = try await withThrowingTaskGroup(of: ScanJob?.self) { group in
                for _ in 0..<12 { group.addTask { try await worker.claim() } }
                var jobs: [ScanJob] = []
                for try await job in group { if let job { jobs.append(job) } }
                return jobs
            }
            let perRegistry = Dictionary(grouping: claimed, by: { $0.registryID.uuidString.lowercased() }).mapValues(\.count)
            #expect(perRegistry == [h.registryID: 2, h.secondRegistryID: 2])
            #expect(try await worker.claim() == nil)
            // One finishes: its registry may start one more.
            let done = try #require(claimed.first { $0.registryID.uuidString.lowercased() == h.registryID })
            try await h.execute("UPDATE scanner.scan_jobs SET status = 'succeeded', finished_at = now() WHERE id = \(done.id)")
            let next = try #require(try await worker.claim())
            #expect(next.registryID == done.registryID)
            #expect(try await worker.claim() == nil)
        }
    }

    @Test("per-registry rate: at most 3 starts a minute even when each scan finishes at once; other registries unaffected")
    func registryRate() async throws {
        try await ScannerHarness.run { h in
            for index in 0..<5 { try await h.request(.push, digest: ScannerHarness.digest(String(format: "c%d", index))) }
            try await h.request(.push, digest: ScannerHarness.digest("d0"), registryID: h.secondRegistryID)
            let worker = h.worker(Self.settings(rate: 3))
            var started: [ScanJob] = []
            while let job = try await worker.claim() {
                started.append(job)
                try await h.execute("UPDATE scanner.scan_jobs SET status = 'succeeded', finished_at = now() WHERE id = \(job.id)")
            }
            let first = started.filter { $0.registryID.uuidString.lowercased() == h.registryID }
            #expect(first.count == 3)
            #expect(started.count == 4)
            // A minute later the registry may start again.
            try await h.execute("UPDATE scanner.scan_jobs SET claimed_at = claimed_at - interval '61 seconds'")
            #expect(try await worker.claim() != nil)
        }
    }

    @Test("transient failures retry with exponential backoff and ±20 % jitter, then dead-letter with the reason; permanent ones fail at once")
    func retriesAndDeadLetter() async throws {
        try await ScannerHarness.run(maxAttempts: 3) { h in
            let worker = h.worker(Self.settings(maxAttempts: 3, retryBase: .seconds(10)))
            let (id, _) = try await h.request(.push, digest: ScannerHarness.digest("e1"))
            var delays: [Double] = []
            for attempt in 1...3 {
                let job = try #require(try await worker.claim(), "attempt \(attempt)")
                #expect(job.attempt == attempt)
                await worker.fail(job, failure: .transient("registry answered HTTP 503"))
                let state = try await h.job(id)
                if attempt < 3 {
                    #expect(state.status == "queued")
                    delays.append(state.nextAttemptIn)
                    #expect(try await worker.claim() == nil, "a retry is not due before its backoff")
                    try await h.execute("UPDATE scanner.scan_jobs SET next_attempt_at = now() WHERE id = \(job.id)")
                } else {
                    #expect(state.status == "dead")
                    #expect(state.error == "dead-lettered after 3 attempt(s): registry answered HTTP 503")
                }
            }
            try #require(delays.count == 2)
            #expect((7.5...12.5).contains(delays[0]), "\(delays)")
            #expect((15.5...24.5).contains(delays[1]), "\(delays)")
            #expect(ScanQueueSettings().retryDelay(afterAttempt: 30) <= 360)

            let (permanent, _) = try await h.request(.push, digest: ScannerHarness.digest("e2"))
            let job = try #require(try await worker.claim())
            await worker.fail(job, failure: .permanent("content verification failed"))
            let state = try await h.job(permanent)
            #expect(state.status == "failed")
            #expect(state.error == "content verification failed")
        }
    }

    @Test("deadline: a queued job past it is dead-lettered with the reason; a running scan is cancelled at it")
    func deadline() async throws {
        try await ScannerHarness.run { h in
            let worker = h.worker(Self.settings())
            let (queued, _) = try await h.request(.push, digest: ScannerHarness.digest("f1"))
            let (running, _) = try await h.request(.push, digest: ScannerHarness.digest("f2"))
            let claimed = try #require(try await worker.claim())
            try await h.execute("UPDATE scanner.scan_jobs SET deadline_at = now() - interval '1 second'")
            // The running one still holds a lease: its own worker ends it.
            #expect(try await worker.expireDeadlines() == 1)
            let state = try await h.job(claimed.id.uuidString.lowercased() == queued ? running : queued)
            #expect(state.status == "dead")
            #expect(state.error?.hasPrefix("deadline exceeded: not finished by ") == true, "\(state.error ?? "")")
            // Its worker died (lease expired): the sweep takes it too.
            try await h.execute("UPDATE scanner.scan_jobs SET lease_until = now() - interval '1 second' WHERE status = 'running'")
            #expect(try await worker.expireDeadlines() == 1)
            #expect(try await worker.claim() == nil)

            let started = ContinuousClock.now
            await #expect(throws: DeadlineExceeded.self) {
                try await ScanWorker.withDeadline(Date().addingTimeInterval(0.3)) {
                    try await Task.sleep(for: .seconds(30))
                    return 1
                }
            }
            #expect(ContinuousClock.now - started < .seconds(5))
            let value = try await ScanWorker.withDeadline(Date().addingTimeInterval(10)) { 42 }
            #expect(value == 42)
        }
    }

    @Test("a deletion cancels queued scans, closes reported findings once, makes a later rescan a no-op; a push clears it")
    func deletion() async throws {
        try await ScannerHarness.run { h in
            let digest = ScannerHarness.digest("aa")
            let (first, _) = try await h.request(.push, digest: digest)
            // The first scan reported (findings exist downstream); a rescan is queued when the deletion arrives.
            try await h.execute("UPDATE scanner.scan_jobs SET status = 'succeeded', outcome = 'assessed', finished_at = now() WHERE id = \(UUID(uuidString: first)!)")
            let (queued, _) = try await h.request(.rescan, digest: digest)
            let deletion = Components.Schemas.ImageDeletion(
                messageId: "image-deletion:1", tenantId: h.tenantID, subscriptionId: h.subscriptionID, registryId: h.registryID,
                registryHost: "registry-a.example.com", repository: "team/app", digest: digest, deletedAt: Date())
            let receipt = try await h.api.recordImageDeletion(.init(body: .json(deletion))).accepted.body.json
            #expect(receipt.cancelledJobs == 1 && !receipt.duplicate)
            #expect(try await h.job(queued).status == "cancelled")
            let again = try await h.api.recordImageDeletion(.init(body: .json(deletion))).accepted.body.json
            #expect(again.duplicate && again.cancelledJobs == 0)
            let reports = try await h.outbox().filter { $0.1 == "/internal/v1/reports" }
            #expect(reports.count == 1)
            let report = try #require(try JSONSerialization.jsonObject(with: Data(reports[0].2.utf8)) as? [String: Any])
            #expect(report["outcome"] as? String == "notApplicable")
            #expect(report["notApplicableReason"] as? String == "ImageDeleted")
            #expect((report["findings"] as? [Any])?.isEmpty == true)
            #expect(report["registryHost"] as? String == "registry-a.example.com")

            let (rescan, _) = try await h.request(.rescan, digest: digest)
            #expect(try await h.job(rescan).status == "cancelled")
            let (push, _) = try await h.request(.push, digest: digest)
            #expect(try await h.job(push).status == "queued")

            // A deletion of an image never reported sends nothing downstream.
            let unknown = Components.Schemas.ImageDeletion(
                messageId: "image-deletion:2", tenantId: h.tenantID, subscriptionId: h.subscriptionID, registryId: h.registryID,
                registryHost: "registry-a.example.com", repository: "team/other", digest: digest, deletedAt: Date())
            _ = try await h.api.recordImageDeletion(.init(body: .json(unknown)))
            #expect(try await h.outbox().filter { $0.1 == "/internal/v1/reports" }.count == 1)
        }
    }

    @Test("the history endpoint: trigger, status, outcome, attempts, error, queued/started/finished and duration")
    func history() async throws {
        try await ScannerHarness.run(maxAttempts: 1) { h in
            let digest = ScannerHarness.digest("bb")
            let worker = h.worker(Self.settings(maxAttempts: 1))
            let (failed, _) = try await h.request(.push, digest: digest)
            let job = try #require(try await worker.claim())
            await worker.fail(job, failure: .transient("registry unreachable"))
            let (manual, _) = try await h.request(.manual, digest: digest)
            try await h.execute("""
                UPDATE scanner.scan_jobs SET status = 'succeeded', outcome = 'assessed', findings = 2, attempts = 1,
                  started_at = queued_at + interval '1 second', finished_at = queued_at + interval '3.5 seconds'
                WHERE id = \(UUID(uuidString: manual)!)
                """)
            let output = try await h.api.listScans(.init(path: .init(tenantId: h.tenantID), query: .init(digest: digest)))
            let items = try output.ok.body.json.items
            try #require(items.count == 2)
            #expect(items.map(\.jobId) == [manual, failed])
            #expect(items[0].trigger == .manual && items[0].status == .succeeded && items[0].outcome == .assessed)
            #expect(items[0].durationMs == 2500 && items[0].findings == 2)
            #expect(items[1].trigger == .push && items[1].status == .dead && items[1].attempts == 1 && items[1].maxAttempts == 1)
            #expect(items[1].error == "dead-lettered after 1 attempt(s): registry unreachable")
            #expect(items[1].deadlineAt != nil && items[1].startedAt != nil && items[1].finishedAt != nil)
            await #expect(throws: ProblemError.self) {
                _ = try await h.api.listScans(.init(path: .init(tenantId: h.tenantID), query: .init(digest: "sha256:xyz")))
            }
        }
    }
}
