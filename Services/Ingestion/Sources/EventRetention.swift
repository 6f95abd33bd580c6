import Foundation
import GantryRuntime
import Logging
import PostgresNIO
import ServiceLifecycle

/// Keeps `ingestion.events` from growing without end: every `checkInterval`, processed events received more than
/// `retention` ago are deleted, at most `chunk` per statement (going again at once while full chunks go), so
/// a large backlog of old events never becomes one long transaction. Events not yet processed are kept whatever
/// their age: deleting them would lose them.
///
/// An event's ID is recognised as a duplicate while its row exists: a registry re-sending an event older than
/// the retention period has it recorded again. The events of every tenant are one table, so this runs under
/// `withSystemAccess`.
struct EventRetention: Service {
    let runtime: ServiceRuntime
    /// `GANTRY_EVENT_RETENTION_DAYS`, default 7.
    var retention: Duration
    /// `GANTRY_EVENT_RETENTION_CHECK_SECONDS`, default 3600.
    var checkInterval: Duration
    var chunk = 10_000

    func run() async throws {
        let chunk = self.chunk
        await PollingLoop.run(name: "event retention", readiness: runtime.readiness, interval: checkInterval,
                              passLimit: .seconds(120), logger: runtime.logger) {
            try await deleteExpired() >= chunk
        }
    }

    /// Deletes up to `chunk` processed events received before now − `retention`; returns how many.
    @discardableResult
    func deleteExpired() async throws -> Int {
        let logger = runtime.logger
        let seconds = Double(retention.components.seconds)
        let deleted = try await runtime.database.withSystemAccess(logger: logger) { connection in
            let rows = try await connection.query("""
                WITH expired AS (
                  SELECT ctid FROM ingestion.events
                  WHERE received_at < now() - \(seconds)::float8 * interval '1 second' AND processed_at IS NOT NULL
                  LIMIT \(chunk))
                DELETE FROM ingestion.events WHERE ctid IN (SELECT ctid FROM expired)
                RETURNING 1
                """, logger: logger)
            var count = 0
            for try await _ in rows { count += 1 }
            return count
        }
        if deleted > 0 {
            logger.info("expired events deleted", metadata: ["events": "\(deleted)", "retention": "\(retention)"])
        }
        return deleted
    }
}
