import Foundation
import GantryRuntime
import Logging
import Synchronization
import Testing

/// `PollingLoop`'s pass limit: a pass that never answers (as a PostgreSQL statement caught by a server
/// restart, which ignores cancellation) is abandoned, and the loop goes on.
@Suite struct PollingLoopTests {
    /// Passes started, and whether the later ones ran.
    final class Passes: Sendable {
        let count = Mutex(0)
        let later = AsyncStream<Int>.makeStream()
    }

    @Test("a pass stuck beyond passLimit is abandoned and the next pass runs; without a limit the loop waits for it")
    func stuckPassIsAbandoned() async throws {
        for limit in [Duration.milliseconds(300), nil] {
            let passes = Passes()
            let readiness = Readiness()
            readiness.markReady()
            let loop = Task {
                await PollingLoop.run(name: "test", readiness: readiness, interval: .milliseconds(50), passLimit: limit,
                                      logger: Logger(label: "test")) {
                    let number = passes.count.withLock { count in
                        count += 1
                        return count
                    }
                    if number == 1 {
                        // Never resumed and deaf to cancellation: a hung statement.
                        await withCheckedContinuation { (_: CheckedContinuation<Void, Never>) in }
                    }
                    passes.later.continuation.yield(number)
                    return false
                }
            }
            let started = ContinuousClock.now
            let second = Task {
                for await number in passes.later.stream where number >= 2 { return true }
                return false
            }
            // A timed-out pass counts as failed: the loop waits a second, then passes again.
            // With a limit the second pass comes after about 1.3 s (more on a busy machine); without one it never
            // comes, which 2 s show well enough.
            let watchdog = Task {
                try await Task.sleep(for: limit == nil ? .seconds(2) : .seconds(20))
                second.cancel()
            }
            let ranAgain = await second.value
            watchdog.cancel()
            loop.cancel()
            if limit != nil {
                #expect(ranAgain, "the loop stayed in the stuck pass")
                #expect(ContinuousClock.now - started < .seconds(20))
            } else {
                #expect(!ranAgain, "without a limit the loop waits for the pass")
                #expect(passes.count.withLock { $0 } == 1)
            }
        }
    }
}
