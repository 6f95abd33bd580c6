import Foundation
import PostgresNIO

/// Reads of the crawl inventory, each scoped to a tenant's registry and run in that tenant's transaction.
extension PostgresDiscoveryStore {
    struct RepositoryRow: Sendable {
        var name: String
        var firstSeenAt: Date
        var lastSeenAt: Date
        var removedAt: Date?
    }

    struct TagRow: Sendable {
        var tag: String
        var digest: String
        var firstSeenAt: Date
        var lastSeenAt: Date
        var supersededAt: Date?
        var removedAt: Date?
    }

    struct DigestRow: Sendable {
        var repository: String
        var digest: String
        var mediaType: String
        var classification: String
        var reason: String
        var firstSeenAt: Date
        var lastSeenAt: Date
        var removedAt: Date?
    }

    func repositories(tenantID: UUID, registryID: UUID) async throws -> [RepositoryRow] {
        let logger = self.logger
        return try await scoped(.tenant(tenantID)) { connection in
            let rows = try await connection.query("""
                SELECT name, first_seen_at, last_seen_at, removed_at FROM discovery.repositories
                WHERE tenant_id = \(tenantID) AND registry_id = \(registryID) ORDER BY name
                """, logger: logger)
            var result: [RepositoryRow] = []
            for try await (name, first, last, removed) in rows.decode((String, Date, Date, Date?).self) {
                result.append(RepositoryRow(name: name, firstSeenAt: first, lastSeenAt: last, removedAt: removed))
            }
            return result
        }
    }

    /// Tag history of one repository: by tag, newest entry first.
    func tags(tenantID: UUID, registryID: UUID, repository: String) async throws -> [TagRow] {
        let logger = self.logger
        return try await scoped(.tenant(tenantID)) { connection in
            let rows = try await connection.query("""
                SELECT tag, digest, first_seen_at, last_seen_at, superseded_at, removed_at FROM discovery.tag_history
                WHERE tenant_id = \(tenantID) AND registry_id = \(registryID) AND repository = \(repository)
                ORDER BY tag, id DESC
                """, logger: logger)
            var result: [TagRow] = []
            for try await (tag, digest, first, last, superseded, removed) in rows.decode((String, String, Date, Date, Date?, Date?).self) {
                result.append(TagRow(tag: tag, digest: digest, firstSeenAt: first, lastSeenAt: last, supersededAt: superseded,
                                     removedAt: removed))
            }
            return result
        }
    }

    func digests(tenantID: UUID, registryID: UUID, repository: String) async throws -> [DigestRow] {
        let logger = self.logger
        return try await scoped(.tenant(tenantID)) { connection in
            let rows = try await connection.query("""
                SELECT repository, digest, media_type, classification, reason, first_seen_at, last_seen_at, removed_at
                FROM discovery.digests
                WHERE tenant_id = \(tenantID) AND registry_id = \(registryID) AND repository = \(repository)
                ORDER BY first_seen_at, digest
                """, logger: logger)
            var result: [DigestRow] = []
            for try await (repository, digest, mediaType, classification, reason, first, last, removed) in rows.decode(
                (String, String, String, String, String, Date, Date, Date?).self) {
                result.append(DigestRow(repository: repository, digest: digest, mediaType: mediaType, classification: classification,
                                        reason: reason, firstSeenAt: first, lastSeenAt: last, removedAt: removed))
            }
            return result
        }
    }

    /// Records the scanner's classification of a digest (replacing the one read from its manifest).
    func recordClassification(tenantID: UUID, registryID: UUID, repository: String, digest: String,
                              classification: String, reason: String) async throws {
        let logger = self.logger
        try await scoped(.tenant(tenantID)) { connection in
            _ = try await connection.query("""
                INSERT INTO discovery.digests (tenant_id, registry_id, repository, digest, media_type, classification, reason)
                VALUES (\(tenantID), \(registryID), \(repository), \(digest), 'unknown', \(classification), \(reason))
                ON CONFLICT (registry_id, repository, digest)
                DO UPDATE SET classification = EXCLUDED.classification, reason = EXCLUDED.reason
                """, logger: logger)
        }
    }

    func crawls(tenantID: UUID, registryID: UUID, limit: Int) async throws -> [CrawlRecord] {
        let logger = self.logger
        return try await scoped(.tenant(tenantID)) { connection in
            let rows = try await connection.query("""
                SELECT id, registry_id, status, error, started_at, finished_at, repositories, tags, digests, pages, onboarding_scans
                FROM discovery.crawls WHERE tenant_id = \(tenantID) AND registry_id = \(registryID)
                ORDER BY started_at DESC LIMIT \(limit)
                """, logger: logger)
            var result: [CrawlRecord] = []
            for try await (id, registry, status, error, started, finished, repositories, tags, digests, pages, onboarding) in rows.decode(
                (UUID, UUID, String, String?, Date, Date?, Int, Int, Int, Int, Int).self) {
                result.append(CrawlRecord(id: id, registryID: registry, status: status, error: error, startedAt: started,
                                          finishedAt: finished, repositories: repositories, tags: tags, digests: digests,
                                          pages: pages, onboardingScans: onboarding))
            }
            return result
        }
    }
}
