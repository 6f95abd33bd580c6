import Foundation
import GantryRuntime
import Logging
import PostgresNIO
import ServiceLifecycle

/// The recently-pulled rescan (the seed product: "weekly for images pulled in the last 30 days"): every
/// `interval`, a scan request with trigger `rescan` (never billed) for every image, not deleted, whose
/// last pull is within `pulledWithin`, in a registry whose subscription's plan is enabled.
///
/// The schedule is a row (`rescan_schedule`), taken with `FOR UPDATE SKIP LOCKED`, so one replica runs
/// each occurrence and a restart neither skips nor repeats one. The requests are written to the outbox
/// in one statement; the scanner's queue orders them after pushes and imports and limits each registry.
/// It spans every tenant's images, so it runs under `withSystemAccess` (row-level security, migration 5).
struct RescanScheduler: Service {
    static let scheduleName = "recently-pulled"

    let runtime: ServiceRuntime
    let directory: RegistryDirectory
    /// `GANTRY_RESCAN_INTERVAL_SECONDS`, default one week.
    var interval: Duration
    /// `GANTRY_RESCAN_PULLED_WITHIN_DAYS`, default 30.
    var pulledWithinDays: Int
    /// How often to look whether a run is due.
    var checkInterval: Duration = .seconds(30)

    /// One run's summary.
    struct Run: Sendable {
        var id: UUID
        var reason: String
        var startedAt: Date
        var pulledSince: Date
        var images: Int
    }

    func run() async throws {
        // Bounded, as the event processor: a statement caught by a database restart may never answer.
        await PollingLoop.run(name: "rescan scheduler", readiness: runtime.readiness, interval: min(checkInterval, interval),
                              passLimit: .seconds(120), logger: runtime.logger) {
            _ = try await runIfDue()
            return false
        }
    }

    /// Creates the schedule row on first start; pulls a far-away next run closer when the interval was shortened.
    func ensureSchedule() async throws {
        let seconds = Double(interval.components.seconds)
        try await runtime.database.withSystemAccess(logger: runtime.logger) { connection in
            try await connection.query("""
                INSERT INTO ingestion.rescan_schedule (name, next_run_at)
                VALUES (\(Self.scheduleName), now() + make_interval(secs => \(seconds)))
                ON CONFLICT (name) DO UPDATE SET next_run_at = least(rescan_schedule.next_run_at, EXCLUDED.next_run_at)
                """, logger: runtime.logger)
        }
    }

    /// Runs the rescan when the schedule says it is due; returns the run, or nil when it was not due
    /// (or another replica holds the schedule).
    func runIfDue() async throws -> Run? {
        try await ensureSchedule()
        let enabled = try await enabledRegistries()
        let seconds = Double(interval.components.seconds)
        return try await runtime.database.withSystemAccess(logger: runtime.logger) { connection -> Run? in
            let due = try await connection.query("""
                SELECT 1 FROM ingestion.rescan_schedule WHERE name = \(Self.scheduleName) AND next_run_at <= now()
                FOR UPDATE SKIP LOCKED
                """, logger: runtime.logger)
            var isDue = false
            for try await _ in due { isDue = true }
            guard isDue else { return nil }
            let run = try await requestRescans(reason: "schedule", enabledRegistries: enabled, connection: connection)
            try await connection.query("""
                UPDATE ingestion.rescan_schedule SET next_run_at = now() + make_interval(secs => \(seconds))
                WHERE name = \(Self.scheduleName)
                """, logger: runtime.logger)
            return run
        }
    }

    /// Runs the rescan now (operator request), leaving the schedule as it is.
    func runNow() async throws -> Run {
        let enabled = try await enabledRegistries()
        return try await runtime.database.withSystemAccess(logger: runtime.logger) { connection in
            try await requestRescans(reason: "request", enabledRegistries: enabled, connection: connection)
        }
    }

    /// Registries with recently pulled images whose plan is enabled (asked of discovery, cached).
    private func enabledRegistries() async throws -> [UUID] {
        let days = pulledWithinDays
        let candidates = try await runtime.database.withSystemAccess(logger: runtime.logger) { connection in
            let rows = try await connection.query("""
                SELECT DISTINCT registry_id FROM ingestion.images
                WHERE deleted_at IS NULL AND last_pulled_at >= now() - make_interval(days => \(days)::int)
                """, logger: runtime.logger)
            var ids: [UUID] = []
            for try await id in rows.decode(UUID.self) { ids.append(id) }
            return ids
        }
        var enabled: [UUID] = []
        for id in candidates {
            if let registration = try await directory.registration(id: id), registration.registry.planEnabled {
                enabled.append(id)
            }
        }
        return enabled
    }

    /// Writes one scan request per recently pulled image into the outbox (one statement) and records the run.
    private func requestRescans(reason: String, enabledRegistries: [UUID], connection: PostgresConnection) async throws -> Run {
        let runID = UUID()
        let runText = runID.uuidString.lowercased()
        let days = pulledWithinDays
        let logger = runtime.logger
        // JSON built by PostgreSQL (json_build_object) in the ScanRequest shape of scanner.yaml; the message
        // ID is the run's plus a hash of the image, so a retried run cannot queue an image twice.
        let inserted = try await connection.query("""
            WITH since AS (SELECT now() - make_interval(days => \(days)::int) AS at),
            chosen AS (
              SELECT i.*, 'rescan:' || \(runText) || ':' || md5(i.registry_id::text || '/' || i.repository || '@' || i.digest) AS mid
              FROM ingestion.images i, since
              WHERE i.deleted_at IS NULL AND i.last_pulled_at >= since.at AND i.registry_id = ANY(\(enabledRegistries)::uuid[])
            ),
            queued AS (
              INSERT INTO ingestion.outbox (message_id, destination, path, payload)
              SELECT mid, 'scanner', '/internal/v1/scans', json_build_object(
                'messageId', mid, 'tenantId', tenant_id::text, 'subscriptionId', subscription_id::text,
                'registryId', registry_id::text, 'repository', repository, 'digest', digest, 'trigger', 'rescan')::text
              FROM chosen ORDER BY registry_id, repository, digest
              ON CONFLICT (message_id) DO NOTHING
              RETURNING 1
            )
            SELECT (SELECT count(*) FROM queued)::int, (SELECT at FROM since)
            """, logger: logger)
        var images = 0
        var pulledSince = Date()
        for try await (count, since) in inserted.decode((Int, Date).self) { (images, pulledSince) = (count, since) }
        let startedAt = Date()
        try await connection.query("""
            INSERT INTO ingestion.rescan_runs (id, reason, started_at, pulled_since, images)
            VALUES (\(runID), \(reason), \(startedAt), \(pulledSince), \(images))
            """, logger: logger)
        logger.info("recently-pulled rescan requested", metadata: [
            "run": "\(runText)", "reason": "\(reason)", "images": "\(images)", "pulled_within_days": "\(days)"])
        return Run(id: runID, reason: reason, startedAt: startedAt, pulledSince: pulledSince, images: images)
    }
}
