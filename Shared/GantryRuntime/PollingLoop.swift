import Logging
import ServiceLifecycle

/// The loop every queue worker runs (outbox relay, scan worker, webhook delivery): once the service is
/// ready, run `pass` repeatedly; sleep `interval` when a pass found no work, one second after a failed
/// pass (logged, never fatal). On graceful shutdown in-flight work is cancelled: its rows stay due
/// (or leased) and are taken again later, by this replica or another.
public enum PollingLoop {
    /// - Parameter passLimit: when set, a pass that has not finished within it is abandoned (`bounded`) and
    ///   counts as failed: a PostgreSQL statement caught by a server restart can wait forever, and the loop must
    ///   not wait with it. Set it for passes of bounded work (queries, a batch of HTTP calls with timeouts); leave
    ///   it nil where a pass is legitimately long (a scan, a crawl).
    /// - Parameter pass: does one unit of work; returns whether it found any.
    public static func run(name: String, readiness: Readiness, interval: Duration, passLimit: Duration? = nil, logger: Logger,
                           pass: @escaping @Sendable () async throws -> Bool) async {
        await readiness.waitUntilReady()
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    let found = if let passLimit { try await bounded("the \(name) pass", passLimit, pass) } else { try await pass() }
                    if !found { try await Task.sleep(for: interval) }
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
