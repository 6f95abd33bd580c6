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
                SELECT \(unescaped: Self.scanJobColumns)
                FROM scanner.scan_jobs
                WHERE tenant_id = \(tenantID) AND registry_id = \(registryID) AND digest = ANY(\(digests)::text[])
                  AND trigger <> 'reevaluation'
                  AND (\(since)::timestamptz IS NULL OR finished_at IS NULL OR finished_at >= \(since))
                ORDER BY queued_at, id LIMIT 1000
                """, logger: logger)
            return try await Self.scanJobs(from: rows)
        }
        return .ok(.init(body: .json(.init(items: items))))
    }
}
