import Foundation
import GantryModel
import GantryRuntime
import IngestionAPI
import Logging
import PostgresNIO

/// The webhook request path: authenticate the sender, record the validated events, answer. Nothing
/// else happens here (the event processor does the rest), so intake stays fast, and a request is
/// acknowledged only once its events are committed.
struct EventIntake: Sendable {
    let directory: RegistryDirectory
    let writer: EventWriter
    /// Accept registries without a webhook secret (development profile only).
    let allowUnsetSecrets: Bool
    let logger: Logger

    /// Authenticates and records `webhook`.
    /// - Parameter authorization: the request's `Authorization` header.
    /// - Throws: `ProblemError` 404 for an unregistered host, 401 for a missing or wrong secret; the
    ///   database's error when the events could not be recorded (the registry then retries).
    func receive(_ webhook: ValidatedWebhook, authorization: String?) async throws -> Components.Schemas.EnvelopeReceipt {
        guard let host = webhook.host else {
            // Nothing to record and no registry named: nothing can happen, so there is nothing to authenticate.
            return .init(received: webhook.received, recorded: 0, duplicates: 0, ignored: webhook.ignored)
        }
        guard let registration = try await directory.registration(host: host) else {
            throw ProblemError.notFound("no registry is registered for host '\(host.prefix(255))'")
        }
        try WebhookSecrets.verify(authorization, registration: registration, allowUnset: allowUnsetSecrets)
        if registration.secretSHA256 == nil {
            logger.warning("unauthenticated webhook accepted (no secret set; development profile)",
                           metadata: ["registry": "\(registration.registry.loginServer)"])
        }
        let registry = registration.registry
        let recorded = webhook.events.isEmpty ? 0
            : try await writer.record(webhook.events, registryID: registry.registryID, tenantID: registry.tenantID)
        return .init(registryId: registry.registryID.uuidString.lowercased(), received: webhook.received,
                     recorded: recorded, duplicates: webhook.events.count - recorded, ignored: webhook.ignored)
    }

    /// RFC 3339 in UTC with microseconds (PostgreSQL's precision).
    static func timestamp(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }
}

/// Records events in `ingestion.events`, combining the events of concurrent requests into one INSERT
/// (group commit): under load, requests that arrive while an earlier insert is in flight are written
/// together, so the database does one statement and one commit for many requests; with no load, a
/// request is written at once, alone. At most `maxInFlight` inserts run at a time: one by default, since
/// two concurrent inserts contend for the same index pages and halve the batches (measured with
/// `scripts/bench-intake.sh`: 6,514 against 5,082 requests/s at 16 connections, event processor stopped).
/// The price: an insert that hangs (a database restart) holds up every request until `bounded` gives up after
/// 15 s; those requests then fail with 500 and the registries send their events again.
///
/// A request's events are in one statement, so they are recorded all or none, in order (`seq`, which
/// the processor follows); an event ID already recorded for its registry, or repeated earlier in the
/// same statement, is a duplicate (the first occurrence is the recorded one).
actor EventWriter {
    private struct Waiting {
        var events: [IncomingEvent]
        var registryID: UUID
        var tenantID: UUID
        var continuation: CheckedContinuation<Int, any Error>
    }

    private let database: PostgresClient
    private let logger: Logger
    private let maxInFlight: Int
    private let maxBatchEvents: Int
    private var queue: [Waiting] = []
    private var inFlight = 0

    init(database: PostgresClient, logger: Logger, maxInFlight: Int = 1, maxBatchEvents: Int = 2000) {
        self.database = database
        self.logger = logger
        self.maxInFlight = maxInFlight
        self.maxBatchEvents = maxBatchEvents
    }

    /// Records `events` of one registry; returns how many were new.
    /// - Throws: the database's error (nothing of the request was recorded).
    func record(_ events: [IncomingEvent], registryID: UUID, tenantID: UUID) async throws -> Int {
        try await withCheckedThrowingContinuation { continuation in
            queue.append(Waiting(events: events, registryID: registryID, tenantID: tenantID, continuation: continuation))
            if inFlight < maxInFlight {
                inFlight += 1
                Task { await self.drain() }
            }
        }
    }

    /// Writes batches until the queue is empty.
    private func drain() async {
        while !queue.isEmpty {
            var batch: [Waiting] = []
            var count = 0
            while let next = queue.first, batch.isEmpty || count + next.events.count <= maxBatchEvents {
                batch.append(queue.removeFirst())
                count += next.events.count
            }
            let requests = batch.map { (events: $0.events, registryID: $0.registryID, tenantID: $0.tenantID) }
            let database = self.database, logger = self.logger
            do {
                // Bounded: a statement caught by a database restart may never answer (see `bounded`); its
                // requests then fail and the registries re-send them (duplicates are recognised).
                let recorded = try await bounded("recording \(count) events", .seconds(15)) {
                    try await Self.insert(requests, database: database, logger: logger)
                }
                for (waiting, value) in zip(batch, recorded) { waiting.continuation.resume(returning: value) }
            } catch {
                for waiting in batch { waiting.continuation.resume(throwing: error) }
            }
        }
        inFlight -= 1
    }

    /// One INSERT for the whole batch; returns, per request, how many of its events were new.
    private static func insert(_ batch: [(events: [IncomingEvent], registryID: UUID, tenantID: UUID)],
                               database: PostgresClient, logger: Logger) async throws -> [Int] {
        var statement = RecordEvents()
        for waiting in batch {
            for event in waiting.events {
                statement.registries.append(waiting.registryID)
                statement.tenants.append(waiting.tenantID)
                statement.ids.append(event.id)
                statement.sources.append(event.source.rawValue)
                statement.actions.append(event.action)
                statement.mediaTypes.append(event.mediaType ?? "")
                statement.repositories.append(event.repository)
                statement.digests.append(event.digest?.description ?? "")
                statement.tags.append(event.tag ?? "")
                statement.times.append(event.occurredAt.map(EventIntake.timestamp) ?? "")
            }
        }
        let rows = try await database.execute(statement, logger: logger)
        var inserted = Set<String>()
        for try await (registry, id) in rows { inserted.insert("\(registry)\u{0}\(id)") }
        // The first occurrence of an inserted key in batch order is the one that was recorded.
        return batch.map { waiting in
            var recorded = 0
            for event in waiting.events where inserted.remove("\(waiting.registryID)\u{0}\(event.id)") != nil { recorded += 1 }
            return recorded
        }
    }
}

/// `ingestion.record_events` (migration 0006) as a prepared statement: one call per group commit, so parsing
/// and planning it once per connection rather than once per call saves the database a share of each batch.
/// It runs with system access, since it carries the requests of many registries, hence tenants; each row's
/// tenant is its registry's, as discovery states it, never taken from the webhook. Empty strings stand for
/// absent media type, digest, tag and time. Rows: the (registry, event ID) pairs that were new.
struct RecordEvents: PostgresPreparedStatement {
    static let sql = """
        SELECT recorded_registry, recorded_event FROM ingestion.record_events(
          $1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[])
        """
    typealias Row = (UUID, String)

    var registries: [UUID] = [], tenants: [UUID] = [], ids: [String] = [], sources: [String] = [], actions: [String] = []
    var mediaTypes: [String] = [], repositories: [String] = [], digests: [String] = [], tags: [String] = []
    var times: [String] = []

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 10)
        bindings.append(registries)
        bindings.append(tenants)
        for texts in [ids, sources, actions, mediaTypes, repositories, digests, tags, times] { bindings.append(texts) }
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}
