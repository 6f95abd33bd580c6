import Foundation
import GantryRuntime
import Logging
import NotificationAPI
import PostgresNIO

/// The scanner's alerts to notification (notification.yaml, "Alert kinds"), each queued in the outbox
/// inside the transaction that records its cause, with a message ID that makes a repeat harmless:
/// - `scansFailing`: every failed attempt of a digest's scan, with the count of failures in a row and when
///   the streak began (notification's rules alert at their threshold, once per streak);
/// - `registryUnreachable`: a scan that could not reach its registry (once per episode: `since`);
/// - a successful scan ends both the digest's streak and its registry's episode.
///
/// Both tables carry the job's `tenant_id` (row-level security, migration 6); every function runs inside the
/// job's tenant transaction.
enum AlertSignals {
    /// Notification's limit on `messageId`.
    static let maxMessageID = 200

    /// Records a failed attempt and queues `scansFailing` (and `registryUnreachable` when the registry
    /// could not be reached). `registryHost` nil (discovery did not answer): the failure is not the
    /// image's, so only the streak is recorded.
    static func recordFailure(_ job: ScanJob, failure: ScanFailure, registryHost: String?, outbox: Outbox,
                              on connection: PostgresConnection, logger: Logger) async throws {
        let reason = String(failure.description.prefix(1000))
        let rows = try await connection.query("""
            INSERT INTO scanner.scan_failure_streaks AS s (tenant_id, registry_id, repository, digest, since, failures, last_error)
            VALUES (\(job.tenantID), \(job.registryID), \(job.repository), \(job.digest), now(), 1, \(reason))
            ON CONFLICT (registry_id, repository, digest) DO UPDATE SET failures = s.failures + 1, last_error = EXCLUDED.last_error
            RETURNING since, failures
            """, logger: logger)
        var streak: (since: Date, failures: Int)?
        for try await row in rows.decode((Date, Int).self) { streak = row }
        guard let registryHost, let streak else { return }
        let tenant = job.tenantID.uuidString.lowercased(), subscription = job.subscriptionID.uuidString.lowercased()
        let failing = NotificationAPI.Components.Schemas.Alert(
            messageId: "alert:scans-failing:\(job.id.uuidString.lowercased()):\(job.attempt)", tenantId: tenant,
            subscriptionId: subscription, kind: .scansFailing, imageDigest: job.digest, repositoryName: job.repository,
            registryHost: registryHost,
            summary: "\(streak.failures) scan attempt\(streak.failures == 1 ? "" : "s") in a row failed for \(registryHost)/\(job.repository)@\(job.digest)",
            since: streak.since, consecutiveFailures: streak.failures, detail: reason)
        try await outbox.enqueue(failing, messageID: failing.messageId, to: .notification, path: "/internal/v1/alerts",
                                 on: connection, logger: logger)
        guard case .unreachable = failure else { return }
        let episodes = try await connection.query("""
            INSERT INTO scanner.unreachable_registries AS u (tenant_id, registry_id, since, last_error)
            VALUES (\(job.tenantID), \(job.registryID), now(), \(reason))
            ON CONFLICT (registry_id) DO UPDATE SET last_error = EXCLUDED.last_error
            RETURNING since
            """, logger: logger)
        var since = Date()
        for try await value in episodes.decode(Date.self) { since = value }
        // One message per registry, episode and subscription: the outbox keeps the first.
        let episode = Int64((since.timeIntervalSince1970 * 1000).rounded())
        let unreachable = NotificationAPI.Components.Schemas.Alert(
            messageId: "alert:registry-unreachable:\(job.registryID.uuidString.lowercased()):\(episode):\(subscription)",
            tenantId: tenant, subscriptionId: subscription, kind: .registryUnreachable, registryHost: registryHost,
            summary: "registry \(registryHost) cannot be reached by the scanner", since: since, detail: reason)
        try await outbox.enqueue(unreachable, messageID: unreachable.messageId, to: .notification,
                                 path: "/internal/v1/alerts", on: connection, logger: logger)
    }

    /// A scan succeeded: the digest's failing streak and its registry's unreachable episode are over.
    static func recordSuccess(_ job: ScanJob, on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query("""
            DELETE FROM scanner.scan_failure_streaks
            WHERE registry_id = \(job.registryID) AND repository = \(job.repository) AND digest = \(job.digest)
            """, logger: logger)
        try await connection.query("DELETE FROM scanner.unreachable_registries WHERE registry_id = \(job.registryID)",
                                   logger: logger)
    }
}
