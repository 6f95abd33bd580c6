import Foundation
import GantryModel
import GantryRuntime
import Logging
import PostgresNIO
import ScannerAPI
import ServiceLifecycle

/// Handles recorded events after intake answered, in the order they arrived (`events.seq`):
/// - push: the image (and its tag) in `images` / `image_tags`; a scan request (trigger `push`) through
///   the outbox when the subscription's plan is enabled and this generation of the image was never
///   requested before, so repeated pushes of one digest queue one scan;
/// - pull: the image's last pull (for the recently-pulled rescan);
/// - delete of a digest: the image is marked deleted, its tags removed, and the scanner told
///   (`/internal/v1/images/deletions`), which closes its findings; delete of a tag: the tag only (the
///   digest stays pullable); delete naming neither (ACR repository delete): every image of the repository.
///
/// One transaction per batch, under a transaction-level advisory lock, so replicas never process
/// concurrently (which would break the order) and a crash leaves the batch to be done again; every
/// effect is idempotent (upserts, outbox message IDs derived from the event).
struct EventProcessor: Service {
    let runtime: ServiceRuntime
    let directory: RegistryDirectory
    var pollInterval: Duration = .milliseconds(100)
    var batchSize = 1000

    func run() async throws {
        let batchSize = self.batchSize
        // Bounded: a transaction caught by a database restart may never answer (see `bounded`).
        await PollingLoop.run(name: "event processor", readiness: runtime.readiness, interval: pollInterval,
                              passLimit: .seconds(15), logger: runtime.logger) {
            // Only a full batch goes again at once: after a partial one the processor waits `pollInterval`, so
            // under steady load events are taken hundreds at a time, not a few per batch, and each batch's fixed
            // cost (queries, transaction, image and tag upserts) is shared; an event waits at most that interval
            // plus the batch before it.
            try await processBatch() >= batchSize
        }
    }

    /// A pending event, as read back.
    struct Pending: Sendable {
        var seq: Int64
        var registryID: UUID
        var eventID: String
        var source: String
        var action: String
        var mediaType: String?
        var repository: String
        var digest: String?
        var tag: String?
        var occurredAt: Date?
        var receivedAt: Date
    }

    /// Processes up to `batchSize` pending events; returns how many.
    @discardableResult
    func processBatch() async throws -> Int {
        let logger = runtime.logger
        let batchSize = self.batchSize
        // Registry facts first, outside the transaction: they come from discovery over HTTP.
        // System access here and below: the queue of events spans every tenant and is processed in arrival order
        // in one transaction; each row written takes its tenant from its registry (discovery's facts).
        let peeked = try await runtime.database.withSystemAccess(logger: logger) { connection in
            try await Self.walkPendingInOrder(connection, logger: logger)
            let rows = try await connection.query("""
                SELECT DISTINCT registry_id FROM (
                  SELECT registry_id FROM ingestion.events WHERE processed_at IS NULL ORDER BY seq LIMIT \(batchSize)) p
                """, logger: logger)
            var ids: [UUID] = []
            for try await id in rows.decode(UUID.self) { ids.append(id) }
            return ids
        }
        var registries: [UUID: RegisteredRegistry] = [:]
        var unknown = Set<UUID>()
        for id in peeked {
            if let registration = try await directory.registration(id: id) {
                registries[id] = registration.registry
            } else {
                unknown.insert(id)
            }
        }
        guard !registries.isEmpty || !unknown.isEmpty else { return 0 }
        let outbox = runtime.outbox
        return try await runtime.database.withSystemAccess(logger: logger) { connection -> Int in
            let locked = try await connection.query(
                "SELECT pg_try_advisory_xact_lock(hashtext('gantry.ingestion.events'))", logger: logger)
            for try await gotLock in locked.decode(Bool.self) where !gotLock { return 0 }
            try await Self.walkPendingInOrder(connection, logger: logger)
            let rows = try await connection.query("""
                SELECT seq, registry_id, event_id, source, action, media_type, repository, digest, tag, occurred_at, received_at
                FROM ingestion.events WHERE processed_at IS NULL ORDER BY seq LIMIT \(batchSize)
                """, logger: logger)
            var pending: [Pending] = []
            for try await (seq, registry, id, source, action, mediaType, repository, digest, tag, occurred, received) in rows.decode(
                (Int64, UUID, String, String, String, String?, String, String?, String?, Date?, Date).self) {
                pending.append(Pending(seq: seq, registryID: registry, eventID: id, source: source, action: action,
                                       mediaType: mediaType,
                                       repository: repository, digest: digest, tag: tag, occurredAt: occurred,
                                       receivedAt: received))
            }
            // The batch's writes plan as usual.
            try await connection.query("SET LOCAL enable_bitmapscan = on", logger: logger)
            var outcomes: [(Int64, String, Bool)] = []
            var live: [Pending] = []
            for event in pending {
                if registries[event.registryID] != nil {
                    live.append(event)
                } else if unknown.contains(event.registryID) {
                    outcomes.append((event.seq, "ignored: the registry is no longer registered", false))
                }
                // Otherwise the registry arrived after the peek: left for the next batch.
            }
            // Runs of pushes and pulls are applied set-wise (a few statements per run); deletes one by one,
            // in between, so that the order of events is kept.
            var index = 0
            while index < live.count {
                if live[index].action == "delete" {
                    let event = live[index]
                    let (outcome, scanRequested) = try await handleDelete(event, registry: registries[event.registryID]!,
                                                                          connection: connection, outbox: outbox, logger: logger)
                    outcomes.append((event.seq, outcome, scanRequested))
                    index += 1
                    continue
                }
                var end = index
                while end < live.count && live[end].action != "delete" { end += 1 }
                outcomes += try await applyPushesAndPulls(Array(live[index..<end]), registries: registries,
                                                          connection: connection, outbox: outbox, logger: logger)
                index = end
            }
            if !outcomes.isEmpty {
                // `processed_at IS NULL` lets the partial index `events_pending` find the rows (there is no other
                // index on seq), instead of a scan of every event ever recorded.
                try await connection.query("""
                    UPDATE ingestion.events e SET processed_at = now(), outcome = o.outcome, scan_requested = o.scan
                    FROM unnest(\(outcomes.map(\.0))::bigint[], \(outcomes.map(\.1))::text[], \(outcomes.map(\.2))::boolean[])
                      AS o(seq, outcome, scan)
                    WHERE e.seq = o.seq AND e.processed_at IS NULL
                    """, logger: logger)
            }
            return outcomes.count
        }
    }

    /// Makes this transaction read pending events by walking `events_pending` in `seq` order (until it sets
    /// `enable_bitmapscan` back on). The planner
    /// otherwise prefers a bitmap scan and a sort, which visits the heap for every index entry of an event
    /// processed since the last vacuum (80,000 dead entries for 300 pending events under load: 8–17 ms per
    /// query, twice a batch). An ordered index scan marks those entries dead the first time (`kill_prior_tuple`)
    /// and skips them after: about 1 ms.
    private static func walkPendingInOrder(_ connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query("SET LOCAL enable_bitmapscan = off", logger: logger)
    }

    /// An image as events name it.
    private struct ImageKey: Hashable {
        var registryID: UUID
        var repository: String
        var digest: String
    }

    /// Applies a run of push and pull events (no deletes) in a few statements: one upsert of every image
    /// named (latest push and pull times), one of the tags pushed (the last assignment of each tag wins),
    /// the scan requests (the first push of each image whose current generation was never requested),
    /// and their bookkeeping. Returns each event's outcome.
    private func applyPushesAndPulls(_ events: [Pending], registries: [UUID: RegisteredRegistry],
                                     connection: PostgresConnection, outbox: Outbox, logger: Logger) async throws
        -> [(Int64, String, Bool)] {
        var order: [ImageKey] = []
        var times: [ImageKey: (pushed: Date?, pulled: Date?)] = [:]
        var tags: [String: (ImageKey, String)] = [:]
        var tagOrder: [String] = []
        for event in events {
            guard let digest = event.digest, event.action == "push" || event.action == "pull" else { continue }
            let key = ImageKey(registryID: event.registryID, repository: event.repository, digest: digest)
            let at = event.occurredAt ?? event.receivedAt
            if times[key] == nil { order.append(key) }
            var entry = times[key] ?? (nil, nil)
            if event.action == "push" {
                entry.pushed = max(entry.pushed ?? at, at)
                if let tag = event.tag {
                    let tagKey = "\(event.registryID)\u{0}\(event.repository)\u{0}\(tag)"
                    if tags[tagKey] == nil { tagOrder.append(tagKey) }
                    tags[tagKey] = (key, tag)
                }
            } else {
                entry.pulled = max(entry.pulled ?? at, at)
            }
            times[key] = entry
        }
        var state: [ImageKey: (generation: Int, requested: Int?)] = [:]
        if !order.isEmpty {
            let text = { (date: Date?) in date.map(EventIntake.timestamp) ?? "" }
            let rows = try await connection.query("""
                INSERT INTO ingestion.images AS i (registry_id, repository, digest, tenant_id, subscription_id,
                  last_pushed_at, last_pulled_at)
                SELECT r, p, d, t, s, NULLIF(pu, '')::timestamptz, NULLIF(pl, '')::timestamptz
                FROM unnest(\(order.map(\.registryID))::uuid[], \(order.map(\.repository))::text[], \(order.map(\.digest))::text[],
                            \(order.map { registries[$0.registryID]!.tenantID })::uuid[],
                            \(order.map { registries[$0.registryID]!.subscriptionID })::uuid[],
                            \(order.map { text(times[$0]?.pushed) })::text[], \(order.map { text(times[$0]?.pulled) })::text[])
                  AS x(r, p, d, t, s, pu, pl)
                ON CONFLICT (registry_id, repository, digest) DO UPDATE SET
                  last_pushed_at = greatest(i.last_pushed_at, EXCLUDED.last_pushed_at),
                  last_pulled_at = greatest(i.last_pulled_at, EXCLUDED.last_pulled_at),
                  generation = i.generation
                    + CASE WHEN i.deleted_at IS NOT NULL AND EXCLUDED.last_pushed_at IS NOT NULL THEN 1 ELSE 0 END,
                  deleted_at = CASE WHEN EXCLUDED.last_pushed_at IS NOT NULL THEN NULL ELSE i.deleted_at END
                RETURNING registry_id, repository, digest, generation, scan_requested_generation
                """, logger: logger)
            for try await (registry, repository, digest, generation, requested) in rows.decode((UUID, String, String, Int, Int?).self) {
                state[ImageKey(registryID: registry, repository: repository, digest: digest)] = (generation, requested)
            }
        }
        if !tagOrder.isEmpty {
            let assignments = tagOrder.compactMap { tags[$0] }
            try await connection.query("""
                INSERT INTO ingestion.image_tags (registry_id, repository, tag, digest, tenant_id)
                SELECT * FROM unnest(\(assignments.map(\.0.registryID))::uuid[], \(assignments.map(\.0.repository))::text[],
                                     \(assignments.map(\.1))::text[], \(assignments.map(\.0.digest))::text[],
                                     \(assignments.map { registries[$0.0.registryID]!.tenantID })::uuid[])
                ON CONFLICT (registry_id, repository, tag) DO UPDATE SET digest = EXCLUDED.digest, updated_at = now()
                """, logger: logger)
        }
        // The first push of each image that needs a scan requests it.
        var requesters: [Int64: ImageKey] = [:]
        var requests: [(messageID: String, payload: ScannerAPI.Components.Schemas.ScanRequest)] = []
        var requestedKeys: [ImageKey] = []
        for event in events where event.action == "push" {
            guard let digest = event.digest, let registry = registries[event.registryID], registry.planEnabled else { continue }
            let key = ImageKey(registryID: event.registryID, repository: event.repository, digest: digest)
            guard let current = state[key], current.requested != current.generation,
                  !requestedKeys.contains(key) else { continue }
            let request = ScannerAPI.Components.Schemas.ScanRequest(
                messageId: DistributionEvents.messageID("scan-request", registryID: registry.registryID, eventID: event.eventID),
                tenantId: registry.tenantID.uuidString.lowercased(),
                subscriptionId: registry.subscriptionID.uuidString.lowercased(),
                registryId: registry.registryID.uuidString.lowercased(),
                repository: event.repository, digest: digest, tag: event.tag, trigger: .push)
            requests.append((request.messageId, request))
            requesters[event.seq] = key
            requestedKeys.append(key)
        }
        if !requests.isEmpty {
            try await outbox.enqueue(batch: requests, to: .scanner, path: "/internal/v1/scans", on: connection, logger: logger)
            try await connection.query("""
                UPDATE ingestion.images i SET scan_requested_generation = i.generation, scan_requested_at = now()
                FROM unnest(\(requestedKeys.map(\.registryID))::uuid[], \(requestedKeys.map(\.repository))::text[],
                            \(requestedKeys.map(\.digest))::text[]) AS k(r, p, d)
                WHERE i.registry_id = k.r AND i.repository = k.p AND i.digest = k.d
                """, logger: logger)
        }
        return events.map { event in
            switch event.action {
            case "push" where event.digest != nil:
                if requesters[event.seq] != nil { return (event.seq, "scan requested", true) }
                if registries[event.registryID]?.planEnabled != true {
                    return (event.seq, "recorded; the subscription's plan is disabled, so no scan", false)
                }
                return (event.seq, "recorded; this digest was already sent for scanning", false)
            case "pull" where event.digest != nil:
                return (event.seq, "pull recorded", false)
            default:
                return (event.seq, "ignored", false)
            }
        }
    }

    /// Applies one delete event; returns its outcome text and whether a scan was requested (never).
    private func handleDelete(_ event: Pending, registry: RegisteredRegistry, connection: PostgresConnection, outbox: Outbox,
                              logger: Logger) async throws -> (String, Bool) {
        let at = event.occurredAt ?? event.receivedAt
        switch (event.digest, event.tag) {
        case (let digest?, _):
            let deleted = try await markDeleted(registry: registry, repository: event.repository, digest: digest, at: at,
                                                connection: connection, logger: logger)
            // Distribution's digest-only delete without a media type may be a blob's: then only an image known
            // here goes to the scanner. ACR and Harbor deletes are always of manifests (artifacts).
            let isManifest = event.source != IncomingEvent.Source.distribution.rawValue
                || (event.mediaType.map(DistributionEvents.manifestMediaTypes.contains) ?? false)
            guard !deleted.isEmpty || isManifest else { return ("ignored: no image with this digest is known", false) }
            try await announceDeletion(of: [digest], registry: registry, repository: event.repository, at: at,
                                       eventID: event.eventID, connection: connection, outbox: outbox, logger: logger)
            return ("image deleted", false)

        case (nil, let tag?):
            try await connection.query("""
                DELETE FROM ingestion.image_tags
                WHERE registry_id = \(registry.registryID) AND repository = \(event.repository) AND tag = \(tag)
                """, logger: logger)
            return ("tag deleted; its digest stays pullable", false)

        case (nil, nil):
            let rows = try await connection.query("""
                UPDATE ingestion.images SET deleted_at = \(at)
                WHERE registry_id = \(registry.registryID) AND repository = \(event.repository) AND deleted_at IS NULL
                RETURNING digest
                """, logger: logger)
            var digests: [String] = []
            for try await digest in rows.decode(String.self) { digests.append(digest) }
            try await connection.query("""
                DELETE FROM ingestion.image_tags WHERE registry_id = \(registry.registryID) AND repository = \(event.repository)
                """, logger: logger)
            try await announceDeletion(of: digests.sorted(), registry: registry, repository: event.repository, at: at,
                                       eventID: event.eventID, connection: connection, outbox: outbox, logger: logger)
            return ("repository deleted (\(digests.count) images)", false)
        }
    }

    /// Marks one image deleted and removes its tags; returns the digest when the image was known and live.
    private func markDeleted(registry: RegisteredRegistry, repository: String, digest: String, at: Date,
                             connection: PostgresConnection, logger: Logger) async throws -> [String] {
        let rows = try await connection.query("""
            UPDATE ingestion.images SET deleted_at = \(at)
            WHERE registry_id = \(registry.registryID) AND repository = \(repository) AND digest = \(digest)
              AND deleted_at IS NULL
            RETURNING digest
            """, logger: logger)
        var deleted: [String] = []
        for try await value in rows.decode(String.self) { deleted.append(value) }
        try await connection.query("""
            DELETE FROM ingestion.image_tags WHERE registry_id = \(registry.registryID) AND repository = \(repository)
              AND digest = \(digest)
            """, logger: logger)
        return deleted
    }

    /// Tells the scanner, through the outbox, that images are gone.
    private func announceDeletion(of digests: [String], registry: RegisteredRegistry, repository: String, at: Date,
                                  eventID: String, connection: PostgresConnection, outbox: Outbox,
                                  logger: Logger) async throws {
        for digest in digests {
            let key = digests.count == 1 ? eventID : "\(eventID)/\(digest)"
            let deletion = ScannerAPI.Components.Schemas.ImageDeletion(
                messageId: DistributionEvents.messageID("image-deletion", registryID: registry.registryID, eventID: key),
                tenantId: registry.tenantID.uuidString.lowercased(),
                subscriptionId: registry.subscriptionID.uuidString.lowercased(),
                registryId: registry.registryID.uuidString.lowercased(), registryHost: registry.loginServer,
                repository: repository, digest: digest, deletedAt: at)
            try await outbox.enqueue(deletion, messageID: deletion.messageId, to: .scanner,
                                     path: "/internal/v1/images/deletions", on: connection, logger: logger)
        }
    }
}
