import Foundation
import GantryModel
import GantryRuntime
import IngestionAPI
import Logging
import PostgresNIO
import ScannerAPI

/// Ingestion's HTTP API (Shared/Contracts/specs/ingestion.yaml).
struct IngestionAPIImpl: IngestionAPI.APIProtocol {
    let runtime: ServiceRuntime
    let discovery: any DiscoveryPeer

    func receiveDistributionEvents(_ input: Operations.ReceiveDistributionEvents.Input)
        async throws -> Operations.ReceiveDistributionEvents.Output {
        let envelope: Components.Schemas.Envelope
        switch input.body {
        case .applicationVnd_docker_distribution_events_v1Json(let body): envelope = body
        case .applicationVnd_docker_distribution_events_v2Json(let body): envelope = body
        case .json(let body): envelope = body
        }
        guard envelope.events.count <= 1000 else { throw ProblemError.badRequest("an envelope holds at most 1000 events") }
        guard !envelope.events.isEmpty else { throw ProblemError.badRequest("the envelope holds no events") }
        guard let host = DistributionEvents.registryHost(of: envelope.events) else {
            throw ProblemError.badRequest("the events do not name one registry host (request.host or target.url)")
        }
        // Validate every event before writing any, so a bad envelope leaves nothing half-written.
        var manifestEvents: [(Components.Schemas.Event, Digest?)] = []
        for (index, event) in envelope.events.enumerated() {
            guard DistributionEvents.actions.contains(event.action) else {
                throw ProblemError.badRequest("events[\(index)].action '\(event.action.prefix(50))' is not push, pull, delete or mount")
            }
            guard DistributionEvents.isManifest(event) else { continue }
            guard let repository = event.target.repository else {
                throw ProblemError.badRequest("events[\(index)].target.repository is missing")
            }
            _ = try Validate.repository(repository, field: "events[\(index)].target.repository")
            let digest = try event.target.digest.map { try Validate.digest($0, field: "events[\(index)].target.digest") }
            if event.action == "push" && digest == nil {
                throw ProblemError.badRequest("events[\(index)] is a manifest push without target.digest")
            }
            manifestEvents.append((event, digest))
        }
        guard let registry = try await discovery.registry(host: host) else {
            throw ProblemError.notFound("no registry is registered for host '\(host.prefix(255))'")
        }
        let logger = runtime.logger
        let outbox = runtime.outbox
        let (recorded, duplicates, scans) = try await runtime.database.withTransaction(logger: logger) { connection in
            var recorded = 0, duplicates = 0, scans = 0
            for (event, digest) in manifestEvents {
                let wantsScan = event.action == "push" && registry.planEnabled
                let rows = try await connection.query("""
                    INSERT INTO ingestion.events (event_id, registry_id, tenant_id, action, media_type, repository, digest, tag, scan_requested)
                    VALUES (\(event.id), \(registry.registryID), \(registry.tenantID), \(event.action), \(event.target.mediaType),
                            \(event.target.repository ?? ""), \(digest?.description), \(event.target.tag), \(wantsScan))
                    ON CONFLICT (registry_id, event_id) DO NOTHING RETURNING event_id
                    """, logger: logger)
                var inserted = false
                for try await _ in rows { inserted = true }
                guard inserted else { duplicates += 1; continue }
                recorded += 1
                if wantsScan, let digest {
                    let request = ScannerAPI.Components.Schemas.ScanRequest(
                        messageId: DistributionEvents.scanRequestMessageID(registryID: registry.registryID, eventID: event.id),
                        tenantId: registry.tenantID.uuidString.lowercased(),
                        subscriptionId: registry.subscriptionID.uuidString.lowercased(),
                        registryId: registry.registryID.uuidString.lowercased(),
                        repository: event.target.repository ?? "", digest: digest.description, tag: event.target.tag,
                        trigger: .push)
                    try await outbox.enqueue(request, messageID: request.messageId, to: .scanner,
                                             path: "/internal/v1/scans", on: connection, logger: logger)
                    scans += 1
                }
            }
            return (recorded, duplicates, scans)
        }
        logger.info("registry events received", metadata: [
            "registry": "\(registry.loginServer)", "events": "\(envelope.events.count)", "recorded": "\(recorded)",
            "scans_requested": "\(scans)"])
        return .accepted(.init(body: .json(.init(
            registryId: registry.registryID.uuidString.lowercased(), received: envelope.events.count,
            recorded: recorded, duplicates: duplicates, scansRequested: scans))))
    }

    func listEvents(_ input: Operations.ListEvents.Input) async throws -> Operations.ListEvents.Output {
        let registryID = try Validate.uuid(input.query.registryId, field: "registryId")
        let limit = input.query.limit ?? 100
        guard (1...500).contains(limit) else { throw ProblemError.badRequest("limit must be between 1 and 500") }
        let rows = try await runtime.database.query("""
            SELECT event_id, registry_id, action, media_type, repository, digest, tag, received_at, scan_requested
            FROM ingestion.events WHERE registry_id = \(registryID) ORDER BY received_at DESC LIMIT \(limit)
            """, logger: runtime.logger)
        var items: [Components.Schemas.RecordedEvent] = []
        for try await (id, registry, action, mediaType, repository, digest, tag, received, scan) in rows.decode(
            (String, UUID, String, String?, String, String?, String?, Date, Bool).self) {
            items.append(.init(eventId: id, registryId: registry.uuidString.lowercased(), action: action, mediaType: mediaType,
                               repository: repository, digest: digest, tag: tag, receivedAt: received, scanRequested: scan))
        }
        return .ok(.init(body: .json(.init(items: items))))
    }
}
