import Foundation
import GantryModel
import GantryRuntime
import HTTPTypes
import IngestionAPI
import Logging
import PostgresNIO
import RegistryClient

/// Ingestion's import routes (ingestion.yaml, `createImport`, `listImports`, `getImport`): validation, the job
/// row and its scans (`ImportScans`); `ImportRunner` does the copying.
extension IngestionAPIImpl {
    func createImport(_ input: Operations.CreateImport.Input) async throws -> Operations.CreateImport.Output {
        let tenantID = try Validate.uuid(input.path.tenantId, field: "tenantId")
        let registryID = try Validate.uuid(input.path.registryId, field: "registryId")
        guard case .json(let body) = input.body else { throw ProblemError.badRequest("expected a JSON body") }
        let configuration = runtime.configuration
        let insecure = body.insecure ?? false
        if insecure && configuration.profile != .development {
            throw ProblemError.badRequest("insecure (plain HTTP) sources are accepted only in the development profile")
        }
        let source = try ImportSource.parse(body.source, insecure: insecure)
        let targetRepository = try body.repository.map { try Validate.repository($0, field: "repository") }
            ?? (source.host == "docker.io" && source.repository.hasPrefix("library/")
                ? String(source.repository.dropFirst("library/".count)) : source.repository)
        if let tag = body.tag { try ImportSource.validateTag(tag, field: "tag") }
        let targetTag = body.tag ?? source.tag
        var sealed: String?
        if let credentials = body.credentials {
            guard !credentials.username.isEmpty, credentials.username.count <= 200, !credentials.password.isEmpty,
                  credentials.password.count <= 4096 else {
                throw ProblemError.badRequest("credentials need a username (1-200 characters) and a password (1-4096)")
            }
            guard let importSealer else {
                throw ProblemError(.unprocessableContent,
                                   "this deployment has no GANTRY_SECRET_KEY to seal source credentials with; import without credentials")
            }
            sealed = try importSealer.seal(RegistryCredentials(username: credentials.username, password: credentials.password))
        }
        if let refusal = importSourceRefusal(host: source.host == "docker.io" ? "registry-1.docker.io" : source.host,
                                             configuration: configuration) {
            throw ProblemError(.unprocessableContent, "source host '\(source.host)' is refused: \(refusal)")
        }
        let registry = try await tenantRegistry(registryID, of: tenantID)
        let id = UUID()
        let logger = runtime.logger
        // Stored and read back in one transaction: the answer shows the job as queued, before a runner can take it.
        let stored = try await runtime.database.withTenant(tenantID, logger: logger) { connection in
            try await connection.query("""
                INSERT INTO ingestion.imports (id, tenant_id, registry_id, source, source_base_url, source_repository,
                  source_reference, source_credentials_sealed, target_repository, target_tag)
                VALUES (\(id), \(tenantID), \(registryID), \(source.normalized), \(source.baseURL.absoluteString),
                        \(source.repository), \(source.reference), \(sealed), \(targetRepository), \(targetTag))
                """, logger: logger)
            return try await Self.importJob(id: id, tenantID: tenantID, registryID: registryID, on: connection, logger: logger)
        }
        runtime.logger.info("import queued", metadata: ["import": "\(id)", "source": "\(source.normalized)",
                                                        "registry": "\(registry.loginServer)"])
        guard let job = stored else {
            throw ProblemError.internal("the import job \(id.uuidString.lowercased()) was not stored")
        }
        return .accepted(.init(body: .json(job)))
    }

    /// `GET …/imports/{importId}`: the job with its scans (`ImportScans`); 404 problem+json when this tenant's
    /// registry has no such import (another tenant's included).
    func getImport(_ input: Operations.GetImport.Input) async throws -> Operations.GetImport.Output {
        let tenantID = try Validate.uuid(input.path.tenantId, field: "tenantId")
        let registryID = try Validate.uuid(input.path.registryId, field: "registryId")
        let importID = try Validate.uuid(input.path.importId, field: "importId")
        let logger = runtime.logger
        let stored = try await runtime.database.withTenant(tenantID, logger: logger) { connection in
            try await StoredImport.fetch(on: connection, logger: logger, tenantID: tenantID, registryID: registryID,
                                         id: importID, limit: 1).first
        }
        guard let stored else {
            throw ProblemError.notFound("registry \(registryID.uuidString.lowercased()) of tenant \(tenantID.uuidString.lowercased()) has no import \(importID.uuidString.lowercased())")
        }
        return .ok(.init(body: .json(try await withScans([stored], tenantID: tenantID)[0])))
    }

    /// `GET …/imports`: the registry's jobs newest first (`created_at`, then ID), `limit` per page (1-100,
    /// default 20), continued by `pageToken`. A scan status as `status` filter is applied after the scanner is
    /// asked, over at most five pages' worth of candidates per call, so a page can be short while a
    /// `nextPageToken` follows. 404 when the tenant has no such registry; 400 for a bad limit or token.
    func listImports(_ input: Operations.ListImports.Input) async throws -> Operations.ListImports.Output {
        let tenantID = try Validate.uuid(input.path.tenantId, field: "tenantId")
        let registryID = try Validate.uuid(input.path.registryId, field: "registryId")
        let limit = input.query.limit ?? 20
        guard (1...100).contains(limit) else { throw ProblemError.badRequest("limit must be between 1 and 100") }
        var cursor = try input.query.pageToken.map { try ImportPageToken(parsing: $0) }
        let wanted = input.query.status
        // Another tenant's registry is unknown here, not an empty list (issue 6, "Isolation").
        _ = try await tenantRegistry(registryID, of: tenantID)
        let logger = runtime.logger
        var items: [Components.Schemas.ImportJob] = []
        var examined = 0
        while true {
            let after = cursor
            let rows = try await runtime.database.withTenant(tenantID, logger: logger) { connection in
                try await StoredImport.fetch(on: connection, logger: logger, tenantID: tenantID, registryID: registryID,
                                             status: wanted, after: after, limit: limit + 1)
            }
            let more = rows.count > limit
            let page = Array(rows.prefix(limit))
            let jobs = try await withScans(page, tenantID: tenantID)
            for (index, (row, job)) in zip(page, jobs).enumerated() {
                cursor = row.pageToken
                examined += 1
                // The SQL filter is exact except for scan statuses, which only the merged job knows.
                guard wanted == nil || job.status == wanted else { continue }
                items.append(job)
                if items.count == limit {
                    let last = !more && index == page.count - 1
                    return .ok(.init(body: .json(.init(items: items, nextPageToken: last ? nil : cursor?.encoded))))
                }
            }
            if !more { return .ok(.init(body: .json(.init(items: items)))) }
            if examined >= 5 * limit {
                return .ok(.init(body: .json(.init(items: items, nextPageToken: cursor?.encoded))))
            }
        }
    }

    /// The jobs as the API shows them, with the scans of those that requested some (one scanner call).
    func withScans(_ rows: [StoredImport], tenantID: UUID) async throws -> [Components.Schemas.ImportJob] {
        let requests = rows.compactMap(\.scanRequest)
        let jobs = await ImportScans(runtime: runtime).jobs(tenantID: tenantID, requests)
        return rows.map { $0.job(scans: jobs) }
    }

    /// The job as stored (before the scanner is asked; `createImport` answers with it).
    static func importJob(id: UUID, tenantID: UUID, registryID: UUID, on connection: PostgresConnection,
                          logger: Logger) async throws -> Components.Schemas.ImportJob? {
        try await StoredImport.fetch(on: connection, logger: logger, tenantID: tenantID, registryID: registryID, id: id, limit: 1)
            .first?.job(scans: .success([]))
    }
}

/// One `ingestion.imports` row as the API reads it.
struct StoredImport: Sendable {
    var id: UUID
    var tenantID: UUID
    var registryID: UUID
    var source: String
    var targetRepository: String
    var targetTag: String?
    /// queued, copying, done or failed (migration 0004).
    var status: String
    var reason: String?
    var digest: String?
    var mediaType: String?
    var platforms: [ImportPlatformRecord]
    var bytesCopied: Int64
    var blobsMounted: Int
    var blobsCopied: Int
    var blobsSkipped: Int
    var attempts: Int
    var scanRequested: Bool
    var createdAt: Date
    var updatedAt: Date
    var finishedAt: Date?
    /// `created_at` as PostgreSQL prints it (microseconds, exact), for page tokens.
    var createdAtText: String

    var pageToken: ImportPageToken { ImportPageToken(createdAt: createdAtText, id: id) }

    /// The platform digests the import asked scans for; nil when it asked none (yet).
    var scanRequest: ImportScans.Request? {
        guard status == "done", scanRequested, let finishedAt else { return nil }
        return .init(registryID: registryID, digests: platforms.filter(\.isScanned).map(\.digest), requestedAt: finishedAt)
    }

    /// Rows of one registry, newest first: one import (`id`), or a page after `after`, optionally of one status.
    /// For a scan status the rows are the candidates (done with scans requested); the caller filters.
    static func fetch(on connection: PostgresConnection, logger: Logger, tenantID: UUID, registryID: UUID, id: UUID? = nil,
                      status: Components.Schemas.ImportStatus? = nil, after: ImportPageToken? = nil,
                      limit: Int) async throws -> [StoredImport] {
        let stored: String?
        let scanRequested: Bool?
        switch status {
        case nil: (stored, scanRequested) = (nil, nil)
        case .queued, .copying, .failed: (stored, scanRequested) = (status?.rawValue, nil)
        case .done: (stored, scanRequested) = ("done", false)
        case .scanRequested, .scanQueued, .scanning, .scanned, .scanFailed: (stored, scanRequested) = ("done", true)
        }
        let rows = try await connection.query("""
            SELECT id, source, target_repository, target_tag, status, reason, digest, media_type, platforms::text,
                   bytes_copied, blobs_mounted, blobs_copied, blobs_skipped, attempts, scan_requested, created_at,
                   updated_at, finished_at, created_at::text AS created_at_text
            FROM ingestion.imports
            WHERE tenant_id = \(tenantID) AND registry_id = \(registryID) AND (\(id)::uuid IS NULL OR id = \(id))
              AND (\(stored)::text IS NULL OR status = \(stored))
              AND (\(scanRequested)::boolean IS NULL OR scan_requested = \(scanRequested))
              AND (\(after?.createdAt)::timestamptz IS NULL
                   OR (created_at, id) < (\(after?.createdAt)::timestamptz, \(after?.id)::uuid))
            ORDER BY created_at DESC, id DESC LIMIT \(limit)
            """, logger: logger)
        var items: [StoredImport] = []
        for try await (id, source, repository, tag, status, reason, digest, mediaType, platforms, bytes, mounted, copied, skipped,
                       attempts, scanRequested, created, updated, finished, createdText)
            in rows.decode((UUID, String, String, String?, String, String?, String?, String?, String, Int64, Int, Int, Int, Int,
                            Bool, Date, Date, Date?, String).self) {
            let records = (try? JSONDecoder().decode([ImportPlatformRecord].self, from: Data(platforms.utf8))) ?? []
            items.append(StoredImport(
                id: id, tenantID: tenantID, registryID: registryID, source: source, targetRepository: repository, targetTag: tag,
                status: status, reason: reason, digest: digest, mediaType: mediaType, platforms: records, bytesCopied: bytes,
                blobsMounted: mounted, blobsCopied: copied, blobsSkipped: skipped, attempts: attempts,
                scanRequested: scanRequested, createdAt: created, updatedAt: updated, finishedAt: finished,
                createdAtText: createdText))
        }
        return items
    }

    /// The API's job, its status following the scans when it requested some (`ImportScans`).
    func job(scans: Result<[ScannerScanJob], ImportScanError>) -> Components.Schemas.ImportJob {
        var status = Components.Schemas.ImportStatus(rawValue: self.status) ?? .failed
        var scanStatusError: String?
        var platforms = self.platforms.map {
            Components.Schemas.ImportPlatform(platform: $0.platform, digest: $0.digest, mediaType: $0.mediaType)
        }
        if let request = scanRequest {
            switch scans {
            case .success(let jobs):
                for index in platforms.indices where self.platforms[index].isScanned {
                    platforms[index].scan = ImportScans.scan(of: platforms[index].digest, requestedAt: request.requestedAt, in: jobs)
                }
            case .failure(let error):
                scanStatusError = error.description
                for index in platforms.indices where self.platforms[index].isScanned {
                    platforms[index].scan = .init(status: .requested)
                }
            }
            status = ImportScans.status(of: platforms.compactMap(\.scan))
        }
        return Components.Schemas.ImportJob(
            importId: id.uuidString.lowercased(), tenantId: tenantID.uuidString.lowercased(),
            registryId: registryID.uuidString.lowercased(), source: source, targetRepository: targetRepository,
            targetTag: targetTag, status: status, reason: reason, scanStatusError: scanStatusError, digest: digest,
            mediaType: mediaType, platforms: platforms, bytesCopied: bytesCopied, blobsMounted: blobsMounted,
            blobsCopied: blobsCopied, blobsSkipped: blobsSkipped, attempts: attempts, scanRequested: scanRequested,
            createdAt: createdAt, updatedAt: updatedAt, finishedAt: finishedAt)
    }
}

/// The position after which the next page of imports starts: a job's `created_at` (as PostgreSQL prints it,
/// so microseconds survive) and ID; sent as base64url of `<created_at>|<id>`.
struct ImportPageToken: Sendable, Equatable {
    var createdAt: String
    var id: UUID

    init(createdAt: String, id: UUID) {
        self.createdAt = createdAt
        self.id = id
    }

    /// - Throws: `ProblemError.badRequest` (400) when the text is not a token this service issued.
    init(parsing text: String) throws {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        guard let data = Data(base64Encoded: base64), let decoded = String(data: data, encoding: .utf8),
              let bar = decoded.lastIndex(of: "|"), let id = UUID(uuidString: String(decoded[decoded.index(after: bar)...])),
              (try? Self.timestamp().wholeMatch(in: decoded[..<bar])) != nil else {
            throw ProblemError.badRequest("pageToken is not a nextPageToken of this list")
        }
        self.init(createdAt: String(decoded[..<bar]), id: id)
    }

    /// What PostgreSQL prints for a timestamptz in the ISO date style, e.g. `2026-11-29 17:27:19.123456+00`.
    private static func timestamp() -> Regex<(Substring, Substring?, Substring?)> { #/\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,6})?[+-]\d{2}(:\d{2})?/# }

    var encoded: String {
        Data("\(createdAt)|\(id.uuidString.lowercased())".utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
