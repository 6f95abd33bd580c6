import Foundation
import GantryModel
import GantryRuntime
import HTTPTypes
import IngestionAPI
import Logging
import PostgresNIO
import RegistryClient

/// Ingestion's import routes (ingestion.yaml, `createImport`, `getImport`): validation and the job row;
/// `ImportRunner` does the copying.
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
        guard let registry = try await discovery.registry(id: registryID), registry.tenantID == tenantID else {
            throw ProblemError.notFound("tenant \(tenantID) has no registry \(registryID)")
        }
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
            throw ProblemError.internal("the import job \(id) was not stored")
        }
        return .accepted(.init(body: .json(job)))
    }

    func getImport(_ input: Operations.GetImport.Input) async throws -> Operations.GetImport.Output {
        let tenantID = try Validate.uuid(input.path.tenantId, field: "tenantId")
        let registryID = try Validate.uuid(input.path.registryId, field: "registryId")
        let importID = try Validate.uuid(input.path.importId, field: "importId")
        guard let job = try await importJob(id: importID, tenantID: tenantID, registryID: registryID) else {
            throw ProblemError.notFound("registry \(registryID) of tenant \(tenantID) has no import \(importID)")
        }
        return .ok(.init(body: .json(job)))
    }

    /// The job as the API shows it; nil when it does not exist for this tenant and registry.
    func importJob(id: UUID, tenantID: UUID, registryID: UUID) async throws -> Components.Schemas.ImportJob? {
        let logger = runtime.logger
        return try await runtime.database.withTenant(tenantID, logger: logger) { connection in
            try await Self.importJob(id: id, tenantID: tenantID, registryID: registryID, on: connection, logger: logger)
        }
    }

    /// `importJob(id:tenantID:registryID:)` on `connection`, a transaction of the tenant (`withTenant`).
    static func importJob(id: UUID, tenantID: UUID, registryID: UUID, on connection: PostgresConnection,
                          logger: Logger) async throws -> Components.Schemas.ImportJob? {
        let rows = try await connection.query("""
            SELECT source, target_repository, target_tag, status, reason, digest, media_type, platforms::text,
                   bytes_copied, blobs_mounted, blobs_copied, blobs_skipped, attempts, scan_requested, created_at,
                   updated_at, finished_at
            FROM ingestion.imports WHERE id = \(id) AND tenant_id = \(tenantID) AND registry_id = \(registryID)
            """, logger: logger)
        for try await (source, repository, tag, status, reason, digest, mediaType, platforms, bytes, mounted, copied, skipped,
                       attempts, scanRequested, created, updated, finished)
            in rows.decode((String, String, String?, String, String?, String?, String?, String, Int64, Int, Int, Int, Int, Bool,
                            Date, Date, Date?).self) {
            let records = (try? JSONDecoder().decode([ImportPlatformRecord].self, from: Data(platforms.utf8))) ?? []
            return Components.Schemas.ImportJob(
                importId: id.uuidString.lowercased(), tenantId: tenantID.uuidString.lowercased(),
                registryId: registryID.uuidString.lowercased(), source: source, targetRepository: repository, targetTag: tag,
                status: .init(rawValue: status) ?? .failed, reason: reason, digest: digest, mediaType: mediaType,
                platforms: records.map { .init(platform: $0.platform, digest: $0.digest, mediaType: $0.mediaType) },
                bytesCopied: bytes, blobsMounted: mounted, blobsCopied: copied, blobsSkipped: skipped, attempts: attempts,
                scanRequested: scanRequested, createdAt: created, updatedAt: updated, finishedAt: finished)
        }
        return nil
    }
}
