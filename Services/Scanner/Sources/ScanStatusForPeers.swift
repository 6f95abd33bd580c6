import Foundation
import GantryModel
import GantryRuntime
import PostgresNIO
import ScannerAPI

extension ScannerAPIImpl {
    /// `GET /internal/v1/tenants/{tenantId}/scans` (scanner.yaml, `listScansForPeer`; service tokens only):
    /// the scan jobs of up to 500 digests of one registry that can answer a scan request made at
    /// `finishedSince` — still queued or running, or finished at or after it — oldest queued first, at most
    /// 1000. Re-evaluations are left out. Ingestion reads its imports' scan status with it.
    ///
    /// - Throws: `ProblemError.badRequest` (400) for a malformed tenant, registry or digest.
    func listScansForPeer(_ input: Operations.ListScansForPeer.Input) async throws -> Operations.ListScansForPeer.Output {
        let tenantID = try Validate.uuid(input.path.tenantId, field: "tenantId")
        let registryID = try Validate.uuid(input.query.registryId, field: "registryId")
        guard (1...500).contains(input.query.digest.count) else {
            throw ProblemError.badRequest("digest must be given 1 to 500 times")
        }
        let digests = try input.query.digest.map { try Validate.digest($0, field: "digest").description }
        let since = input.query.finishedSince
        let logger = runtime.logger
        let items = try await runtime.database.withTenant(tenantID, logger: logger) { connection in
            let rows = try await connection.query("""
                SELECT id, repository, digest, tag, trigger, status, outcome, attempts, max_attempts, error, queued_at,
                       started_at, finished_at, CASE WHEN status = 'queued' THEN next_attempt_at END, deadline_at, findings,
                       kb_operation
                FROM scanner.scan_jobs
                WHERE tenant_id = \(tenantID) AND registry_id = \(registryID) AND digest = ANY(\(digests)::text[])
                  AND trigger <> 'reevaluation'
                  AND (\(since)::timestamptz IS NULL OR finished_at IS NULL OR finished_at >= \(since))
                ORDER BY queued_at, id LIMIT 1000
                """, logger: logger)
            var items: [Components.Schemas.ScanJob] = []
            for try await row in rows.decode((UUID, String, String, String?, String, String, String?, Int, Int, String?, Date,
                                              Date?, Date?, Date?, Date, Int?, Int64?).self) {
                let (id, repository, digest, tag, trigger, status, outcome, attempts, maxAttempts, error, queued, started,
                     finished, nextAttempt, deadline, findings, operation) = row
                let duration: Int64? = if let started, let finished {
                    Int64((finished.timeIntervalSince(started) * 1000).rounded())
                } else { nil }
                items.append(.init(
                    jobId: id.uuidString.lowercased(), tenantId: tenantID.uuidString.lowercased(),
                    registryId: registryID.uuidString.lowercased(), repository: repository, digest: digest, tag: tag,
                    trigger: .init(rawValue: trigger) ?? .manual, status: .init(rawValue: status) ?? .queued,
                    outcome: outcome.flatMap { .init(rawValue: $0) }, attempts: attempts, maxAttempts: maxAttempts,
                    error: error, queuedAt: queued, startedAt: started, finishedAt: finished, nextAttemptAt: nextAttempt,
                    deadlineAt: deadline, durationMs: duration, findings: findings, knowledgeBaseOperation: operation))
            }
            return items
        }
        return .ok(.init(body: .json(.init(items: items))))
    }
}
