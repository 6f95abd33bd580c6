import Foundation
import NIOHTTP1
import GantryModel
import GantryRuntime
import GantryTesting
import PostgresNIO
@testable import Scanner
import ScannerAPI
import Testing
import VulnerabilityDB

/// Re-evaluation against the real knowledge base store: Alpine 3.7 secdb from the corpus, imported with
/// and without musl's advisory, and a stored Alpine 3.7 inventory with musl 1.1.18-r3 (vulnerable to
/// CVE-2019-14697, fixed in 1.1.18-r4).
@Suite("Re-evaluation", .enabled(if: Corpus.isAvailable, "the test corpus (../shared/corpus) is missing"))
struct ReevaluationTests {
    static func secdb(withMusl: Bool) throws -> FeedDocument {
        let bytes = try [UInt8](Data(contentsOf: try Corpus.file("3-vuln-feeds/alpine/secdb-v3.7-main.yaml")))
        var document = try AlpineSecDB.parse(bytes, format: .detect).feedDocument
        if !withMusl { document.affected.removeAll { $0.packageName == "musl" } }
        return document
    }

    static let inventory = ImageInventory(
        operatingSystem: OperatingSystem(id: "alpine", versionID: "3.7.3", prettyName: "Alpine Linux v3.7"),
        packages: [
            InstalledPackage(ecosystem: "apk", name: "musl", version: "1.1.18-r3", sourceName: "musl", architecture: "x86_64",
                             purl: "pkg:apk/alpine/musl@1.1.18-r3?arch=x86_64&distro=alpine-3.7.3", location: "lib/apk/db/installed"),
            InstalledPackage(ecosystem: "apk", name: "zlib", version: "1.2.11-r1", sourceName: "zlib", architecture: "x86_64",
                             purl: "pkg:apk/alpine/zlib@1.2.11-r1?arch=x86_64&distro=alpine-3.7.3", location: "lib/apk/db/installed"),
        ],
        notes: [])

    /// Stores `inventory` as a finished push scan of `digest` would, with the findings the knowledge base gives now.
    static func storeScan(_ h: ScannerHarness, digest: String, kbOperation: Int64? = nil) async throws -> UUID {
        let (jobText, _) = try await h.request(.push, digest: digest)
        let jobID = try #require(UUID(uuidString: jobText))
        let findings = try await Matcher.match(inventory, store: h.knowledgeBase).findings
        var operation = try await InventoryIndex.latestOperation(h.runtime.database, logger: h.runtime.logger)
        if let kbOperation { operation = kbOperation }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let inventoryJSON = String(decoding: try encoder.encode(inventory), as: UTF8.self)
        let findingsJSON = String(decoding: try encoder.encode(findings), as: UTF8.self)
        let logger = h.runtime.logger
        try await h.runtime.database.withSystemAccess(logger: logger) { connection in
            try await connection.query("""
                UPDATE scanner.scan_jobs SET status = 'succeeded', outcome = 'assessed', started_at = now(), finished_at = now()
                WHERE id = \(jobID)
                """, logger: logger)
            try await connection.query("""
                INSERT INTO scanner.inventories (scan_id, tenant_id, registry_id, repository, digest, manifest_digest, inventory,
                  findings, namespace, registry_host, kb_operation)
                VALUES (\(jobID), \(UUID(uuidString: h.tenantID)!), \(UUID(uuidString: h.registryID)!), 'team/app', \(digest),
                  \(digest), \(inventoryJSON), \(findingsJSON), 'alpine:v3.7', 'registry-a.example.com', \(operation))
                """, logger: logger)
            try await InventoryIndex.store(scanID: jobID, inventory: inventory, on: connection, logger: logger)
        }
        return jobID
    }

    static func reevaluator(_ h: ScannerHarness) -> Reevaluator {
        Reevaluator(runtime: h.runtime, knowledgeBase: h.knowledgeBase, discovery: HTTPDiscoveryPeer(runtime: h.runtime))
    }

    /// Runs passes until there is no work left.
    static func drain(_ reevaluator: Reevaluator) async throws {
        for _ in 0..<50 {
            if try await !reevaluator.pass() { return }
        }
        Issue.record("re-evaluation still had work after 50 passes")
    }

    static func reports(_ h: ScannerHarness) async throws -> [[String: Any]] {
        try await h.outbox().filter { $0.1 == "/internal/v1/reports" }.map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.2.utf8)) as? [String: Any])
        }
    }

    static func findingIDs(_ report: [String: Any]) -> [String] {
        ((report["findings"] as? [[String: Any]]) ?? []).map { "\($0["vulnerabilityId"] ?? "") \($0["packageName"] ?? "")" }.sorted()
    }

    @Test("an advisory added to the knowledge base reaches the stored image as a report; removing it resolves the finding")
    func addedThenRemoved() async throws {
        try await ScannerHarness.run { h in
            let first = try await h.knowledgeBase.importDocument(try Self.secdb(withMusl: false))
            let digest = ScannerHarness.digest("c7")
            let scanID = try await Self.storeScan(h, digest: digest)
            let reevaluator = Self.reevaluator(h)
            try await Self.drain(reevaluator)
            #expect(try await Self.reports(h).isEmpty, "the import the scan already reflected changes nothing")

            let added = try await h.knowledgeBase.importDocument(try Self.secdb(withMusl: true))
            let operation = try #require(added.operation)
            #expect(operation > (first.operation ?? 0))
            try await Self.drain(reevaluator)
            var reports = try await Self.reports(h)
            #expect(reports.count == 1)
            #expect(Self.findingIDs(reports[0]) == ["CVE-2019-14697 musl"])
            #expect((reports[0]["notes"] as? [String])?.last?.contains("re-evaluation") == true)
            #expect(reports[0]["outcome"] as? String == "assessed")
            #expect(reports[0]["registryHost"] as? String == "registry-a.example.com")
            // Stored findings replaced; history entry; the operation recorded.
            let listed = try await h.api.listScans(.init(path: .init(tenantId: h.tenantID), query: .init(digest: digest)))
            let history = try listed.ok.body.json.items
            #expect(history.map(\.trigger) == [.reevaluation, .push])
            #expect(history[0].outcome == .reevaluated && history[0].findings == 1 && history[0].knowledgeBaseOperation == operation)
            // Its times are in order: queued = started ≤ finished, the deadline not before it was queued.
            #expect((history[0].durationMs ?? -1) >= 0, "durationMs \(String(describing: history[0].durationMs))")
            if let started = history[0].startedAt, let finished = history[0].finishedAt { #expect(finished >= started) }
            #expect((history[0].deadlineAt ?? .distantPast) >= history[0].queuedAt)
            let processed = try await h.api.listReevaluations(.init(query: .init())).ok.body.json.items
            #expect(processed.first?.operation == operation)
            #expect(processed.first?.imagesChecked == 1 && processed.first?.imagesChanged == 1)
            let logger = h.runtime.logger
            let stored = try await h.runtime.database.withSystemAccess(logger: logger) { connection in
                let rows = try await connection.query(
                    "SELECT findings, kb_operation FROM scanner.inventories WHERE scan_id = \(scanID)", logger: logger)
                var stored: [(String, Int64)] = []
                for try await row in rows.decode((String, Int64).self) { stored.append(row) }
                return stored
            }
            for (findings, storedOperation) in stored {
                #expect(findings.contains("CVE-2019-14697"))
                #expect(storedOperation == operation)
            }
            // No billing for a re-evaluation.
            #expect(try await h.outbox().filter { $0.1 == "/internal/v1/usage" }.isEmpty)

            // Re-importing the same document changes nothing; withdrawing the advisory resolves the finding.
            #expect(try await h.knowledgeBase.importDocument(try Self.secdb(withMusl: true)).changed == false)
            _ = try await h.knowledgeBase.importDocument(try Self.secdb(withMusl: false))
            try await Self.drain(reevaluator)
            reports = try await Self.reports(h)
            #expect(reports.count == 2)
            #expect(Self.findingIDs(reports[1]).isEmpty)
        }
    }

    @Test("deleted images are not re-evaluated; an inventory stored after the operation was processed (a scan that matched before it) is caught late")
    func deletedAndLate() async throws {
        try await ScannerHarness.run { h in
            _ = try await h.knowledgeBase.importDocument(try Self.secdb(withMusl: false))
            let deleted = ScannerHarness.digest("d1")
            _ = try await Self.storeScan(h, digest: deleted)
            try await h.execute("""
                INSERT INTO scanner.deleted_images (registry_id, repository, digest, tenant_id, deleted_at)
                VALUES (\(UUID(uuidString: h.registryID)!), 'team/app', \(deleted), \(UUID(uuidString: h.tenantID)!), now())
                """)
            let reevaluator = Self.reevaluator(h)
            try await Self.drain(reevaluator)
            _ = try await h.knowledgeBase.importDocument(try Self.secdb(withMusl: true))
            try await Self.drain(reevaluator)
            #expect(try await Self.reports(h).isEmpty)

            // A scan that matched with the knowledge base before the musl advisory (kb_operation 1) but was
            // stored after re-evaluation processed the advisory's operation.
            let late = ScannerHarness.digest("d2")
            let old = try await h.knowledgeBase.operations().map(\.id).min() ?? 1
            // Its stored findings are what the old knowledge base gave: none for musl.
            _ = try await Self.storeScan(h, digest: late, kbOperation: old)
            try await h.execute("UPDATE scanner.inventories SET findings = '[]' WHERE digest = \(late)")
            try await Self.drain(reevaluator)
            let reports = try await Self.reports(h)
            #expect(reports.count == 1)
            #expect(reports.first?["digest"] as? String == late)
            #expect(Self.findingIDs(reports.first ?? [:]) == ["CVE-2019-14697 musl"])
        }
    }

    @Test("inventories stored before the index existed are indexed by the first pass")
    func backlogIndexed() async throws {
        try await ScannerHarness.run { h in
            _ = try await h.knowledgeBase.importDocument(try Self.secdb(withMusl: false))
            let scanID = try await Self.storeScan(h, digest: ScannerHarness.digest("e7"))
            try await h.execute("DELETE FROM scanner.inventory_packages")
            try await h.execute("UPDATE scanner.inventories SET packages_indexed = false")
            #expect(try await Self.reevaluator(h).indexBacklog() == 1)
            let logger = h.runtime.logger
            let keys = try await h.runtime.database.withSystemAccess(logger: logger) { connection in
                let rows = try await connection.query(
                    "SELECT namespace, package_name FROM scanner.inventory_packages WHERE scan_id = \(scanID) ORDER BY 2",
                    logger: logger)
                var keys: [String] = []
                for try await (namespace, name) in rows.decode((String, String).self) { keys.append("\(namespace) \(name)") }
                return keys
            }
            #expect(keys == ["alpine:v3.7 musl", "alpine:v3.7 zlib"])
        }
    }
}
