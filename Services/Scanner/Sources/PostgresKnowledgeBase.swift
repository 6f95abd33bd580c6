import Foundation
import GantryRuntime
import Logging
import PostgresNIO
import VulnerabilityDB

/// The outcome of importing one feed document.
struct FeedImportResult: Sendable {
    var source: String
    var kind: FeedKind
    var namespaces: [String]
    var vulnerabilities: Int
    var affected: Int
    var changed: Bool
    var fingerprint: String
    /// The update operation written; nil when the document was unchanged.
    var operation: Int64?
    var added: Int
    var removed: Int
}

/// One row of an update operation's change list.
struct KnowledgeBaseChange: Sendable, Hashable {
    var operation: Int64
    var change: String
    var namespace: String
    var packageName: String
    var vulnerabilityID: String
}

/// The vulnerability knowledge base in schema `scanner` (tables `kb_*`), and the `VulnerabilityStore`
/// the matcher reads.
///
/// Each feed document is one source; an import replaces the source's rows atomically under an
/// advisory lock, and an unchanged document (same fingerprint, SHA-256 over its normalised JSON) writes
/// nothing. A changing import is an update operation whose added and removed affected rows are listed
/// in `kb_changes`, so the difference between two operations can be listed (`changes(after:upTo:)`).
struct PostgresKnowledgeBase: VulnerabilityStore {
    let database: PostgresClient
    let logger: Logger

    /// Stores one document (see the type's description).
    func importDocument(_ document: FeedDocument) async throws -> FeedImportResult {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        encoder.dateEncodingStrategy = .iso8601
        var normalised = document
        normalised.notes = []
        let source = document.source
        let kind = document.kind.rawValue
        let namespaces = Array(Set(document.affected.map(\.namespace))).sorted()
        // Each row's JSON identifies its content (row hash, for the change list); the fingerprint is
        // over every row's JSON in sorted order, so document order never matters.
        let rows = try normalised.affected.map { row -> (AffectedPackage, String, String) in
            let json = String(decoding: try encoder.encode(row), as: UTF8.self)
            return (row, json, Checksum.sha256Hex(Data(json.utf8)))
        }.sorted { $0.1 < $1.1 }
        let records = try normalised.vulnerabilities.map { ($0, String(decoding: try encoder.encode($0), as: UTF8.self)) }
            .sorted { $0.1 < $1.1 }
        let kevs = try normalised.kev.map { ($0, String(decoding: try encoder.encode($0), as: UTF8.self)) }
            .sorted { $0.1 < $1.1 }
        let epssLines = try normalised.epss.map { String(decoding: try encoder.encode($0), as: UTF8.self) }.sorted()
        let fingerprint = Checksum.sha256Hex(Data((["kind:" + kind] + rows.map(\.1) + ["--"] + records.map(\.1) + ["--"]
            + kevs.map(\.1) + ["--"] + epssLines).joined(separator: "\n").utf8))
        let logger = self.logger
        let outcome = try await database.withTransaction(logger: logger) { connection -> (Int64, Int, Int)? in
            try await connection.query("SELECT pg_advisory_xact_lock(hashtext(\("gantry.feed." + source)))", logger: logger)
            let existing = try await connection.query(
                "SELECT fingerprint FROM scanner.kb_feeds WHERE source = \(source)", logger: logger)
            var unchanged = false
            for try await stored in existing.decode(String.self) where stored == fingerprint { unchanged = true }
            if unchanged {
                // Fetched and readable, just not changed: the feed is current (feedsStale counts from here).
                try await connection.query("UPDATE scanner.kb_feeds SET checked_at = now() WHERE source = \(source)",
                                           logger: logger)
                return nil
            }
            // Old row identities, to list what this operation adds and removes.
            var old: [String: (String, String, String)] = [:]
            let oldRows = try await connection.query(
                "SELECT row_hash, namespace, package_name, vulnerability_id FROM scanner.kb_affected WHERE source = \(source)",
                logger: logger)
            for try await (hash, namespace, name, id) in oldRows.decode((String, String, String, String).self) {
                old[hash] = (namespace, name, id)
            }
            let newHashes = Set(rows.map(\.2))
            let added = rows.filter { old[$0.2] == nil }
            let removed = old.filter { !newHashes.contains($0.key) }.map(\.value)
            var operation: Int64 = 0
            let inserted = try await connection.query("""
                INSERT INTO scanner.kb_update_operations (source, kind, fingerprint, added, removed)
                VALUES (\(source), \(kind), \(fingerprint), \(added.count), \(removed.count)) RETURNING id
                """, logger: logger)
            for try await id in inserted.decode(Int64.self) { operation = id }
            try await connection.query("DELETE FROM scanner.kb_feeds WHERE source = \(source)", logger: logger)
            try await connection.query("""
                INSERT INTO scanner.kb_feeds (source, kind, fingerprint, namespaces, vulnerabilities, affected, kev, epss, last_operation)
                VALUES (\(source), \(kind), \(fingerprint), \(namespaces)::text[], \(records.count), \(rows.count),
                        \(kevs.count), \(normalised.epss.count), \(operation))
                """, logger: logger)
            for chunk in Self.chunks(rows) {
                try await connection.query("""
                    INSERT INTO scanner.kb_affected (source, namespace, package_name, vulnerability_id, row_hash, entry)
                    SELECT \(source), n, p, v, h, e::jsonb
                    FROM unnest(\(chunk.map(\.0.namespace))::text[], \(chunk.map(\.0.packageName))::text[],
                                \(chunk.map(\.0.vulnerabilityID))::text[], \(chunk.map(\.2))::text[], \(chunk.map(\.1))::text[])
                      AS t(n, p, v, h, e)
                    """, logger: logger)
            }
            // A feed may list one id twice (two records); the last wins.
            var uniqueRecords: [String: (VulnerabilityRecord, String)] = [:]
            for record in records { uniqueRecords[record.0.id] = record }
            for chunk in Self.chunks(uniqueRecords.values.sorted { $0.0.id < $1.0.id }) {
                try await connection.query("""
                    INSERT INTO scanner.kb_vulnerabilities (source, id, aliases, record)
                    SELECT \(source), i, COALESCE(string_to_array(NULLIF(a, ''), ' '), '{}'), r::jsonb
                    FROM unnest(\(chunk.map(\.0.id))::text[], \(chunk.map { $0.0.aliases.joined(separator: " ") })::text[],
                                \(chunk.map(\.1))::text[]) AS t(i, a, r)
                    """, logger: logger)
            }
            var uniqueKEV: [String: (KEVEntry, String)] = [:]
            for entry in kevs { uniqueKEV[entry.0.cve] = entry }
            for chunk in Self.chunks(uniqueKEV.values.sorted { $0.0.cve < $1.0.cve }) {
                try await connection.query("""
                    INSERT INTO scanner.kb_kev (source, cve, entry)
                    SELECT \(source), c, e::jsonb FROM unnest(\(chunk.map(\.0.cve))::text[], \(chunk.map(\.1))::text[]) AS t(c, e)
                    """, logger: logger)
            }
            var uniqueEPSS: [String: EPSSScore] = [:]
            for score in normalised.epss { uniqueEPSS[score.cve] = score }
            for chunk in Self.chunks(uniqueEPSS.values.sorted { $0.cve < $1.cve }) {
                try await connection.query("""
                    INSERT INTO scanner.kb_epss (source, cve, epss, percentile, score_date)
                    SELECT \(source), c, e, p, NULLIF(d, '')
                    FROM unnest(\(chunk.map(\.cve))::text[], \(chunk.map(\.epss))::float8[], \(chunk.map(\.percentile))::float8[],
                                \(chunk.map { $0.date ?? "" })::text[]) AS t(c, e, p, d)
                    """, logger: logger)
            }
            let changeRows = added.map { ("added", $0.0.namespace, $0.0.packageName, $0.0.vulnerabilityID) }
                + removed.map { ("removed", $0.0, $0.1, $0.2) }
            for chunk in Self.chunks(changeRows) {
                try await connection.query("""
                    INSERT INTO scanner.kb_changes (operation, change, namespace, package_name, vulnerability_id)
                    SELECT \(operation), c, n, p, v
                    FROM unnest(\(chunk.map(\.0))::text[], \(chunk.map(\.1))::text[], \(chunk.map(\.2))::text[],
                                \(chunk.map(\.3))::text[]) AS t(c, n, p, v)
                    """, logger: logger)
            }
            return (operation, added.count, removed.count)
        }
        logger.info("feed imported", metadata: [
            "source": "\(source)", "affected": "\(rows.count)", "vulnerabilities": "\(records.count)",
            "changed": "\(outcome != nil)",
        ])
        return FeedImportResult(source: source, kind: document.kind, namespaces: namespaces,
                                vulnerabilities: records.count, affected: rows.count, changed: outcome != nil,
                                fingerprint: fingerprint, operation: outcome?.0, added: outcome?.1 ?? 0,
                                removed: outcome?.2 ?? 0)
    }

    /// The affected rows added and removed by the update operations after `after` up to and including
    /// `upTo` (nil: the latest), in operation order.
    func changes(after: Int64, upTo: Int64?) async throws -> [KnowledgeBaseChange] {
        let rows = try await database.query("""
            SELECT operation, change, namespace, package_name, vulnerability_id FROM scanner.kb_changes
            WHERE operation > \(after) AND (\(upTo)::bigint IS NULL OR operation <= \(upTo))
            ORDER BY operation, change, namespace, package_name, vulnerability_id
            """, logger: logger)
        var result: [KnowledgeBaseChange] = []
        for try await (operation, change, namespace, name, id) in rows.decode((Int64, String, String, String, String).self) {
            result.append(KnowledgeBaseChange(operation: operation, change: change, namespace: namespace,
                                              packageName: name, vulnerabilityID: id))
        }
        return result
    }

    /// The update operations, newest first.
    func operations(limit: Int = 500) async throws -> [(id: Int64, source: String, kind: String, fingerprint: String,
                                                       added: Int, removed: Int, finishedAt: Date)] {
        let rows = try await database.query("""
            SELECT id, source, kind, fingerprint, added, removed, finished_at FROM scanner.kb_update_operations
            ORDER BY id DESC LIMIT \(limit)
            """, logger: logger)
        var result: [(Int64, String, String, String, Int, Int, Date)] = []
        for try await row in rows.decode((Int64, String, String, String, Int, Int, Date).self) { result.append(row) }
        return result.map { (id: $0.0, source: $0.1, kind: $0.2, fingerprint: $0.3, added: $0.4, removed: $0.5, finishedAt: $0.6) }
    }

    /// Every stored document, for `gantry feeds export`.
    func exportDocuments() async throws -> [FeedDocument] {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        var documents: [String: FeedDocument] = [:]
        for feed in try await feeds() {
            documents[feed.source] = FeedDocument(source: feed.source, kind: FeedKind(rawValue: feed.kind) ?? .osv)
        }
        let affected = try await database.query("SELECT source, entry::text FROM scanner.kb_affected", logger: logger)
        for try await (source, entry) in affected.decode((String, String).self) {
            documents[source]?.affected.append(try decoder.decode(AffectedPackage.self, from: Data(entry.utf8)))
        }
        let records = try await database.query("SELECT source, record::text FROM scanner.kb_vulnerabilities", logger: logger)
        for try await (source, record) in records.decode((String, String).self) {
            documents[source]?.vulnerabilities.append(try decoder.decode(VulnerabilityRecord.self, from: Data(record.utf8)))
        }
        let kev = try await database.query("SELECT source, entry::text FROM scanner.kb_kev", logger: logger)
        for try await (source, entry) in kev.decode((String, String).self) {
            documents[source]?.kev.append(try decoder.decode(KEVEntry.self, from: Data(entry.utf8)))
        }
        let epss = try await database.query("SELECT source, cve, epss, percentile, score_date FROM scanner.kb_epss", logger: logger)
        for try await (source, cve, score, percentile, date) in epss.decode((String, String, Double, Double, String?).self) {
            documents[source]?.epss.append(EPSSScore(cve: cve, epss: score, percentile: percentile, date: date))
        }
        return documents.keys.sorted().compactMap { documents[$0] }
    }

    func feeds() async throws -> [(source: String, kind: String, namespaces: [String], vulnerabilities: Int, affected: Int,
                                   kev: Int, epss: Int, importedAt: Date, fingerprint: String, operation: Int64)] {
        let rows = try await database.query("""
            SELECT source, kind, namespaces, vulnerabilities, affected, kev, epss, imported_at, fingerprint, last_operation
            FROM scanner.kb_feeds ORDER BY source
            """, logger: logger)
        var result: [(String, String, [String], Int, Int, Int, Int, Date, String, Int64)] = []
        for try await row in rows.decode((String, String, [String], Int, Int, Int, Int, Date, String, Int64).self) {
            result.append(row)
        }
        return result.map { (source: $0.0, kind: $0.1, namespaces: $0.2, vulnerabilities: $0.3, affected: $0.4, kev: $0.5,
                             epss: $0.6, importedAt: $0.7, fingerprint: $0.8, operation: $0.9) }
    }

    // MARK: VulnerabilityStore

    func namespacesWithData(_ namespaces: Set<String>) async throws -> Set<String> {
        let candidates = Array(namespaces)
        let rows = try await database.query("""
            SELECT DISTINCT n FROM scanner.kb_feeds, unnest(namespaces) AS n WHERE n = ANY(\(candidates)::text[])
            """, logger: logger)
        var result = Set<String>()
        for try await namespace in rows.decode(String.self) { result.insert(namespace) }
        return result
    }

    func affected(namespace: String, packageNames: Set<String>) async throws -> [AffectedPackage] {
        let names = Array(packageNames)
        let rows = try await database.query("""
            SELECT entry::text FROM scanner.kb_affected WHERE namespace = \(namespace) AND package_name = ANY(\(names)::text[])
            """, logger: logger)
        let decoder = JSONDecoder()
        var result: [AffectedPackage] = []
        for try await entry in rows.decode(String.self) {
            result.append(try decoder.decode(AffectedPackage.self, from: Data(entry.utf8)))
        }
        return result
    }

    func records(ids: Set<String>) async throws -> [VulnerabilityRecord] {
        let list = Array(ids)
        let rows = try await database.query("""
            SELECT record::text FROM scanner.kb_vulnerabilities WHERE id = ANY(\(list)::text[]) OR aliases && \(list)::text[]
            """, logger: logger)
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        var result: [VulnerabilityRecord] = []
        for try await record in rows.decode(String.self) {
            result.append(try decoder.decode(VulnerabilityRecord.self, from: Data(record.utf8)))
        }
        return result
    }

    func kev(cves: Set<String>) async throws -> [KEVEntry] {
        let list = Array(cves)
        let rows = try await database.query("SELECT DISTINCT ON (cve) entry::text FROM scanner.kb_kev WHERE cve = ANY(\(list)::text[])",
                                            logger: logger)
        var result: [KEVEntry] = []
        for try await entry in rows.decode(String.self) { result.append(try JSONDecoder().decode(KEVEntry.self, from: Data(entry.utf8))) }
        return result
    }

    func epss(cves: Set<String>) async throws -> [EPSSScore] {
        let list = Array(cves)
        let rows = try await database.query("""
            SELECT DISTINCT ON (cve) cve, epss, percentile, score_date FROM scanner.kb_epss WHERE cve = ANY(\(list)::text[])
            ORDER BY cve, score_date DESC NULLS LAST
            """, logger: logger)
        var result: [EPSSScore] = []
        for try await (cve, score, percentile, date) in rows.decode((String, Double, Double, String?).self) {
            result.append(EPSSScore(cve: cve, epss: score, percentile: percentile, date: date))
        }
        return result
    }

    // MARK: Helpers

    /// Bounded bind arrays per statement.
    private static func chunks<T>(_ items: [T], size: Int = 2000) -> [ArraySlice<T>] {
        stride(from: 0, to: items.count, by: size).map { items[$0..<min($0 + size, items.count)] }
    }
}
