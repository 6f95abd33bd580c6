import GantryRuntime
import Synchronization
import Testing

@Suite struct ExpiringCacheTests {
    struct LoadFailed: Error {}

    /// Counts loads per key.
    final class Loads: Sendable {
        let counts = Mutex([String: Int]())
        func record(_ key: String) { counts.withLock { $0[key, default: 0] += 1 } }
        func count(_ key: String) -> Int { counts.withLock { $0[key] ?? 0 } }
    }

    @Test("concurrent misses share one load; values live as long as their lifetime says; failures are not kept")
    func sharingLifetimesAndFailures() async throws {
        let loads = Loads()
        // "found" values live 10 minutes, nil ("none") 200 ms.
        let cache = ExpiringCache<String, String?>(capacity: 100) { $0 == nil ? .milliseconds(200) : .seconds(600) }
        let values = try await withThrowingTaskGroup(of: String?.self) { group in
            for _ in 0..<20 {
                group.addTask {
                    try await cache.value(for: "a") {
                        loads.record("a")
                        try await Task.sleep(for: .milliseconds(100))
                        return "A"
                    }
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(values == Array(repeating: "A", count: 20))
        #expect(loads.count("a") == 1)

        #expect(try await cache.value(for: "none") { loads.record("none"); return nil } == nil)
        #expect(try await cache.value(for: "none") { loads.record("none"); return "late" } == nil)
        try await Task.sleep(for: .milliseconds(300))
        #expect(try await cache.value(for: "none") { loads.record("none"); return "late" } == "late")
        #expect(try await cache.value(for: "a") { loads.record("a"); return "B" } == "A")
        #expect(loads.count("none") == 2 && loads.count("a") == 1)

        await #expect(throws: LoadFailed.self) { try await cache.value(for: "f") { loads.record("f"); throw LoadFailed() } }
        #expect(try await cache.value(for: "f") { loads.record("f"); return "F" } == "F")
        #expect(loads.count("f") == 2)
    }

    @Test("removeAll forgets matching entries at once and does not keep a load that was running meanwhile")
    func removal() async throws {
        let cache = ExpiringCache<String, String?>(capacity: 100) { _ in .seconds(600) }
        _ = try await cache.value(for: "x") { "old" }
        _ = try await cache.value(for: "y") { "kept" }
        await cache.removeAll { key, _ in key == "x" }
        #expect(try await cache.value(for: "x") { "new" } == "new")
        #expect(try await cache.value(for: "y") { "other" } == "kept")

        // A load that read the old state before the removal is answered but not kept.
        let (started, startedContinuation) = AsyncStream<Void>.makeStream()
        let (release, releaseContinuation) = AsyncStream<Void>.makeStream()
        let slow = Task {
            try await cache.value(for: "z") {
                startedContinuation.yield()
                for await _ in release { break }
                return "stale"
            }
        }
        for await _ in started { break }
        await cache.removeAll { _, _ in false }
        // A caller after the removal does not join the old load: it loads afresh, while the old one still runs.
        #expect(try await cache.value(for: "z") { "fresh" } == "fresh")
        releaseContinuation.yield()
        #expect(try await slow.value == "stale")
        #expect(try await cache.value(for: "z") { "later" } == "fresh")
    }

    @Test("at most capacity entries: expired ones go first, then all")
    func capacity() async throws {
        let cache = ExpiringCache<Int, Int?>(capacity: 10) { $0 == nil ? .milliseconds(50) : .seconds(600) }
        for key in 0..<5 { _ = try await cache.value(for: key) { key } }
        for key in 5..<10 { _ = try await cache.value(for: key) { nil } }
        #expect(await cache.count == 10)
        try await Task.sleep(for: .milliseconds(100))
        _ = try await cache.value(for: 10) { 10 }
        #expect(await cache.count == 6, "the five expired entries were dropped")
        for key in 11..<20 { _ = try await cache.value(for: key) { key } }
        #expect(await cache.count <= 10)
        // A flood of short-lived values evicts short-lived values first: the long-lived ones stay.
        let longLived = Set(15..<20)
        for key in 0..<10_000 { _ = try await cache.value(for: 100 + key) { nil } }
        #expect(await cache.count <= 10)
        for key in longLived { #expect(try await cache.value(for: key) { -1 } == key, "\(key) was evicted") }
    }
}
