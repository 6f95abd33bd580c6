import Foundation
import GantryRuntime
import Logging
import NotificationAPI
import PostgresNIO
import ServiceLifecycle

/// Raises `feedsStale` (notification.yaml, "Alert kinds") for every feed in the knowledge base not fetched
/// successfully — changed or not — for longer than `staleAfter`: a publisher that stopped answering, a
/// mirror gone, or an air-gapped deployment whose last bundle is old. The alert is deployment-wide (no
/// tenant): notification delivers it to every subscription with a `feedsStale` rule, once per feed and
/// episode (`since` = the feed's last successful fetch, so a feed that recovers and goes stale again is a
/// new episode).
///
/// Settings: `GANTRY_FEEDS_STALE_AFTER_SECONDS` (default 172800 = 2 days; 0 turns the check off) and
/// `GANTRY_FEEDS_STALE_CHECK_SECONDS` (default 3600), read by `ScannerApplication`.
struct FeedStalenessMonitor: Service {
    let runtime: ServiceRuntime
    let staleAfter: Duration
    let checkInterval: Duration

    func run() async throws {
        guard staleAfter > .zero else {
            try? await gracefulShutdown()
            return
        }
        await PollingLoop.run(name: "feed staleness check", readiness: runtime.readiness, interval: checkInterval,
                              passLimit: .seconds(60), logger: runtime.logger) {
            try await check()
            return false
        }
    }

    /// One pass: queues an alert per stale feed (the outbox keeps one per feed and episode).
    /// - Returns: the stale feeds' sources, oldest first.
    @discardableResult
    func check() async throws -> [String] {
        let logger = runtime.logger, outbox = runtime.outbox
        let seconds = Double(staleAfter.components.seconds)
        return try await runtime.database.withTransaction(logger: logger) { connection in
            let rows = try await connection.query("""
                SELECT source, checked_at FROM scanner.kb_feeds
                WHERE checked_at < now() - make_interval(secs => \(seconds)) ORDER BY checked_at, source
                """, logger: logger)
            var stale: [(String, Date)] = []
            for try await row in rows.decode((String, Date).self) { stale.append(row) }
            for (source, since) in stale {
                let episode = Int64((since.timeIntervalSince1970 * 1000).rounded())
                // Sources can be long URLs; the message ID names them by hash to stay within 200 characters.
                let alert = NotificationAPI.Components.Schemas.Alert(
                    messageId: "alert:feeds-stale:\(Checksum.sha256Hex(Array(source.utf8)).prefix(32)):\(episode)",
                    kind: .feedsStale,
                    summary: "the vulnerability feed \(source.prefix(300)) has not been updated since \(since.formatted(.iso8601))",
                    since: since, feed: String(source.prefix(200)),
                    detail: "no successful fetch or bundle import for more than \(Int(seconds)) s (GANTRY_FEEDS_STALE_AFTER_SECONDS)")
                try await outbox.enqueue(alert, messageID: alert.messageId, to: .notification, path: "/internal/v1/alerts",
                                         on: connection, logger: logger)
            }
            if !stale.isEmpty {
                logger.warning("stale feeds", metadata: ["count": "\(stale.count)", "oldest": "\(stale[0].0)"])
            }
            return stale.map(\.0)
        }
    }
}
