import Foundation
import GantryRuntime
import IngestionAPI
import Logging
import ScannerAPI

/// The scans an import requested, read from the scanner when the import is shown (issue 5, "Import").
///
/// The scanner emits no events to ingestion (its outbox goes to findings-policy, billing, discovery and
/// notification), so ingestion stores no scan state: `GET …/imports[/{id}]` asks the scanner's
/// `GET /internal/v1/tenants/{tenantId}/scans` (service token) for the jobs of the imported platform digests
/// and merges them into the answer. The import's own states (queued, copying, failed, and done without a scan)
/// come from `ingestion.imports` alone and never depend on the scanner; when the scanner cannot be reached
/// the job shows `scanRequested` with `scanStatusError`.
struct ImportScans: Sendable {
    /// A stored job's scan question: which digests, since when.
    struct Request: Sendable {
        var registryID: UUID
        var digests: [String]
        /// When the import requested the scans (the job's `finished_at`).
        var requestedAt: Date
    }

    let runtime: ServiceRuntime
    /// How long a listing waits for the scanner before showing the jobs without scan state.
    var timeout: Duration = .seconds(5)

    /// The scanner's jobs for `requests` (one call per registry), or the reason they could not be read.
    func jobs(tenantID: UUID, _ requests: [Request]) async -> Result<[ScannerScanJob], ImportScanError> {
        guard !requests.isEmpty else { return .success([]) }
        let (url, transport, middlewares) = runtime.peerClientParts(.scanner)
        let client = ScannerAPI.Client(serverURL: url, transport: transport, middlewares: middlewares)
        let byRegistry = Dictionary(grouping: requests, by: \.registryID)
        var jobs: [ScannerScanJob] = []
        let refusal: ImportScanError
        do {
            for (registryID, group) in byRegistry {
                let digests = Array(Set(group.flatMap(\.digests))).sorted()
                let since = group.map(\.requestedAt).min()
                // At most 500 digests per call (the scanner's limit).
                for start in stride(from: 0, to: digests.count, by: 500) {
                    let query = ScannerAPI.Operations.ListScansForPeer.Input.Query(
                        registryId: registryID.uuidString.lowercased(),
                        digest: Array(digests[start..<min(start + 500, digests.count)]), finishedSince: since)
                    let output: ScannerAPI.Operations.ListScansForPeer.Output
                    do {
                        output = try await bounded("the scanner's status query", timeout) {
                            try await client.listScansForPeer(path: .init(tenantId: tenantID.uuidString.lowercased()), query: query)
                        }
                    } catch is TimedOut {
                        throw ImportScanError("the scanner gave no answer within \(timeout)")
                    }
                    switch output {
                    case .ok(let ok): jobs += try ok.body.json.items
                    case .badRequest(let problem):
                        throw ImportScanError("the scanner refused the status query: "
                            + ((try? problem.body.applicationProblemJson.detail) ?? "400"))
                    case .undocumented(let status, _):
                        throw ImportScanError("the scanner answered HTTP \(status) to the status query")
                    }
                }
            }
            return .success(jobs)
        } catch let error as ImportScanError {
            refusal = error
        } catch {
            refusal = ImportScanError("the scanner could not be reached: \(error)")
        }
        runtime.logger.warning("import scan status unavailable", metadata: ["error": "\(refusal)"])
        return .failure(refusal)
    }

    /// The scan answering an import's request for `digest`: the first job of the digest (oldest queued) that was
    /// still queued or running when the request was made, or finished at or after it. A request the scanner
    /// de-duplicated into a job already queued (by a push, say) is answered by that job.
    static func scan(of digest: String, requestedAt: Date, in jobs: [ScannerScanJob])
        -> IngestionAPI.Components.Schemas.ImportScan {
        // The scanner's times arrive in whole seconds (RFC 3339 without fractions): compare at that precision.
        let since = Date(timeIntervalSince1970: requestedAt.timeIntervalSince1970.rounded(.down))
        let answering = jobs.filter { $0.digest == digest && ($0.finishedAt.map { $0 >= since } ?? true) }
            .min { ($0.queuedAt, $0.jobId) < ($1.queuedAt, $1.jobId) }
        guard let job = answering else { return .init(status: .requested) }
        let status: IngestionAPI.Components.Schemas.ImportScan.StatusPayload = switch job.status {
        case .queued: .queued
        case .running: .scanning
        case .succeeded: .scanned
        case .failed, .dead, .cancelled: .failed
        }
        return .init(status: status, jobId: job.jobId, trigger: job.trigger.rawValue,
                     outcome: job.outcome.flatMap { .init(rawValue: $0.rawValue) },
                     findings: status == .scanned ? job.findings : nil, attempts: job.attempts,
                     error: status == .failed ? (job.error ?? "the scan \(job.status.rawValue)") : nil,
                     queuedAt: job.queuedAt, startedAt: job.startedAt, finishedAt: job.finishedAt)
    }

    /// The import's status from its platform images' scans: the least advanced unfinished one decides
    /// (scanRequested, scanQueued, scanning); when all ended, scanFailed if one failed, else scanned.
    static func status(of scans: [IngestionAPI.Components.Schemas.ImportScan]) -> IngestionAPI.Components.Schemas.ImportStatus {
        let states = Set(scans.map(\.status))
        if states.isEmpty { return .done }
        if states.contains(.requested) { return .scanRequested }
        if states.contains(.queued) { return .scanQueued }
        if states.contains(.scanning) { return .scanning }
        return states.contains(.failed) ? .scanFailed : .scanned
    }
}

/// Why an import's scan state could not be read from the scanner.
struct ImportScanError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A scan job as the scanner reports it.
typealias ScannerScanJob = ScannerAPI.Components.Schemas.ScanJob
