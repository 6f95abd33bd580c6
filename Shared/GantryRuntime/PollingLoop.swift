import Logging
import ServiceLifecycle

/// The loop every queue worker runs (outbox relay, scan worker, webhook delivery): once the service is
/// ready, run `pass` repeatedly; sleep `interval` when a pass found no work, one second after a failed
/// pass (logged, never fatal). On graceful shutdown in-flight work is cancelled: its rows stay due
/// (or leased) and are taken again later, by this replica or another.
public enum PollingLoop {
    /// - Parameter pass: does one unit of work; returns whether it found any.
    public static func run(name: String, readiness: Readiness, interval: Duration, logger: Logger,
                           pass: @escaping @Sendable () async throws -> Bool) async {
        await readiness.waitUntilReady()
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    if try await !pass() { try await Task.sleep(for: interval) }
                } catch is CancellationError {
                    return
                } catch {
                    logger.warning("\(name) pass failed", metadata: ["error": "\(error)"])
                    try? await Task.sleep(for: .seconds(1))
                }
            }
        }
    }
}
