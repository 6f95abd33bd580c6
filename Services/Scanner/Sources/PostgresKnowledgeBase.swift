import Foundation
import GantryRuntime
import Logging
import PostgresNIO
import VulnerabilityDB

/// The outcome of importing one feed document.
struct FeedImportResult: Sendable {
    var source: String
    var namespace: String
    var advisories: Int
    var changed: Bool
    var fingerprint: String
}

/// The vulnerability knowledge base in schema `scanner` (tables `feeds`, `advisories`).
/// Each feed document is one source (for example `alpine-secdb:v3.7/main`); an import replaces the
/// source's advisories atomically, and an unchanged document (same fingerprint) writes nothing.
struct PostgresKnowledgeBase: Sendable {
    let database: PostgresClient
    let logger: Logger

    /// Stores the advisories of one Alpine secdb document.
    func importAlpineSecDB(_ document: AlpineSecDBDocument) async throws -> FeedImportResult {
        let source = "alpine-secdb:\(document.distroVersion)/\(document.repoName)"
        let advisories = document.advisories.sorted {
            ($0.packageName, $0.vulnerabilityID, $0.fixedVersion ?? "") < ($1.packageName, $1.vulnerabilityID, $1.fixedVersion ?? "")
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let fingerprint = Checksum.sha256Hex(try encoder.encode(advisories))
        let namespace = document.namespace
        let logger = self.logger
        let changed = try await database.withTransaction(logger: logger) { connection -> Bool in
            try await connection.query("SELECT pg_advisory_xact_lock(hashtext(\("gantry.feed." + source)))", logger: logger)
            let existing = try await connection.query(
                "SELECT fingerprint FROM scanner.feeds WHERE source = \(source)", logger: logger)
            for try await stored in existing.decode(String.self) where stored == fingerprint { return false }
            try await connection.query("DELETE FROM scanner.feeds WHERE source = \(source)", logger: logger)
            try await connection.query("""
                INSERT INTO scanner.feeds (source, namespace, fingerprint, advisories)
                VALUES (\(source), \(namespace), \(fingerprint), \(advisories.count))
                """, logger: logger)
            // Chunks keep each statement's bind arrays bounded.
            for chunk in stride(from: 0, to: advisories.count, by: 5000).map({ advisories[$0..<min($0 + 5000, advisories.count)] }) {
                let packages = chunk.map(\.packageName)
                let ids = chunk.map(\.vulnerabilityID)
                let aliases = chunk.map { $0.aliases.joined(separator: " ") }
                let states = chunk.map { Self.stateName($0.fixState) }
                let versions = chunk.map { $0.fixedVersion ?? "" }
                try await connection.query("""
                    INSERT INTO scanner.advisories (source, namespace, package_name, vulnerability_id, aliases, fix_state, fixed_version)
                    SELECT \(source), \(namespace), p, v, COALESCE(string_to_array(NULLIF(a, ''), ' '), '{}'), s, NULLIF(f, '')
                    FROM unnest(\(packages)::text[], \(ids)::text[], \(aliases)::text[], \(states)::text[], \(versions)::text[])
                      AS t(p, v, a, s, f)
                    """, logger: logger)
            }
            return true
        }
        logger.info("feed imported", metadata: ["source": "\(source)", "advisories": "\(advisories.count)", "changed": "\(changed)"])
        return FeedImportResult(source: source, namespace: namespace, advisories: advisories.count, changed: changed,
                                fingerprint: fingerprint)
    }

    /// Whether any feed covers `namespace` (so "no findings" can be told apart from "no data").
    func hasData(namespace: String) async throws -> Bool {
        let rows = try await database.query("SELECT 1 FROM scanner.feeds WHERE namespace = \(namespace) LIMIT 1", logger: logger)
        for try await _ in rows { return true }
        return false
    }

    /// The advisories of `namespace` for the given package names.
    func advisories(namespace: String, packageNames: [String]) async throws -> [Advisory] {
        let rows = try await database.query("""
            SELECT package_name, vulnerability_id, COALESCE(array_to_string(aliases, ' '), ''), fix_state, fixed_version, source
            FROM scanner.advisories WHERE namespace = \(namespace) AND package_name = ANY(\(packageNames)::text[])
            """, logger: logger)
        var result: [Advisory] = []
        for try await (package, id, aliases, state, version, source) in rows.decode(
            (String, String, String, String, String?, String).self) {
            let fixState: FixState = switch state {
            case "fixed": .fixed(version ?? "")
            case "notAffected": .notAffected
            default: .unfixed
            }
            result.append(Advisory(namespace: namespace, packageName: package, vulnerabilityID: id,
                                   aliases: aliases.split(separator: " ").map(String.init), fixState: fixState, source: source))
        }
        return result
    }

    func feeds() async throws -> [(source: String, namespace: String, advisories: Int, importedAt: Date, fingerprint: String)] {
        let rows = try await database.query(
            "SELECT source, namespace, advisories, imported_at, fingerprint FROM scanner.feeds ORDER BY source", logger: logger)
        var result: [(String, String, Int, Date, String)] = []
        for try await row in rows.decode((String, String, Int, Date, String).self) { result.append(row) }
        return result.map { (source: $0.0, namespace: $0.1, advisories: $0.2, importedAt: $0.3, fingerprint: $0.4) }
    }

    static func stateName(_ state: FixState) -> String {
        switch state {
        case .fixed: "fixed"
        case .notAffected: "notAffected"
        case .unfixed: "unfixed"
        }
    }
}
