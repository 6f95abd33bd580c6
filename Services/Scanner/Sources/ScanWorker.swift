import BillingAPI
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
struct ScanWorker: Service {
    let runtime: ServiceRuntime
    let scanner: ImageScanner
    let discovery: any DiscoveryPeer
    var pollInterval: Duration = .milliseconds(200)
    /// Lease length; renewed every third of it while a scan runs.
    var lease: Duration = .seconds(60)

    func run() async throws {
        await PollingLoop.run(name: "scan worker", readiness: runtime.readiness, interval: pollInterval,
                              logger: runtime.logger) {
            guard let job = try await claim() else { return false }
            await process(job)
            return true
        }
    }

    /// Claims the next due job: queued and due, or running with an expired lease (its worker died).
    func claim() async throws -> ScanJob? {
        let seconds = Double(lease.components.seconds)
        let rows = try await runtime.database.query("""
            UPDATE scanner.scan_jobs SET status = 'running', attempts = attempts + 1,
              lease_until = now() + make_interval(secs => \(seconds)), started_at = COALESCE(started_at, now())
            WHERE id = (
              SELECT id FROM scanner.scan_jobs
              WHERE (status = 'queued' AND next_attempt_at <= now()) OR (status = 'running' AND lease_until < now())
              ORDER BY priority, queued_at LIMIT 1 FOR UPDATE SKIP LOCKED)
            RETURNING id, tenant_id, subscription_id, registry_id, repository, digest, tag, trigger, attempts, max_attempts
            """, logger: runtime.logger)
        for try await (id, tenant, subscription, registry, repository, digest, tag, trigger, attempts, maxAttempts) in rows.decode(
            (UUID, UUID, UUID, UUID, String, String, String?, String, Int, Int).self) {
            return ScanJob(id: id, tenantID: tenant, subscriptionID: subscription, registryID: registry,
                           repository: repository, digest: digest, tag: tag, trigger: trigger, attempt: attempts,
                           maxAttempts: maxAttempts)
        }
        return nil
    }

    func process(_ job: ScanJob) async {
        let logger = runtime.logger
        let started = ContinuousClock.now
        let heartbeat = Task {
            while !Task.isCancelled {
                try await Task.sleep(for: lease / 3)
                try await renewLease(job)
            }
        }
        defer { heartbeat.cancel() }
        do {
            let outcome = try await scan(job)
            let committed = try await complete(job, outcome: outcome)
            logger.info("scan finished", metadata: [
                "job": "\(job.id)", "digest": "\(job.digest)", "committed": "\(committed)",
                "duration_ms": "\((ContinuousClock.now - started).milliseconds)"])
        } catch let failure as ScanFailure {
            await fail(job, failure: failure)
        } catch {
            await fail(job, failure: .transient("\(error)"))
        }
    }

    /// Scans the job's image; returns the outcome and the registry's login server.
    private func scan(_ job: ScanJob) async throws -> (ScanOutcome, String) {
        let digest: Digest
        do { digest = try Digest(parsing: job.digest) } catch { throw ScanFailure.permanent("\(error)") }
        let access: RegistryAccess?
        do { access = try await discovery.registryAccess(job.registryID) } catch {
            throw ScanFailure.transient("discovery is unreachable: \(error)")
        }
        guard let access else { throw ScanFailure.permanent("registry \(job.registryID) is no longer registered") }
        guard access.planEnabled else {
            throw ScanFailure.permanent("the subscription's plan is disabled; the image is not scanned")
        }
        return (try await scanner.scan(endpoint: access.endpoint, repository: job.repository, digest: digest),
                access.loginServer)
    }

    private func renewLease(_ job: ScanJob) async throws {
        let seconds = Double(lease.components.seconds)
        try await runtime.database.query("""
            UPDATE scanner.scan_jobs SET lease_until = now() + make_interval(secs => \(seconds))
            WHERE id = \(job.id) AND status = 'running' AND attempts = \(job.attempt)
            """, logger: runtime.logger)
    }

    /// Commits the outcome; returns false when the job was taken over (lease lost) and nothing was written.
    private func complete(_ job: ScanJob, outcome: (ScanOutcome, String)) async throws -> Bool {
        let (outcome, registryHost) = outcome
        let logger = runtime.logger
        let outbox = runtime.outbox
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return try await runtime.database.withTransaction(logger: logger) { connection in
            let owned = try await connection.query("""
                UPDATE scanner.scan_jobs SET status = 'succeeded', finished_at = now(), lease_until = NULL, error = NULL
                WHERE id = \(job.id) AND status = 'running' AND attempts = \(job.attempt) RETURNING id
                """, logger: logger)
            var stillOwned = false
            for try await _ in owned { stillOwned = true }
            guard stillOwned else { return false }
            let now = Date()
            var report = FindingsPolicyAPI.Components.Schemas.ScanReport(
                messageId: "report:\(job.id.uuidString.lowercased())", scanId: job.id.uuidString.lowercased(),
                tenantId: job.tenantID.uuidString.lowercased(), subscriptionId: job.subscriptionID.uuidString.lowercased(),
                registryId: job.registryID.uuidString.lowercased(), registryHost: registryHost, repository: job.repository,
                digest: job.digest, scannedAt: now, outcome: .assessed, findings: [], notes: [])
            switch outcome {
            case .assessed(let manifestDigest, let inventory, let findings, let namespace):
                report.operatingSystem = inventory.operatingSystem.map { .init(id: $0.id, versionId: $0.versionID, prettyName: $0.prettyName) }
                report.findings = findings.map(Self.finding)
                report.notes = inventory.notes
                try await connection.query("""
                    INSERT INTO scanner.inventories (scan_id, tenant_id, registry_id, repository, digest, manifest_digest,
                      inventory, findings, namespace)
                    VALUES (\(job.id), \(job.tenantID), \(job.registryID), \(job.repository), \(job.digest),
                      \(manifestDigest.description), \(String(decoding: try encoder.encode(inventory), as: UTF8.self)),
                      \(String(decoding: try encoder.encode(findings), as: UTF8.self)), \(namespace))
                    """, logger: logger)
                // Only an assessed image is billable; billing charges each (subscription, digest) once.
                let usage = BillingAPI.Components.Schemas.ScanUsage(
                    messageId: "usage:\(job.id.uuidString.lowercased())", tenantId: report.tenantId,
                    subscriptionId: report.subscriptionId, registryId: report.registryId, digest: job.digest,
                    scanId: report.scanId, trigger: .init(rawValue: job.trigger) ?? .push)
                try await outbox.enqueue(usage, messageID: usage.messageId, to: .billing, path: "/internal/v1/usage",
                                         on: connection, logger: logger)
            case .notApplicable(let reason, let manifestDigest, let inventory, let notes):
                report.outcome = .notApplicable
                report.notApplicableReason = reason.rawValue
                report.notes = notes
                report.operatingSystem = inventory?.operatingSystem.map { .init(id: $0.id, versionId: $0.versionID, prettyName: $0.prettyName) }
                if let inventory {
                    try await connection.query("""
                        INSERT INTO scanner.inventories (scan_id, tenant_id, registry_id, repository, digest, manifest_digest,
                          inventory, findings, namespace)
                        VALUES (\(job.id), \(job.tenantID), \(job.registryID), \(job.repository), \(job.digest),
                          \(manifestDigest?.description ?? job.digest), \(String(decoding: try encoder.encode(inventory), as: UTF8.self)),
                          '[]', NULL)
                        """, logger: logger)
                }
            }
            try await outbox.enqueue(report, messageID: report.messageId, to: .findingsPolicy, path: "/internal/v1/reports",
                                     on: connection, logger: logger)
            return true
        }
    }

    /// Records a failure: transient ones are retried with backoff until `maxAttempts`, then dead-lettered.
    private func fail(_ job: ScanJob, failure: ScanFailure) async {
        let retry: Bool
        if case .transient = failure { retry = job.attempt < job.maxAttempts } else { retry = false }
        let status = retry ? "queued" : (failure.isTransient ? "dead" : "failed")
        let delay = min(300.0, 2.0 * pow(2.0, Double(job.attempt - 1))) * Double.random(in: 0.8...1.2)
        runtime.logger.warning("scan failed", metadata: [
            "job": "\(job.id)", "digest": "\(job.digest)", "status": "\(status)", "reason": "\(failure)"])
        do {
            try await runtime.database.query("""
                UPDATE scanner.scan_jobs SET status = \(status), error = \(failure.description), lease_until = NULL,
                  next_attempt_at = now() + make_interval(secs => \(delay)),
                  finished_at = CASE WHEN \(retry) THEN NULL ELSE now() END
                WHERE id = \(job.id) AND status = 'running' AND attempts = \(job.attempt)
                """, logger: runtime.logger)
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

extension ScanFailure {
    var isTransient: Bool {
        if case .transient = self { return true }
        return false
    }
}

extension Duration {
    /// Whole milliseconds.
    var milliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
}
