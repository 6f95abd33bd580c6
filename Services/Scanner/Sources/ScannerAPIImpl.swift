import enum Crypto.Curve25519
import FindingsPolicyAPI
import Foundation
import HTTPTypes
import GantryModel
import GantryRuntime
import ImageAnalysis
import Logging
import OpenAPIRuntime
import PostgresNIO
import ScannerAPI
import VulnerabilityDB

/// The scanner's HTTP API (Shared/Contracts/specs/scanner.yaml).
struct ScannerAPIImpl: ScannerAPI.APIProtocol {
    let runtime: ServiceRuntime
    let knowledgeBase: PostgresKnowledgeBase
    /// Per-job deadline (ARCHITECTURE.md: jobs have a deadline); `GANTRY_SCAN_DEADLINE_SECONDS`, default 2400.
    let deadlineSeconds: Int
    /// Attempts a new job gets (`GANTRY_SCAN_MAX_ATTEMPTS`).
    var maxAttempts = 5
    /// The only key whose feed bundles are imported (`GANTRY_FEEDS_PUBLIC_KEY`, base64 of the raw 32-byte
    /// Ed25519 public key); nil when none is configured, and then bundles are refused.
    let feedsPublicKey: Curve25519.Signing.PublicKey?
    /// Discovery's word on which tenant a subscription belongs to: a scan request's (tenant, subscription) pair is
    /// checked with it (issue 6: the body's tenant is not trusted alone).
    var ownership: SubscriptionOwnership

    /// - Parameter ownership: the (shared, cached) subscription check; nil builds one from `runtime`.
    init(runtime: ServiceRuntime, knowledgeBase: PostgresKnowledgeBase, deadlineSeconds: Int,
         feedsPublicKey: Curve25519.Signing.PublicKey?, ownership: SubscriptionOwnership? = nil) {
        self.runtime = runtime
        self.knowledgeBase = knowledgeBase
        self.deadlineSeconds = deadlineSeconds
        self.feedsPublicKey = feedsPublicKey
        self.ownership = ownership ?? SubscriptionOwnership(runtime: runtime)
    }

    func requestScan(_ input: Operations.RequestScan.Input) async throws -> Operations.RequestScan.Output {
        guard case .json(let request) = input.body else { throw ProblemError.badRequest("expected a JSON body") }
        let tenantID = try Validate.uuid(request.tenantId, field: "tenantId")
        let subscriptionID = try Validate.uuid(request.subscriptionId, field: "subscriptionId")
        let registryID = try Validate.uuid(request.registryId, field: "registryId")
        let repository = try Validate.repository(request.repository, field: "repository")
        let digest = try Validate.digest(request.digest, field: "digest")
        let messageID = try Validate.text(request.messageId, field: "messageId")
        switch try await ownership.owner(of: subscriptionID) {
        case tenantID?: break
        case nil: throw ProblemError.notFound("subscription \(subscriptionID.uuidString.lowercased()) does not exist")
        case _?:
            throw ProblemError.conflict("subscription \(subscriptionID.uuidString.lowercased()) does not belong to tenant \(tenantID.uuidString.lowercased())")
        }
        let trigger = request.trigger.rawValue
        let logger = runtime.logger
        let inbox = runtime.inbox
        let deadline = Double(deadlineSeconds)
        let maxAttempts = self.maxAttempts
        // The message's tenant scopes the transaction (row-level security): a job is only ever written for it.
        let (jobID, deduplicated) = try await runtime.database.withTenant(tenantID, logger: logger) { connection -> (UUID?, Bool) in
            let fresh = try await inbox.claim(messageID, on: connection, logger: logger)
            if fresh {
                // A push, import or manual scan means the image is there (again); a rescan requested before
                // its deletion arrived is recorded as cancelled.
                var deleted = false
                if trigger == "rescan" {
                    let rows = try await connection.query("""
                        SELECT 1 FROM scanner.deleted_images
                        WHERE registry_id = \(registryID) AND repository = \(repository) AND digest = \(digest.description)
                        """, logger: logger)
                    for try await _ in rows { deleted = true }
                } else {
                    try await connection.query("""
                        DELETE FROM scanner.deleted_images
                        WHERE registry_id = \(registryID) AND repository = \(repository) AND digest = \(digest.description)
                        """, logger: logger)
                }
                let id = UUID()
                if deleted {
                    try await connection.query("""
                        INSERT INTO scanner.scan_jobs (id, tenant_id, subscription_id, registry_id, repository, digest, tag,
                          trigger, priority, deadline_at, max_attempts, status, error, finished_at)
                        VALUES (\(id), \(tenantID), \(subscriptionID), \(registryID), \(repository), \(digest.description),
                          \(request.tag), \(trigger), \(ScanJob.priority(of: trigger)), now(), \(maxAttempts), 'cancelled',
                          'the image was deleted from the registry', now())
                        """, logger: logger)
                    return (id, false)
                }
                let rows = try await connection.query("""
                    INSERT INTO scanner.scan_jobs (id, tenant_id, subscription_id, registry_id, repository, digest, tag,
                      trigger, priority, deadline_at, max_attempts)
                    VALUES (\(id), \(tenantID), \(subscriptionID), \(registryID), \(repository), \(digest.description),
                      \(request.tag), \(trigger), \(ScanJob.priority(of: trigger)), now() + make_interval(secs => \(deadline)),
                      \(maxAttempts))
                    ON CONFLICT (registry_id, repository, digest) WHERE status IN ('queued', 'running') DO NOTHING
                    RETURNING id
                    """, logger: logger)
                for try await id in rows.decode(UUID.self) { return (id, false) }
            }
            // A redelivered request, or an image already queued: answer with the job that covers it.
            let existing = try await connection.query("""
                SELECT id FROM scanner.scan_jobs WHERE registry_id = \(registryID) AND repository = \(repository)
                  AND digest = \(digest.description) ORDER BY queued_at DESC LIMIT 1
                """, logger: logger)
            for try await id in existing.decode(UUID.self) { return (id, true) }
            return (nil, true)
        }
        guard let jobID else { throw ProblemError.conflict("the scan request \(messageID) was already processed") }
        return .accepted(.init(body: .json(.init(jobId: jobID.uuidString.lowercased(), deduplicated: deduplicated))))
    }

    func recordImageDeletion(_ input: Operations.RecordImageDeletion.Input) async throws -> Operations.RecordImageDeletion.Output {
        guard case .json(let deletion) = input.body else { throw ProblemError.badRequest("expected a JSON body") }
        let tenantID = try Validate.uuid(deletion.tenantId, field: "tenantId")
        _ = try Validate.uuid(deletion.subscriptionId, field: "subscriptionId")
        let registryID = try Validate.uuid(deletion.registryId, field: "registryId")
        let repository = try Validate.repository(deletion.repository, field: "repository")
        let digest = try Validate.digest(deletion.digest, field: "digest").description
        let messageID = try Validate.text(deletion.messageId, field: "messageId")
        let registryHost = try Validate.text(deletion.registryHost, field: "registryHost", maxLength: 255)
        let logger = runtime.logger
        let inbox = runtime.inbox
        let outbox = runtime.outbox
        let (cancelled, duplicate) = try await runtime.database.withTenant(tenantID, logger: logger) { connection -> (Int, Bool) in
            guard try await inbox.claim(messageID, on: connection, logger: logger) else { return (0, true) }
            try await connection.query("""
                INSERT INTO scanner.deleted_images (registry_id, repository, digest, tenant_id, deleted_at)
                VALUES (\(registryID), \(repository), \(digest), \(tenantID), \(deletion.deletedAt))
                ON CONFLICT (registry_id, repository, digest) DO UPDATE
                  SET deleted_at = greatest(deleted_images.deleted_at, EXCLUDED.deleted_at)
                """, logger: logger)
            let rows = try await connection.query("""
                UPDATE scanner.scan_jobs SET status = 'cancelled', finished_at = now(), lease_until = NULL,
                  error = 'the image was deleted from the registry'
                WHERE registry_id = \(registryID) AND repository = \(repository) AND digest = \(digest) AND status = 'queued'
                RETURNING id
                """, logger: logger)
            var cancelled = 0
            for try await _ in rows { cancelled += 1 }
            // Findings exist downstream only for an image whose scan reported: close them.
            let reported = try await connection.query("""
                SELECT 1 FROM scanner.scan_jobs
                WHERE registry_id = \(registryID) AND repository = \(repository) AND digest = \(digest) AND status = 'succeeded'
                LIMIT 1
                """, logger: logger)
            var wasReported = false
            for try await _ in reported { wasReported = true }
            if wasReported {
                let scanID = UUID().uuidString.lowercased()
                let report = FindingsPolicyAPI.Components.Schemas.ScanReport(
                    messageId: "image-deleted:\(scanID)", scanId: scanID, tenantId: deletion.tenantId.lowercased(),
                    subscriptionId: deletion.subscriptionId.lowercased(), registryId: registryID.uuidString.lowercased(),
                    registryHost: registryHost, repository: repository, digest: digest, scannedAt: deletion.deletedAt,
                    outcome: .notApplicable, notApplicableReason: "ImageDeleted", findings: [],
                    notes: ["the image was deleted from its registry; its findings are closed"])
                try await outbox.enqueue(report, messageID: report.messageId, to: .findingsPolicy, path: "/internal/v1/reports",
                                         on: connection, logger: logger)
            }
            return (cancelled, false)
        }
        return .accepted(.init(body: .json(.init(cancelledJobs: cancelled, duplicate: duplicate))))
    }

    func importAlpineSecDB(_ input: Operations.ImportAlpineSecDB.Input) async throws -> Operations.ImportAlpineSecDB.Output {
        let body: HTTPBody
        switch input.body {
        case .yaml(let yaml): body = yaml
        case .binary(let binary): body = binary
        }
        let bytes: [UInt8]
        do {
            bytes = try await [UInt8](collecting: body, upTo: runtime.configuration.maxBodyBytes)
        } catch {
            throw ProblemError.tooLarge("the feed document exceeds \(runtime.configuration.maxBodyBytes) bytes")
        }
        let document: AlpineSecDBDocument
        do {
            document = try AlpineSecDB.parse(bytes, format: .detect)
        } catch {
            throw ProblemError.badRequest("the Alpine secdb document is not valid: \(error)")
        }
        let result = try await knowledgeBase.importDocument(document.feedDocument)
        return .ok(.init(body: .json(Self.feedImport(result))))
    }

    static func feedImport(_ result: FeedImportResult) -> Components.Schemas.FeedImport {
        .init(source: result.source, kind: result.kind.rawValue, namespace: result.namespaces.joined(separator: ","),
              advisories: result.affected, vulnerabilities: result.vulnerabilities, changed: result.changed,
              fingerprint: result.fingerprint, operation: result.operation, added: result.added, removed: result.removed)
    }

    func importFeedBundle(_ input: Operations.ImportFeedBundle.Input) async throws -> Operations.ImportFeedBundle.Output {
        guard let trustedKey = feedsPublicKey else {
            throw ProblemError(.unprocessableContent,
                               "no trusted feed-signing key is configured (GANTRY_FEEDS_PUBLIC_KEY); bundles cannot be verified")
        }
        guard case .binary(let body) = input.body else { throw ProblemError.badRequest("expected an application/octet-stream body") }
        // The bundle goes to a private scratch file: it is read (and verified) from there by libarchive.
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("gantry-bundle-\(UUID().uuidString.lowercased()).tar.gz")
        defer { try? FileManager.default.removeItem(at: file) }
        guard FileManager.default.createFile(atPath: file.path, contents: nil, attributes: [.posixPermissions: 0o600]),
              let handle = try? FileHandle(forWritingTo: file) else {
            throw ProblemError.internal("could not create a scratch file for the bundle")
        }
        var written = 0
        let limit = FeedBundle.maxTotalBytes
        do {
            for try await chunk in body {
                written += chunk.count
                guard written <= limit else { throw ProblemError.tooLarge("the bundle exceeds \(limit) bytes") }
                try handle.write(contentsOf: chunk)
            }
            try handle.close()
        } catch let problem as ProblemError {
            try? handle.close()
            throw problem
        }
        let documents: [FeedDocument]
        do {
            documents = try FeedBundle.read(at: file, trustedKey: trustedKey).documents
        } catch {
            throw ProblemError(.unprocessableContent, "\(error)")
        }
        var items: [Components.Schemas.FeedImport] = []
        for document in documents {
            items.append(Self.feedImport(try await knowledgeBase.importDocument(document)))
        }
        return .ok(.init(body: .json(.init(items: items))))
    }

    func exportFeeds(_ input: Operations.ExportFeeds.Input) async throws -> Operations.ExportFeeds.Output {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        encoder.dateEncodingStrategy = .iso8601
        var lines = Data()
        for document in try await knowledgeBase.exportDocuments() {
            lines.append(try encoder.encode(document))
            lines.append(0x0A)
        }
        return .ok(.init(body: .binary(HTTPBody(lines))))
    }

    func listFeedOperations(_ input: Operations.ListFeedOperations.Input) async throws -> Operations.ListFeedOperations.Output {
        let operations = try await knowledgeBase.operations()
        return .ok(.init(body: .json(.init(items: operations.map {
            .init(id: $0.id, source: $0.source, kind: $0.kind, fingerprint: $0.fingerprint, added: $0.added,
                  removed: $0.removed, finishedAt: $0.finishedAt)
        }))))
    }

    func listFeedChanges(_ input: Operations.ListFeedChanges.Input) async throws -> Operations.ListFeedChanges.Output {
        if let upTo = input.query.upTo, upTo < input.query.after {
            throw ProblemError.badRequest("upTo (\(upTo)) is below after (\(input.query.after))")
        }
        let changes = try await knowledgeBase.changes(after: input.query.after, upTo: input.query.upTo)
        return .ok(.init(body: .json(.init(items: changes.map {
            .init(operation: $0.operation, change: .init(rawValue: $0.change) ?? .added, namespace: $0.namespace,
                  packageName: $0.packageName, vulnerabilityId: $0.vulnerabilityID)
        }))))
    }

    func listFeeds(_ input: Operations.ListFeeds.Input) async throws -> Operations.ListFeeds.Output {
        let feeds = try await knowledgeBase.feeds()
        return .ok(.init(body: .json(.init(items: feeds.map {
            .init(source: $0.source, kind: $0.kind, namespaces: $0.namespaces, vulnerabilities: $0.vulnerabilities,
                  affected: $0.affected, kev: $0.kev, epss: $0.epss, importedAt: $0.importedAt, fingerprint: $0.fingerprint,
                  operation: $0.operation)
        }))))
    }

    func listScans(_ input: Operations.ListScans.Input) async throws -> Operations.ListScans.Output {
        let tenantID = try Validate.uuid(input.path.tenantId, field: "tenantId")
        let digest = try input.query.digest.map { try Validate.digest($0, field: "digest").description }
        let limit = input.query.limit ?? 100
        guard (1...500).contains(limit) else { throw ProblemError.badRequest("limit must be between 1 and 500") }
        let logger = runtime.logger
        let items = try await runtime.database.withTenant(tenantID, logger: logger) { connection in
            let rows = try await connection.query("""
                SELECT \(unescaped: Self.scanJobColumns)
                FROM scanner.scan_jobs WHERE tenant_id = \(tenantID) AND (\(digest)::text IS NULL OR digest = \(digest))
                ORDER BY queued_at DESC, id LIMIT \(limit)
                """, logger: logger)
            return try await Self.scanJobs(from: rows)
        }
        return .ok(.init(body: .json(.init(items: items))))
    }

    /// The columns `scanJobs(from:)` decodes, in its order (a queued job's next attempt; null otherwise).
    static let scanJobColumns = """
        id, tenant_id, registry_id, repository, digest, tag, trigger, status, outcome, attempts, max_attempts,
        error, queued_at, started_at, finished_at,
        CASE WHEN status = 'queued' THEN next_attempt_at END, deadline_at, findings, kb_operation
        """

    /// Scan jobs as the API shows them, from rows selecting `scanJobColumns`; the duration is in milliseconds,
    /// from start to finish.
    static func scanJobs(from rows: PostgresRowSequence) async throws -> [Components.Schemas.ScanJob] {
        var items: [Components.Schemas.ScanJob] = []
        for try await row in rows.decode((UUID, UUID, UUID, String, String, String?, String, String, String?, Int, Int,
                                          String?, Date, Date?, Date?, Date?, Date, Int?, Int64?).self) {
            let (id, tenant, registry, repository, digest, tag, trigger, status, outcome, attempts, maxAttempts,
                 error, queued, started, finished, nextAttempt, deadline, findings, operation) = row
            let duration = zip(started, finished).map { Int64(($0.1.timeIntervalSince($0.0) * 1000).rounded()) }
            items.append(.init(
                jobId: id.uuidString.lowercased(), tenantId: tenant.uuidString.lowercased(),
                registryId: registry.uuidString.lowercased(), repository: repository, digest: digest, tag: tag,
                trigger: .init(rawValue: trigger) ?? .manual, status: .init(rawValue: status) ?? .queued,
                outcome: outcome.flatMap { .init(rawValue: $0) }, attempts: attempts, maxAttempts: maxAttempts,
                error: error, queuedAt: queued, startedAt: started, finishedAt: finished, nextAttemptAt: nextAttempt,
                deadlineAt: deadline, durationMs: duration, findings: findings, knowledgeBaseOperation: operation))
        }
        return items
    }

    func listReevaluations(_ input: Operations.ListReevaluations.Input) async throws -> Operations.ListReevaluations.Output {
        let limit = input.query.limit ?? 100
        guard (1...500).contains(limit) else { throw ProblemError.badRequest("limit must be between 1 and 500") }
        let rows = try await runtime.database.query("""
            SELECT operation, processed_at, images_checked, images_changed FROM scanner.reevaluated_operations
            ORDER BY operation DESC LIMIT \(limit)
            """, logger: runtime.logger)
        var items: [Components.Schemas.Reevaluation] = []
        for try await (operation, processed, checked, changed) in rows.decode((Int64, Date, Int, Int).self) {
            items.append(.init(operation: operation, processedAt: processed, imagesChecked: checked, imagesChanged: changed))
        }
        return .ok(.init(body: .json(.init(items: items))))
    }

    func getInventory(_ input: Operations.GetInventory.Input) async throws -> Operations.GetInventory.Output {
        let stored = try await latestInventory(tenantID: try Validate.uuid(input.path.tenantId, field: "tenantId"),
                                               digest: try Validate.digest(input.path.digest, field: "digest"))
        let inventory = stored.inventory
        return .ok(.init(body: .json(.init(
            digest: stored.digest.description, repository: stored.repository,
            operatingSystem: inventory.operatingSystem.map { .init(id: $0.id, versionId: $0.versionID, prettyName: $0.prettyName) },
            notApplicableReason: inventory.notApplicable?.rawValue,
            packages: inventory.packages.map {
                .init(ecosystem: $0.ecosystem, name: $0.name, version: $0.version, sourceName: $0.sourceName,
                      architecture: $0.architecture, purl: $0.purl, location: $0.location)
            },
            notes: inventory.notes, scannedAt: stored.scannedAt))))
    }

    func getSBOM(_ input: Operations.GetSBOM.Input) async throws -> Operations.GetSBOM.Output {
        let stored = try await latestInventory(tenantID: try Validate.uuid(input.path.tenantId, field: "tenantId"),
                                               digest: try Validate.digest(input.path.digest, field: "digest"))
        let subject = SBOMSubject(name: stored.repository, digest: stored.digest, inventory: stored.inventory,
                                  findings: stored.findings)
        let decoder = JSONDecoder()
        switch input.query.format ?? .cyclonedxJson {
        case .cyclonedxJson:
            let document = try decoder.decode(OpenAPIObjectContainer.self, from: try SBOM.cycloneDX(subject))
            return .ok(.init(body: .applicationVnd_cyclonedxJson(document)))
        case .spdxJson:
            let document = try decoder.decode(OpenAPIObjectContainer.self, from: try SBOM.spdx(subject))
            return .ok(.init(body: .applicationSpdxJson(document)))
        }
    }

    /// The inventory and findings of the latest scan of `digest` for the tenant.
    /// - Throws: `ProblemError` 404 when none is stored.
    private func latestInventory(tenantID: UUID, digest: Digest) async throws
        -> (repository: String, digest: Digest, inventory: ImageInventory, findings: [VulnerabilityFinding], scannedAt: Date) {
        let logger = runtime.logger
        let stored = try await runtime.database.withTenant(tenantID, logger: logger) { connection -> (String, String, String, Date)? in
            let rows = try await connection.query("""
                SELECT repository, inventory, findings, scanned_at FROM scanner.inventories
                WHERE tenant_id = \(tenantID) AND digest = \(digest.description) ORDER BY scanned_at DESC LIMIT 1
                """, logger: logger)
            for try await row in rows.decode((String, String, String, Date).self) { return row }
            return nil
        }
        guard let (repository, inventoryJSON, findingsJSON, scannedAt) = stored else {
            throw ProblemError.notFound("no inventory is stored for image \(digest)")
        }
        let decoder = JSONDecoder()
        return (repository, digest, try decoder.decode(ImageInventory.self, from: Data(inventoryJSON.utf8)),
                try decoder.decode([VulnerabilityFinding].self, from: Data(findingsJSON.utf8)), scannedAt)
    }
}

private func zip(_ a: Date?, _ b: Date?) -> (Date, Date)? {
    guard let a, let b else { return nil }
    return (a, b)
}
