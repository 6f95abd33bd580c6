import Foundation
import GantryModel
import GantryRuntime
import IngestionAPI
import Logging
import PostgresNIO

/// Ingestion's HTTP API (Shared/Contracts/specs/ingestion.yaml).
struct IngestionAPIImpl: IngestionAPI.APIProtocol {
    let runtime: ServiceRuntime
    let discovery: any DiscoveryPeer
    let directory: RegistryDirectory
    let intake: EventIntake
    let rescans: RescanScheduler
    /// Seals import source credentials; nil without `GANTRY_SECRET_KEY` (imports then refuse credentials).
    var importSealer: ImportCredentialSealer?

    /// The registry `registryID` as discovery states it, when it is `tenantID`'s.
    /// - Throws: `ProblemError` 404 when discovery knows no such registry or it is another tenant's: another
    ///   tenant's registry is unknown here, never an empty answer (issue 6, "Isolation").
    func tenantRegistry(_ registryID: UUID, of tenantID: UUID) async throws -> RegisteredRegistry {
        guard let registry = try await discovery.registry(id: registryID), registry.tenantID == tenantID else {
            throw ProblemError.notFound("tenant \(tenantID.uuidString.lowercased()) has no registry \(registryID.uuidString.lowercased())")
        }
        return registry
    }

    // MARK: Webhooks

    // Served by `WebhookRoutes` (registered on the router directly, for speed); the generated server does not
    // register these three operations (`WithoutWebhookRoutes`), so these are never called.

    func receiveDistributionEvents(_ input: Operations.ReceiveDistributionEvents.Input)
        async throws -> Operations.ReceiveDistributionEvents.Output {
        throw ProblemError.internal("receiveDistributionEvents is served by WebhookRoutes")
    }

    func receiveACREvent(_ input: Operations.ReceiveACREvent.Input) async throws -> Operations.ReceiveACREvent.Output {
        throw ProblemError.internal("receiveACREvent is served by WebhookRoutes")
    }

    func receiveHarborEvent(_ input: Operations.ReceiveHarborEvent.Input) async throws -> Operations.ReceiveHarborEvent.Output {
        throw ProblemError.internal("receiveHarborEvent is served by WebhookRoutes")
    }

    // MARK: Events and images

    func listEvents(_ input: Operations.ListEvents.Input) async throws -> Operations.ListEvents.Output {
        let registryID = try Validate.uuid(input.query.registryId, field: "registryId")
        let limit = input.query.limit ?? 100
        guard (1...500).contains(limit) else { throw ProblemError.badRequest("limit must be between 1 and 500") }
        let logger = runtime.logger
        // An operator's diagnostic route naming a registry but no tenant (`AccessPolicy.ingestion`): system access.
        let items = try await runtime.database.withSystemAccess(logger: logger) { connection in
            let rows = try await connection.query("""
                SELECT event_id, registry_id, source, action, media_type, repository, digest, tag, occurred_at, received_at,
                       processed_at, outcome, scan_requested
                FROM ingestion.events WHERE registry_id = \(registryID) ORDER BY seq DESC LIMIT \(limit)
                """, logger: logger)
            var items: [Components.Schemas.RecordedEvent] = []
            for try await (id, registry, source, action, mediaType, repository, digest, tag, occurred, received, processed, outcome, scan)
                in rows.decode((String, UUID, String, String, String?, String, String?, String?, Date?, Date, Date?, String?, Bool).self) {
                items.append(.init(eventId: id, registryId: registry.uuidString.lowercased(),
                                   source: .init(rawValue: source) ?? .distribution, action: action, mediaType: mediaType,
                                   repository: repository, digest: digest, tag: tag, occurredAt: occurred, receivedAt: received,
                                   processedAt: processed, outcome: outcome, scanRequested: scan))
            }
            return items
        }
        return .ok(.init(body: .json(.init(items: items))))
    }

    func listImages(_ input: Operations.ListImages.Input) async throws -> Operations.ListImages.Output {
        let tenantID = try Validate.uuid(input.path.tenantId, field: "tenantId")
        let registryID = try Validate.uuid(input.path.registryId, field: "registryId")
        let repository = try input.query.repository.map { try Validate.repository($0, field: "repository") }
        let includeDeleted = input.query.includeDeleted ?? false
        // Another tenant's registry is unknown here, not an empty list (issue 6, "Isolation").
        _ = try await tenantRegistry(registryID, of: tenantID)
        let logger = runtime.logger
        let items = try await runtime.database.withTenant(tenantID, logger: logger) { connection in
            let rows = try await connection.query("""
                SELECT i.repository, i.digest, i.first_seen_at, i.last_pushed_at, i.last_pulled_at, i.deleted_at,
                       i.scan_requested_at,
                       COALESCE(array_agg(t.tag ORDER BY t.tag) FILTER (WHERE t.tag IS NOT NULL), '{}')::text[]
                FROM ingestion.images i
                LEFT JOIN ingestion.image_tags t
                  ON t.registry_id = i.registry_id AND t.repository = i.repository AND t.digest = i.digest
                WHERE i.registry_id = \(registryID) AND i.tenant_id = \(tenantID)
                  AND (\(repository)::text IS NULL OR i.repository = \(repository))
                  AND (\(includeDeleted) OR i.deleted_at IS NULL)
                GROUP BY i.registry_id, i.repository, i.digest
                ORDER BY i.repository, greatest(i.first_seen_at, i.last_pushed_at, i.last_pulled_at) DESC, i.digest
                LIMIT 1000
                """, logger: logger)
            var items: [Components.Schemas.Image] = []
            for try await (repository, digest, firstSeen, pushed, pulled, deleted, scanRequested, tags)
                in rows.decode((String, String, Date, Date?, Date?, Date?, Date?, [String]).self) {
                items.append(.init(repository: repository, digest: digest, tags: tags, firstSeenAt: firstSeen,
                                   lastPushedAt: pushed, lastPulledAt: pulled, deletedAt: deleted, scanRequestedAt: scanRequested))
            }
            return items
        }
        return .ok(.init(body: .json(.init(items: items))))
    }

    // MARK: Webhook secrets

    func setWebhookSecret(_ input: Operations.SetWebhookSecret.Input) async throws -> Operations.SetWebhookSecret.Output {
        let tenantID = try Validate.uuid(input.path.tenantId, field: "tenantId")
        let registryID = try Validate.uuid(input.path.registryId, field: "registryId")
        var chosen: String?
        if case .json(let body) = input.body { chosen = body.secret }
        if let secret = chosen {
            // Sent in an HTTP header: visible ASCII only, no spaces.
            guard (32...200).contains(secret.count),
                  secret.unicodeScalars.allSatisfy({ (0x21...0x7E).contains($0.value) }) else {
                throw ProblemError.badRequest("secret must be 32 to 200 visible ASCII characters without spaces")
            }
        }
        let registry = try await tenantRegistry(registryID, of: tenantID)
        let secret = chosen ?? WebhookSecrets.generate()
        let hash = WebhookSecrets.hex(WebhookSecrets.hash(secret))
        let logger = runtime.logger
        let createdAt = try await runtime.database.withTenant(tenantID, logger: logger) { connection in
            let rows = try await connection.query("""
                INSERT INTO ingestion.webhook_secrets (registry_id, tenant_id, secret_sha256) VALUES (\(registryID), \(tenantID), \(hash))
                ON CONFLICT (registry_id) DO UPDATE SET secret_sha256 = EXCLUDED.secret_sha256, created_at = now()
                RETURNING created_at
                """, logger: logger)
            var createdAt = Date()
            for try await value in rows.decode(Date.self) { createdAt = value }
            return createdAt
        }
        await directory.invalidate(registryID: registryID)
        runtime.logger.info("webhook secret set", metadata: ["registry": "\(registry.loginServer)", "generated": "\(chosen == nil)"])
        return .ok(.init(body: .json(.init(registryId: registryID.uuidString.lowercased(), secret: secret,
                                           header: "Bearer \(secret)", createdAt: createdAt))))
    }

    // MARK: Rescans

    func runRescan(_ input: Operations.RunRescan.Input) async throws -> Operations.RunRescan.Output {
        let run = try await rescans.runNow()
        return .accepted(.init(body: .json(Self.rescanRun(run.id, run.reason, run.startedAt, run.pulledSince, run.images))))
    }

    func listRescans(_ input: Operations.ListRescans.Input) async throws -> Operations.ListRescans.Output {
        let logger = runtime.logger
        // Deployment-wide tables of an operator's route: system access.
        let (items, nextRunAt) = try await runtime.database.withSystemAccess(logger: logger) { connection in
            let rows = try await connection.query("""
                SELECT id, reason, started_at, pulled_since, images FROM ingestion.rescan_runs ORDER BY started_at DESC LIMIT 100
                """, logger: logger)
            var items: [Components.Schemas.RescanRun] = []
            for try await (id, reason, started, since, images) in rows.decode((UUID, String, Date, Date, Int).self) {
                items.append(Self.rescanRun(id, reason, started, since, images))
            }
            let next = try await connection.query("""
                SELECT next_run_at FROM ingestion.rescan_schedule WHERE name = \(RescanScheduler.scheduleName)
                """, logger: logger)
            var nextRunAt: Date?
            for try await value in next.decode(Date.self) { nextRunAt = value }
            return (items, nextRunAt)
        }
        return .ok(.init(body: .json(.init(nextRunAt: nextRunAt, items: items))))
    }

    private static func rescanRun(_ id: UUID, _ reason: String, _ started: Date, _ since: Date, _ images: Int)
        -> Components.Schemas.RescanRun {
        .init(runId: id.uuidString.lowercased(), reason: .init(rawValue: reason) ?? .request, startedAt: started,
              pulledSince: since, images: images)
    }
}
