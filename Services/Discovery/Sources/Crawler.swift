import Foundation
import GantryModel
import GantryRuntime
import Logging
import PostgresNIO
import RegistryClient
import ScannerAPI
import ServiceLifecycle

/// A crawl row.
struct CrawlRecord: Sendable {
    var id: UUID
    var registryID: UUID
    var status: String
    var error: String?
    var startedAt: Date
    var finishedAt: Date?
    var repositories: Int
    var tags: Int
    var digests: Int
    var pages: Int
    var onboardingScans: Int
}

/// Why a crawl stopped early; the message is recorded on the crawl.
struct CrawlFailure: Error, CustomStringConvertible {
    let description: String
}

/// Walks a registry (distribution spec, "Listing Repositories" and "Listing Tags", `Link` pagination per RFC 8288;
/// manifests by tag then digest) into discovery's inventory: repositories, digests with their supportability, and
/// each tag's history. Everything a crawl learned is applied in one transaction at its end, so a failed crawl
/// changes nothing but its own record.
///
/// A crawl that cannot reach its registry raises `registryUnreachable` once per episode (`UnreachableRegistry`).
///
/// Every step runs in the registry's tenant's transaction (`withTenant`: row-level security); only the scheduler's
/// choice of the next due registry looks across tenants (`withSystemAccess`).
///
/// Bounds: each listing stops after `maxPages` pages, a `next` link already followed fails at once (a `_catalog`
/// that never ends), and a crawl fails beyond `maxEntries` repositories plus tags.
struct Crawler: Sendable {
    let database: PostgresClient
    let store: PostgresDiscoveryStore
    let client: RegistryClient
    let sealer: CredentialSealer
    let settings: DiscoverySettings
    let outbox: Outbox
    let logger: Logger

    /// What one crawl saw.
    struct Snapshot {
        var repositories: [String] = []
        var tags: [(repository: String, tag: String, digest: String)] = []
        var digests: [String: (repository: String, digest: String, mediaType: String, classification: Classification, reason: String)] = [:]
        /// Earlier digests of moved tags that the registry no longer has.
        var goneDigests: [(repository: String, digest: String)] = []
        var pages = 0
    }

    /// Crawls one registry now and returns the finished crawl record.
    /// - Returns: nil when a crawl of this registry is already running.
    func crawl(_ registry: RegistryRecord) async throws -> CrawlRecord? {
        guard try await claim(registry) else { return nil }
        let crawlID = UUID()
        let logger = self.logger
        try await database.withTenant(registry.tenantID, logger: logger) { connection in
            _ = try await connection.query("""
                INSERT INTO discovery.crawls (id, tenant_id, registry_id, status)
                VALUES (\(crawlID), \(registry.tenantID), \(registry.id), 'running')
                """, logger: logger)
        }
        var status = "succeeded"
        var errorText: String?
        var snapshot = Snapshot()
        var onboarding = 0
        var unreachable = false
        do {
            let subscription = try await store.subscription(tenantID: registry.tenantID, id: registry.subscriptionID)
            if let reason = registry.networkAccess.notApplicableReason {
                status = "skipped"
                errorText = reason
            } else if subscription?.planEnabled != true {
                status = "skipped"
                errorText = "the subscription's plan is disabled"
            } else {
                let endpoint = try endpoint(registry)
                snapshot = try await walk(endpoint, registry: registry)
                onboarding = try await apply(snapshot, registry: registry)
            }
        } catch {
            status = "failed"
            errorText = Self.describe(error)
            unreachable = UnreachableRegistry.isUnreachable(error)
            logger.warning("crawl failed", metadata: ["registry": "\(registry.loginServer)", "error": "\(errorText ?? "")"])
        }
        let repositories = snapshot.repositories.count
        let tags = snapshot.tags.count
        let digests = snapshot.digests.count
        let pages = snapshot.pages
        let (outbox, failure, succeeded, wasUnreachable) = (self.outbox, errorText ?? "", status == "succeeded", unreachable)
        let (started, finished) = try await database.withTenant(registry.tenantID, logger: logger) { connection in
            // The registryUnreachable episode commits with the crawl record that shows its cause.
            if wasUnreachable {
                try await UnreachableRegistry.recordFailure(registry, reason: failure, outbox: outbox, on: connection, logger: logger)
            } else if succeeded {
                try await UnreachableRegistry.recordSuccess(registry, on: connection, logger: logger)
            }
            let rows = try await connection.query("""
                WITH finished AS (
                  UPDATE discovery.crawls SET status = \(status), error = \(errorText), finished_at = now(),
                    repositories = \(repositories), tags = \(tags), digests = \(digests), pages = \(pages),
                    onboarding_scans = \(onboarding)
                  WHERE id = \(crawlID) RETURNING started_at, finished_at),
                released AS (
                  UPDATE discovery.registries SET crawl_started_at = NULL, last_crawl_at = now() WHERE id = \(registry.id))
                SELECT started_at, finished_at FROM finished
                """, logger: logger)
            var started = Date()
            var finished: Date?
            for try await (s, f) in rows.decode((Date, Date?).self) { started = s; finished = f }
            return (started, finished)
        }
        return CrawlRecord(id: crawlID, registryID: registry.id, status: status, error: errorText, startedAt: started,
                           finishedAt: finished, repositories: repositories, tags: tags, digests: digests, pages: pages,
                           onboardingScans: onboarding)
    }

    /// One pass of the background loop: crawls the most urgent due registry, of any tenant (so the choice runs with
    /// system access; the crawl itself in the registry's tenant). Returns whether it found one.
    func crawlDue() async throws -> Bool {
        let interval = settings.crawlInterval.map { Double($0.components.seconds) }
        let logger = self.logger
        let due = try await database.withSystemAccess(logger: logger) { connection -> UUID? in
            let rows = try await connection.query("""
            SELECT r.id FROM discovery.registries r JOIN discovery.subscriptions s ON s.id = r.subscription_id
            WHERE s.plan_enabled AND r.network_access <> 'privateNoAccess'
              AND (r.crawl_started_at IS NULL OR r.crawl_started_at < now() - interval '1 hour')
              AND (r.crawl_requested_at IS NOT NULL
                   OR (\(interval)::float8 IS NOT NULL
                       AND (r.last_crawl_at IS NULL OR r.last_crawl_at < now() - make_interval(secs => \(interval)::float8))))
            ORDER BY r.crawl_requested_at NULLS LAST, r.last_crawl_at NULLS FIRST LIMIT 1
            """, logger: logger)
            var due: UUID?
            for try await id in rows.decode(UUID.self) { due = id }
            return due
        }
        guard let due, let registry = try await store.registry(id: due) else { return false }
        _ = try await crawl(registry)
        return true
    }

    /// Marks the registry as being crawled; false when another crawl holds it (stale claims expire after an hour).
    private func claim(_ registry: RegistryRecord) async throws -> Bool {
        let logger = self.logger
        return try await database.withTenant(registry.tenantID, logger: logger) { connection in
            let rows = try await connection.query("""
                UPDATE discovery.registries SET crawl_started_at = now(), crawl_requested_at = NULL
                WHERE id = \(registry.id) AND (crawl_started_at IS NULL OR crawl_started_at < now() - interval '1 hour')
                RETURNING id
                """, logger: logger)
            for try await _ in rows { return true }
            return false
        }
    }

    func endpoint(_ registry: RegistryRecord) throws -> RegistryEndpoint {
        guard let baseURL = URL(string: "\(registry.insecure ? "http" : "https")://\(registry.loginServer)") else {
            throw CrawlFailure(description: "'\(registry.loginServer)' does not make a URL")
        }
        let credentials = try registry.credentialsSealed.map {
            try sealer.open($0, keyID: registry.keyID, registryID: registry.id)
        }
        return RegistryEndpoint(baseURL: baseURL, credentials: credentials.map {
            RegistryCredentials(username: $0.username, password: $0.password)
        })
    }

    /// Lists everything and resolves each tag to its digest; classifies digests not seen before.
    private func walk(_ endpoint: RegistryEndpoint, registry: RegistryRecord) async throws -> Snapshot {
        var snapshot = Snapshot()
        try await client.ping(endpoint)
        var entries = 0
        let repositories = try await list("the catalog", pages: &snapshot.pages, entries: &entries) { url in
            try await client.catalogPage(endpoint, url: url, pageSize: settings.pageSize)
        }
        snapshot.repositories = Array(Set(repositories)).sorted()
        let known = try await knownDigests(registry)
        for repository in snapshot.repositories {
            let tags = try await list("the tag list of \(repository)", pages: &snapshot.pages, entries: &entries) { url in
                try await client.tagsPage(endpoint, repository: repository, url: url, pageSize: settings.pageSize)
            }
            for tag in Set(tags).sorted() {
                let manifest: FetchedManifest
                do {
                    manifest = try await client.anyManifest(endpoint, repository: repository, reference: tag)
                } catch RegistryError.notFound {
                    continue // deleted between the listing and now
                }
                let digest = manifest.digest.description
                snapshot.tags.append((repository, tag, digest))
                let key = "\(repository)@\(digest)"
                guard snapshot.digests[key] == nil else { continue }
                if let existing = known[key] {
                    snapshot.digests[key] = (repository, digest, existing.mediaType, existing.classification, existing.reason)
                } else {
                    let (classification, reason) = try await Supportability(client: client)
                        .classify(endpoint, repository: repository, manifest: manifest)
                    snapshot.digests[key] = (repository, digest, manifest.mediaType, classification, reason)
                }
            }
        }
        // Earlier digests of moved tags stay listed while the registry still has them.
        let current = Set(snapshot.digests.keys)
        for (repository, digest) in try await supersededDigests(registry) where !current.contains("\(repository)@\(digest)") {
            do {
                _ = try await client.anyManifest(endpoint, repository: repository, reference: digest)
            } catch RegistryError.notFound {
                snapshot.goneDigests.append((repository, digest))
            }
        }
        return snapshot
    }

    /// Follows a paginated listing to its end within the bounds.
    private func list(_ what: String, pages: inout Int, entries: inout Int,
                      page: (String?) async throws -> ListingPage) async throws -> [String] {
        var names: [String] = []
        var url: String?
        var seen: Set<String> = []
        var listingPages = 0
        repeat {
            let result = try await page(url)
            pages += 1
            listingPages += 1
            names += result.names
            entries += result.names.count
            guard entries <= settings.maxEntries else {
                throw CrawlFailure(description: "\(what): more than \(settings.maxEntries) repositories and tags in one crawl (GANTRY_DISCOVERY_MAX_ENTRIES); stopped")
            }
            if let next = result.next {
                guard seen.insert(next).inserted, next != url else {
                    throw CrawlFailure(description: "\(what) never ends: its Link header points back to \(next.prefix(300)), a page already read")
                }
                guard listingPages < settings.maxPages else {
                    throw CrawlFailure(description: "\(what) did not end after \(settings.maxPages) pages (GANTRY_DISCOVERY_MAX_PAGES); stopped")
                }
            }
            url = result.next
        } while url != nil
        return names
    }

    private func knownDigests(_ registry: RegistryRecord) async throws
        -> [String: (mediaType: String, classification: Classification, reason: String)] {
        let logger = self.logger
        return try await database.withTenant(registry.tenantID, logger: logger) { connection in
            let rows = try await connection.query("""
                SELECT repository, digest, media_type, classification, reason FROM discovery.digests WHERE registry_id = \(registry.id)
                """, logger: logger)
            var known: [String: (mediaType: String, classification: Classification, reason: String)] = [:]
            for try await (repository, digest, mediaType, classification, reason) in rows.decode((String, String, String, String, String).self) {
                known["\(repository)@\(digest)"] = (mediaType, Classification(rawValue: classification) ?? .supported, reason)
            }
            return known
        }
    }

    private func supersededDigests(_ registry: RegistryRecord) async throws -> [(String, String)] {
        let logger = self.logger
        return try await database.withTenant(registry.tenantID, logger: logger) { connection in
            let rows = try await connection.query("""
                SELECT DISTINCT repository, digest FROM discovery.tag_history
                WHERE registry_id = \(registry.id) AND superseded_at IS NOT NULL AND removed_at IS NULL
                """, logger: logger)
            var result: [(String, String)] = []
            for try await pair in rows.decode((String, String).self) { result.append(pair) }
            return result
        }
    }

    /// Applies a snapshot in one transaction; on the first successful crawl after enablement (when configured)
    /// requests an onboarding scan of every current supported digest. Returns how many scans were requested.
    private func apply(_ snapshot: Snapshot, registry: RegistryRecord) async throws -> Int {
        let logger = self.logger
        let outbox = self.outbox
        let onboardingEnabled = settings.onboardingScans
        let tenant = registry.tenantID
        let id = registry.id
        let repositories = snapshot.repositories
        let tagRepositories = snapshot.tags.map(\.repository)
        let tagNames = snapshot.tags.map(\.tag)
        let tagDigests = snapshot.tags.map(\.digest)
        let digests = Array(snapshot.digests.values)
        let goneRepositories = snapshot.goneDigests.map(\.repository)
        let goneDigests = snapshot.goneDigests.map(\.digest)
        return try await database.withTenant(tenant, logger: logger) { connection in
            // Repositories: seen ones upserted (and revived), missing ones marked removed.
            try await connection.query("""
                INSERT INTO discovery.repositories (tenant_id, registry_id, name)
                SELECT \(tenant), \(id), name FROM unnest(\(repositories)::text[]) AS name
                ON CONFLICT (registry_id, name) DO UPDATE SET last_seen_at = now(), removed_at = NULL
                """, logger: logger)
            try await connection.query("""
                UPDATE discovery.repositories SET removed_at = now()
                WHERE registry_id = \(id) AND removed_at IS NULL AND NOT (name = ANY(\(repositories)::text[]))
                """, logger: logger)
            // Digests.
            try await connection.query("""
                INSERT INTO discovery.digests (tenant_id, registry_id, repository, digest, media_type, classification, reason)
                SELECT \(tenant), \(id), r, d, m, c, why
                FROM unnest(\(digests.map(\.repository))::text[], \(digests.map(\.digest))::text[],
                            \(digests.map(\.mediaType))::text[], \(digests.map(\.classification.rawValue))::text[],
                            \(digests.map(\.reason))::text[]) AS t(r, d, m, c, why)
                ON CONFLICT (registry_id, repository, digest) DO UPDATE SET last_seen_at = now(), removed_at = NULL
                """, logger: logger)
            // Tags: unchanged ones touched; moved ones superseded then inserted; new ones inserted.
            try await connection.query("""
                WITH seen AS (SELECT * FROM unnest(\(tagRepositories)::text[], \(tagNames)::text[], \(tagDigests)::text[]) AS s(r, t, d))
                UPDATE discovery.tag_history h SET last_seen_at = now()
                FROM seen WHERE h.registry_id = \(id) AND h.superseded_at IS NULL AND h.removed_at IS NULL
                  AND h.repository = seen.r AND h.tag = seen.t AND h.digest = seen.d
                """, logger: logger)
            try await connection.query("""
                WITH seen AS (SELECT * FROM unnest(\(tagRepositories)::text[], \(tagNames)::text[], \(tagDigests)::text[]) AS s(r, t, d))
                UPDATE discovery.tag_history h SET superseded_at = now()
                FROM seen WHERE h.registry_id = \(id) AND h.superseded_at IS NULL AND h.removed_at IS NULL
                  AND h.repository = seen.r AND h.tag = seen.t AND h.digest <> seen.d
                """, logger: logger)
            try await connection.query("""
                UPDATE discovery.tag_history h SET removed_at = now()
                WHERE h.registry_id = \(id) AND h.superseded_at IS NULL AND h.removed_at IS NULL
                  AND NOT EXISTS (SELECT 1 FROM unnest(\(tagRepositories)::text[], \(tagNames)::text[]) AS s(r, t)
                                  WHERE s.r = h.repository AND s.t = h.tag)
                """, logger: logger)
            try await connection.query("""
                INSERT INTO discovery.tag_history (tenant_id, registry_id, repository, tag, digest)
                SELECT \(tenant), \(id), s.r, s.t, s.d
                FROM unnest(\(tagRepositories)::text[], \(tagNames)::text[], \(tagDigests)::text[]) AS s(r, t, d)
                WHERE NOT EXISTS (SELECT 1 FROM discovery.tag_history h
                                  WHERE h.registry_id = \(id) AND h.repository = s.r AND h.tag = s.t
                                    AND h.superseded_at IS NULL AND h.removed_at IS NULL)
                """, logger: logger)
            // Digests gone from the registry, and those no tag lists and no history keeps (untagged, deleted repository).
            try await connection.query("""
                UPDATE discovery.tag_history h SET removed_at = now()
                FROM unnest(\(goneRepositories)::text[], \(goneDigests)::text[]) AS g(r, d)
                WHERE h.registry_id = \(id) AND h.repository = g.r AND h.digest = g.d AND h.removed_at IS NULL
                """, logger: logger)
            try await connection.query("""
                UPDATE discovery.digests dg SET removed_at = now()
                WHERE dg.registry_id = \(id) AND dg.removed_at IS NULL
                  AND NOT EXISTS (SELECT 1 FROM discovery.tag_history h
                                  WHERE h.registry_id = dg.registry_id AND h.repository = dg.repository
                                    AND h.digest = dg.digest AND h.removed_at IS NULL)
                """, logger: logger)
            guard onboardingEnabled, registry.onboardedAt == nil else { return 0 }
            let marked = try await connection.query("""
                UPDATE discovery.registries SET onboarded_at = now() WHERE id = \(id) AND onboarded_at IS NULL RETURNING id
                """, logger: logger)
            var first = false
            for try await _ in marked { first = true }
            guard first else { return 0 }
            let supported = digests.filter { $0.classification == .supported }
            let requests = supported.map { entry in
                let request = Components.Schemas.ScanRequest(
                    messageId: "onboarding:\(id.uuidString.lowercased()):\(entry.repository)@\(entry.digest)",
                    tenantId: tenant.uuidString.lowercased(),
                    subscriptionId: registry.subscriptionID.uuidString.lowercased(),
                    registryId: id.uuidString.lowercased(), repository: entry.repository, digest: entry.digest,
                    tag: snapshot.tags.first { $0.repository == entry.repository && $0.digest == entry.digest }?.tag,
                    trigger: .manual)
                return (messageID: request.messageId, payload: request)
            }
            if !requests.isEmpty {
                try await outbox.enqueue(batch: requests, to: .scanner, path: "/internal/v1/scans", on: connection, logger: logger)
            }
            return requests.count
        }
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? PostgresTransactionError, let inner = error.closureError { return describe(inner) }
        return String(describing: error).prefix(2000).description
    }
}

/// The background crawler: crawls registries when their plan is enabled and every `crawlInterval`.
struct CrawlService: Service {
    let crawler: Crawler
    let readiness: Readiness
    let interval: Duration
    let logger: Logger

    func run() async throws {
        await PollingLoop.run(name: "discovery crawl", readiness: readiness, interval: interval, logger: logger) {
            try await crawler.crawlDue()
        }
    }
}
