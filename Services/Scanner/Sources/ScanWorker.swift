import BillingAPI
import DiscoveryAPI
import FindingsPolicyAPI
import Foundation
import GantryModel
import GantryRuntime
import Logging
import PostgresNIO
import ServiceLifecycle

/// Takes scan jobs from `scanner.scan_jobs` (`FOR UPDATE SKIP LOCKED`), holds a renewed lease while scanning,
/// and commits the outcome, the inventory and the messages to findings-policy and billing in one transaction,
/// only while it still owns the job, so a job whose lease expired and was taken over cannot complete twice.
///
/// The queue (ARCHITECTURE.md, "Work queues"; settings in `ScanQueueSettings`):
/// - order: priority (push and import, then manual, then rescan), then age;
/// - per-registry limits: at most `registryConcurrency` running scans and `registryRatePerMinute` starts
///   per minute per registry, checked under a per-registry advisory lock so replicas cannot overshoot;
///   a registry at its limit does not hold up others;
/// - retries: transient failures (registry 5xx/429, network, discovery down) are retried with exponential
///   backoff and jitter until `maxAttempts`, then the job is dead-lettered (`dead`, with the reason);
///   permanent ones (digest mismatch, unreadable layer) fail at once;
/// - deadline: a job not finished by its deadline is dead-lettered, whatever attempt it is on; a scan
///   running past it is cancelled;
/// - a job whose image was deleted meanwhile is `cancelled` and reports nothing.
///
/// Row-level security: choosing the next job and dead-lettering expired ones look across tenants
/// (`withSystemAccess`); everything done for one job (lease, outcome, failure) runs in its tenant (`withTenant`).
struct ScanWorker: Service {
    let runtime: ServiceRuntime
    let scanner: ImageScanner
    let discovery: any DiscoveryPeer
    var settings = ScanQueueSettings()
    var pollInterval: Duration = .milliseconds(200)

    func run() async throws {
        await PollingLoop.run(name: "scan worker", readiness: runtime.readiness, interval: pollInterval,
                              logger: runtime.logger) {
            if try await expireDeadlines() > 0 { return true }
            guard let job = try await claim() else { return false }
            await process(job)
            return true
        }
    }

    /// Dead-letters jobs past their deadline that nobody is working on (queued, or running with an
    /// expired lease); returns how many.
    @discardableResult
    func expireDeadlines() async throws -> Int {
        let logger = runtime.logger
        return try await runtime.database.withSystemAccess(logger: logger) { connection in
            let rows = try await connection.query("""
                UPDATE scanner.scan_jobs
                SET status = 'dead', finished_at = now(), lease_until = NULL,
                    error = 'deadline exceeded: not finished by ' || to_char(deadline_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
                            || ' after ' || attempts || ' attempt(s)' || COALESCE('; last error: ' || error, '')
                WHERE status IN ('queued', 'running') AND deadline_at <= now()
                  AND (status = 'queued' OR lease_until < now())
                RETURNING id
                """, logger: logger)
            var count = 0
            for try await _ in rows { count += 1 }
            return count
        }
    }

    /// Claims the next due job (queued and due, or running with an expired lease: its worker died) of a
    /// registry below its limits; nil when there is none.
    func claim() async throws -> ScanJob? {
        let seconds = Double(settings.lease.components.seconds)
        let concurrency = settings.registryConcurrency
        let rate = settings.registryRatePerMinute
        let logger = runtime.logger
        return try await runtime.database.withSystemAccess(logger: logger) { connection -> ScanJob? in
            // Registries at a limit are skipped here (a hint, without locks) …
            let candidates = try await connection.query("""
                WITH running AS (
                  SELECT registry_id, count(*) AS n FROM scanner.scan_jobs
                  WHERE status = 'running' AND lease_until >= now() GROUP BY registry_id),
                recent AS (
                  SELECT registry_id, count(*) AS n FROM scanner.scan_jobs
                  WHERE claimed_at > now() - interval '1 minute' GROUP BY registry_id)
                SELECT j.id, j.registry_id FROM scanner.scan_jobs j
                LEFT JOIN running r ON r.registry_id = j.registry_id
                LEFT JOIN recent c ON c.registry_id = j.registry_id
                WHERE ((j.status = 'queued' AND j.next_attempt_at <= now()) OR (j.status = 'running' AND j.lease_until < now()))
                  AND COALESCE(r.n, 0) < \(concurrency) AND COALESCE(c.n, 0) < \(rate)
                ORDER BY j.priority, j.queued_at LIMIT 1
                FOR UPDATE OF j SKIP LOCKED
                """, logger: logger)
            var candidate: (UUID, UUID)?
            for try await row in candidates.decode((UUID, UUID).self) { candidate = row }
            guard let (jobID, registryID) = candidate else { return nil }
            // … and checked again under the registry's lock, which serialises claims for one registry across
            // workers and replicas: each sees the claims committed before it.
            try await connection.query(
                "SELECT pg_advisory_xact_lock(hashtext('gantry.scan.registry.' || \(registryID.uuidString.lowercased())))",
                logger: logger)
            let counts = try await connection.query("""
                SELECT (SELECT count(*) FROM scanner.scan_jobs WHERE registry_id = \(registryID) AND status = 'running'
                          AND lease_until >= now() AND id <> \(jobID))::int,
                       (SELECT count(*) FROM scanner.scan_jobs WHERE registry_id = \(registryID)
                          AND claimed_at > now() - interval '1 minute')::int
                """, logger: logger)
            for try await (running, recent) in counts.decode((Int, Int).self) where running >= concurrency || recent >= rate {
                return nil
            }
            let rows = try await connection.query("""
                UPDATE scanner.scan_jobs SET status = 'running', attempts = attempts + 1, claimed_at = now(),
                  lease_until = now() + make_interval(secs => \(seconds)), started_at = COALESCE(started_at, now())
                WHERE id = \(jobID)
                RETURNING id, tenant_id, subscription_id, registry_id, repository, digest, tag, trigger, attempts, max_attempts,
                          queued_at, deadline_at
                """, logger: logger)
            for try await (id, tenant, subscription, registry, repository, digest, tag, trigger, attempts, maxAttempts, queued, deadline)
                in rows.decode((UUID, UUID, UUID, UUID, String, String, String?, String, Int, Int, Date, Date).self) {
                return ScanJob(id: id, tenantID: tenant, subscriptionID: subscription, registryID: registry,
                               repository: repository, digest: digest, tag: tag, trigger: trigger, attempt: attempts,
                               maxAttempts: maxAttempts, queuedAt: queued, deadline: deadline)
            }
            return nil
        }
    }

    func process(_ job: ScanJob) async {
        let logger = runtime.logger
        let started = ContinuousClock.now
        let lease = settings.lease
        let heartbeat = Task {
            while !Task.isCancelled {
                try await Task.sleep(for: lease / 3)
                try await renewLease(job)
            }
        }
        defer { heartbeat.cancel() }
        // Known once discovery answered: the image's registry host, for the failure alerts.
        let host = HostBox()
        do {
            // What the findings will reflect: read before matching, so an update committed during the scan
            // is re-evaluated afterwards (Reevaluator).
            let operation = try await InventoryIndex.latestOperation(runtime.database, logger: logger)
            let outcome = try await Self.withDeadline(job.deadline) { try await scan(job, host: host) }
            let committed = try await complete(job, outcome: outcome, operation: operation)
            logger.info("scan finished", metadata: [
                "job": "\(job.id)", "digest": "\(job.digest)", "committed": "\(committed)",
                "duration_ms": "\((ContinuousClock.now - started).milliseconds)"])
        } catch let failure as ScanFailure {
            await fail(job, failure: failure, registryHost: host.value)
        } catch is DeadlineExceeded {
            await fail(job, failure: .permanent("deadline exceeded: the scan was still running at the job's deadline (GANTRY_SCAN_DEADLINE_SECONDS)"),
                       dead: true, registryHost: host.value)
        } catch {
            if Task.isCancelled { return }  // Shutting down: the lease expires and the job is taken again.
            await fail(job, failure: .transient("\(error)"), registryHost: host.value)
        }
    }

    /// Runs `body`, cancelling it at `deadline`.
    /// - Throws: `DeadlineExceeded` when the deadline came first; otherwise what `body` throws.
    static func withDeadline<T: Sendable>(_ deadline: Date, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        let remaining = deadline.timeIntervalSinceNow
        guard remaining > 0 else { throw DeadlineExceeded() }
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: .milliseconds(Int64(remaining * 1000)))
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let value = first else { throw DeadlineExceeded() }
            return value
        }
    }

    /// Scans the job's image; returns the outcome and the registry's login server.
    private func scan(_ job: ScanJob, host: HostBox) async throws -> (ScanOutcome, String) {
        let digest: Digest
        do { digest = try Digest(parsing: job.digest) } catch { throw ScanFailure.permanent("\(error)") }
        let access: RegistryAccess?
        do { access = try await discovery.registryAccess(job.registryID) } catch {
            throw ScanFailure.transient("discovery is unreachable: \(error)")
        }
        guard let access else { throw ScanFailure.permanent("registry \(job.registryID.uuidString.lowercased()) is no longer registered") }
        host.value = access.loginServer
        guard access.planEnabled else {
            throw ScanFailure.permanent("the subscription's plan is disabled; the image is not scanned")
        }
        return (try await scanner.scan(endpoint: access.endpoint, repository: job.repository, digest: digest),
                access.loginServer)
    }

    private func renewLease(_ job: ScanJob) async throws {
        let seconds = Double(settings.lease.components.seconds)
        let logger = runtime.logger
        try await runtime.database.withTenant(job.tenantID, logger: logger) { connection in
            _ = try await connection.query("""
                UPDATE scanner.scan_jobs SET lease_until = now() + make_interval(secs => \(seconds))
                WHERE id = \(job.id) AND status = 'running' AND attempts = \(job.attempt)
                """, logger: logger)
        }
    }

    /// Commits the outcome; returns false when the job was taken over (lease lost) and nothing was written.
    /// A job whose image was deleted while it ran is cancelled instead, and reports nothing.
    private func complete(_ job: ScanJob, outcome: (ScanOutcome, String), operation: Int64) async throws -> Bool {
        let (outcome, registryHost) = outcome
        let logger = runtime.logger
        let outbox = runtime.outbox
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return try await runtime.database.withTenant(job.tenantID, logger: logger) { connection in
            let deleted = try await connection.query("""
                SELECT 1 FROM scanner.deleted_images
                WHERE registry_id = \(job.registryID) AND repository = \(job.repository) AND digest = \(job.digest)
                """, logger: logger)
            var isDeleted = false
            for try await _ in deleted { isDeleted = true }
            if isDeleted {
                let cancelled = try await connection.query("""
                    UPDATE scanner.scan_jobs SET status = 'cancelled', finished_at = now(), lease_until = NULL,
                      error = 'the image was deleted from the registry while it was being scanned'
                    WHERE id = \(job.id) AND status = 'running' AND attempts = \(job.attempt) RETURNING id
                    """, logger: logger)
                for try await _ in cancelled { return true }
                return false
            }
            let (outcomeName, findingCount): (String, Int) = switch outcome {
            case .assessed(_, _, let findings, _): ("assessed", findings.count)
            case .notApplicable: ("notApplicable", 0)
            }
            let owned = try await connection.query("""
                UPDATE scanner.scan_jobs SET status = 'succeeded', finished_at = now(), lease_until = NULL, error = NULL,
                  outcome = \(outcomeName), findings = \(findingCount), kb_operation = \(operation)
                WHERE id = \(job.id) AND status = 'running' AND attempts = \(job.attempt) RETURNING id
                """, logger: logger)
            var stillOwned = false
            for try await _ in owned { stillOwned = true }
            guard stillOwned else { return false }
            try await AlertSignals.recordSuccess(job, on: connection, logger: logger)
            let now = Date()
            var report = FindingsPolicyAPI.Components.Schemas.ScanReport(
                messageId: "report:\(job.id.uuidString.lowercased())", scanId: job.id.uuidString.lowercased(),
                tenantId: job.tenantID.uuidString.lowercased(), subscriptionId: job.subscriptionID.uuidString.lowercased(),
                registryId: job.registryID.uuidString.lowercased(), registryHost: registryHost, repository: job.repository,
                digest: job.digest, tag: job.tag, scannedAt: now, outcome: .assessed, findings: [], notes: [])
            switch outcome {
            case .assessed(let manifestDigest, let inventory, let findings, let namespace):
                report.operatingSystem = inventory.operatingSystem.map { .init(id: $0.id, versionId: $0.versionID, prettyName: $0.prettyName) }
                report.findings = findings.map(Self.finding)
                report.notes = inventory.notes
                try await connection.query("""
                    INSERT INTO scanner.inventories (scan_id, tenant_id, registry_id, repository, digest, manifest_digest,
                      inventory, findings, namespace, registry_host, kb_operation, evaluated_at)
                    VALUES (\(job.id), \(job.tenantID), \(job.registryID), \(job.repository), \(job.digest),
                      \(manifestDigest.description), \(String(decoding: try encoder.encode(inventory), as: UTF8.self)),
                      \(String(decoding: try encoder.encode(findings), as: UTF8.self)), \(namespace), \(registryHost),
                      \(operation), now())
                    """, logger: logger)
                try await InventoryIndex.store(scanID: job.id, inventory: inventory, on: connection, logger: logger)
                // Only an assessed image is billable; billing charges each (subscription, digest) once.
                let usage = BillingAPI.Components.Schemas.ScanUsage(
                    messageId: "usage:\(job.id.uuidString.lowercased())", tenantId: report.tenantId,
                    subscriptionId: report.subscriptionId, registryId: report.registryId, registryHost: registryHost,
                    digest: job.digest, scanId: report.scanId, trigger: .init(rawValue: job.trigger) ?? .push,
                    scannedAt: now)
                try await outbox.enqueue(usage, messageID: usage.messageId, to: .billing, path: "/internal/v1/usage",
                                         on: connection, logger: logger)
            case .notApplicable(let reason, let manifestDigest, let inventory, let notes):
                report.outcome = .notApplicable
                report.notApplicableReason = reason.rawValue
                report.notes = notes
                // Discovery lists every digest's supportability; some cases (scratch) are known only now.
                if let classification = Self.classification(reason) {
                    let message = DiscoveryAPI.Components.Schemas.ClassificationReport(
                        repository: job.repository, digest: job.digest, classification: classification,
                        reason: String((notes.first ?? reason.rawValue).prefix(2000)))
                    try await outbox.enqueue(message, messageID: "classification:\(job.id.uuidString.lowercased())", to: .discovery,
                                             path: "/internal/v1/registries/\(job.registryID.uuidString.lowercased())/classifications",
                                             on: connection, logger: logger)
                }
                report.operatingSystem = inventory?.operatingSystem.map { .init(id: $0.id, versionId: $0.versionID, prettyName: $0.prettyName) }
                if let inventory {
                    try await connection.query("""
                        INSERT INTO scanner.inventories (scan_id, tenant_id, registry_id, repository, digest, manifest_digest,
                          inventory, findings, namespace, registry_host, kb_operation, evaluated_at)
                        VALUES (\(job.id), \(job.tenantID), \(job.registryID), \(job.repository), \(job.digest),
                          \(manifestDigest?.description ?? job.digest), \(String(decoding: try encoder.encode(inventory), as: UTF8.self)),
                          '[]', NULL, \(registryHost), \(operation), now())
                        """, logger: logger)
                }
            }
            try await outbox.enqueue(report, messageID: report.messageId, to: .findingsPolicy, path: "/internal/v1/reports",
                                     on: connection, logger: logger)
            return true
        }
    }

    /// Records a failure: transient ones are retried with backoff until `maxAttempts` (and while the retry
    /// would start before the deadline), then dead-lettered with the reason; permanent ones fail at once.
    /// Each failure also feeds the `scansFailing` / `registryUnreachable` alerts (`AlertSignals`).
    /// - Parameters:
    ///   - dead: dead-letter whatever the failure (the deadline passed).
    ///   - registryHost: the image's registry login server, when discovery told it.
    func fail(_ job: ScanJob, failure: ScanFailure, dead: Bool = false, registryHost: String? = nil) async {
        let delay = settings.retryDelay(afterAttempt: job.attempt)
        let beforeDeadline = Date().addingTimeInterval(delay) < job.deadline
        let retry = !dead && failure.isTransient && job.attempt < job.maxAttempts && beforeDeadline
        let status = retry ? "queued" : (failure.isTransient || dead ? "dead" : "failed")
        var reason = failure.description
        if status == "dead" && !dead {
            reason = beforeDeadline
                ? "dead-lettered after \(job.attempt) attempt(s): \(failure)"
                : "dead-lettered: a retry would start after the job's deadline; after \(job.attempt) attempt(s): \(failure)"
        }
        runtime.logger.warning("scan failed", metadata: [
            "job": "\(job.id)", "digest": "\(job.digest)", "status": "\(status)", "attempt": "\(job.attempt)",
            "reason": "\(reason)"])
        let logger = runtime.logger, outbox = runtime.outbox
        do {
            try await runtime.database.withTenant(job.tenantID, logger: logger) { connection in
                let updated = try await connection.query("""
                    UPDATE scanner.scan_jobs SET status = \(status), error = \(reason), lease_until = NULL,
                      next_attempt_at = now() + make_interval(secs => \(delay)),
                      finished_at = CASE WHEN \(retry) THEN NULL ELSE now() END
                    WHERE id = \(job.id) AND status = 'running' AND attempts = \(job.attempt) RETURNING id
                    """, logger: logger)
                var owned = false
                for try await _ in updated { owned = true }
                // Only the worker that still owned the attempt counts it, so a taken-over job counts once.
                if owned {
                    try await AlertSignals.recordFailure(job, failure: failure, registryHost: registryHost, outbox: outbox,
                                                         on: connection, logger: logger)
                }
            }
        } catch {
            // The lease expires and another pass retries the job.
            runtime.logger.error("could not record scan failure", metadata: ["job": "\(job.id)", "error": "\(error)"])
        }
    }

    static func finding(_ finding: VulnerabilityFinding) -> FindingsPolicyAPI.Components.Schemas.Finding {
        .init(vulnerabilityId: finding.vulnerabilityID, cves: finding.cves, packageName: finding.packageName,
              sourceName: finding.sourceName, installedVersion: finding.installedVersion, fixedVersion: finding.fixedVersion,
              severity: .init(rawValue: finding.severity.rawValue) ?? .unknown, patchable: finding.patchable,
              source: finding.source, fixState: finding.fixState.flatMap { .init(rawValue: $0) },
              statement: finding.statement, namespace: finding.namespace, ecosystem: finding.ecosystem, purl: finding.purl,
              aliases: finding.aliases, title: finding.title, description: finding.description,
              cvssV3Score: finding.cvssV3Score, cvssV3Vector: finding.cvssV3Vector, cvssV4Score: finding.cvssV4Score,
              cvssV4Vector: finding.cvssV4Vector, severitySource: finding.severitySource,
              knownExploited: finding.knownExploited, epss: finding.epss, epssPercentile: finding.epssPercentile,
              links: finding.links, published: finding.published)
    }
}

/// A job's deadline passed while its scan ran.
struct DeadlineExceeded: Error {}

extension ScanFailure {
    var isTransient: Bool {
        switch self {
        case .transient, .unreachable: true
        case .permanent: false
        }
    }
}

extension Duration {
    /// Whole milliseconds.
    var milliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
}

extension ScanWorker {
    /// Discovery's supportability class for a not-applicable outcome; nil for an unsupported OS, which
    /// discovery does not classify.
    static func classification(_ reason: NotApplicableReason) -> DiscoveryAPI.Components.Schemas.Classification? {
        switch reason {
        case .windowsImage: .windows
        case .noPackageDatabase: .noPackageDatabase
        case .unsupportedManifest: .unsupportedManifest
        case .notAnImage: .notAnImage
        case .unsupportedOperatingSystem: nil
        }
    }
}

/// The registry host a scan learned from discovery, read by the failure path after the scan task ended.
final class HostBox: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: String?
    var value: String? {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}
