import FindingsPolicyAPI
import Foundation
import GantryModel
import GantryRuntime
import Logging
import PostgresNIO
import ServiceLifecycle
import VulnerabilityDB

/// Re-evaluates stored inventories when the knowledge base changes, without pulling images again
/// (issue 5, "Re-evaluation"; the seed product rescans weekly, Gantry within seconds of a feed update).
///
/// Each knowledge-base update operation lists the (namespace, package) rows it added and removed
/// (`PostgresKnowledgeBase.changes(after:upTo:)`). For each operation not yet processed
/// (`reevaluated_operations`), the latest stored inventory of every image (not deleted) that holds one
/// of those packages (`inventory_packages`, filled when an inventory is stored) is matched again
/// (`Matcher.match(_:store:)`). When its findings differ, the inventory's findings are replaced, a
/// history entry (trigger `reevaluation`, never billed) is written and a report goes to findings-policy
/// through the outbox, like a scan's, so new findings can alert and resolved ones close.
///
/// Operations are tracked one by one rather than by a high-water mark alone, because two imports can
/// commit out of id order. An inventory records the latest operation its findings reflect
/// (`kb_operation`); one stored by a scan that matched before an operation committed is caught by the
/// "late" check, which re-matches recent inventories against processed operations they predate.
/// Replicas take turns through a session advisory lock.
///
/// Row-level security: finding the inventories an operation concerns looks across tenants (`withSystemAccess`);
/// re-evaluating one inventory runs in its tenant (`withTenant`). The knowledge base and
/// `reevaluated_operations` hold no tenant rows.
struct Reevaluator: Service {
    let runtime: ServiceRuntime
    let knowledgeBase: PostgresKnowledgeBase
    let discovery: any DiscoveryPeer
    /// How often to look for new operations when idle.
    var pollInterval: Duration = .seconds(1)

    static let lockKey = "gantry.scanner.reevaluation"

    func run() async throws {
        await PollingLoop.run(name: "re-evaluation", readiness: runtime.readiness, interval: pollInterval,
                              logger: runtime.logger) {
            try await pass()
        }
    }

    /// One unit of work: index inventories stored before the index existed, else process the oldest
    /// unprocessed operation, else check recent inventories for operations they missed.
    /// - Returns: whether there was work (the loop then continues at once).
    @discardableResult
    func pass() async throws -> Bool {
        let logger = runtime.logger
        return try await runtime.database.withConnection { connection in
            let locked = try await connection.query("SELECT pg_try_advisory_lock(hashtext(\(Self.lockKey)))", logger: logger)
            var gotLock = false
            for try await value in locked.decode(Bool.self) { gotLock = value }
            guard gotLock else { return false }
            do {
                let worked = try await work()
                try await connection.query("SELECT pg_advisory_unlock(hashtext(\(Self.lockKey)))", logger: logger)
                return worked
            } catch {
                // The lock must not stay with a pooled connection.
                _ = try? await connection.query("SELECT pg_advisory_unlock(hashtext(\(Self.lockKey)))", logger: logger)
                throw error
            }
        }
    }

    private func work() async throws -> Bool {
        if try await indexBacklog() > 0 { return true }
        if let operation = try await nextOperation() {
            try await process(operation: operation)
            return true
        }
        return try await checkLateInventories() > 0
    }

    // MARK: Steps

    /// Indexes up to 200 assessed inventories that have no `inventory_packages` rows yet; returns how many.
    func indexBacklog() async throws -> Int {
        let logger = runtime.logger
        let backlog = try await runtime.database.withSystemAccess(logger: logger) { connection in
            let rows = try await connection.query("""
                SELECT scan_id, tenant_id, inventory FROM scanner.inventories
                WHERE NOT packages_indexed AND namespace IS NOT NULL ORDER BY scanned_at LIMIT 200
                """, logger: logger)
            var backlog: [(UUID, UUID, String)] = []
            for try await row in rows.decode((UUID, UUID, String).self) { backlog.append(row) }
            return backlog
        }
        for (scanID, tenantID, json) in backlog {
            let inventory = try JSONDecoder().decode(ImageInventory.self, from: Data(json.utf8))
            try await runtime.database.withTenant(tenantID, logger: logger) { connection in
                try await InventoryIndex.store(scanID: scanID, inventory: inventory, on: connection, logger: logger)
            }
        }
        return backlog.count
    }

    /// The oldest update operation not yet processed.
    func nextOperation() async throws -> Int64? {
        let rows = try await runtime.database.query("""
            SELECT o.id FROM scanner.kb_update_operations o
            WHERE NOT EXISTS (SELECT 1 FROM scanner.reevaluated_operations r WHERE r.operation = o.id)
            ORDER BY o.id LIMIT 1
            """, logger: runtime.logger)
        for try await id in rows.decode(Int64.self) { return id }
        return nil
    }

    /// Re-evaluates the images one operation concerns and records it as processed.
    func process(operation: Int64) async throws {
        let logger = runtime.logger
        let changes = try await knowledgeBase.changes(after: operation - 1, upTo: operation)
        var pairs = Set<[String]>()
        for change in changes { pairs.insert([change.namespace, change.packageName]) }
        let keys = Array(pairs)
        var candidates: [UUID] = []
        if !keys.isEmpty {
            candidates = try await runtime.database.withSystemAccess(logger: logger) { connection in
                let rows = try await connection.query("""
                    WITH changed AS (
                      SELECT * FROM unnest(\(keys.map { $0[0] })::text[], \(keys.map { $0[1] })::text[]) AS c(namespace, package_name)),
                    hit AS (
                      SELECT DISTINCT p.scan_id FROM scanner.inventory_packages p
                      JOIN changed c ON c.namespace = p.namespace AND c.package_name = p.package_name),
                    images AS (
                      SELECT DISTINCT i.registry_id, i.repository, i.digest FROM scanner.inventories i JOIN hit h ON h.scan_id = i.scan_id),
                    latest AS (
                      SELECT DISTINCT ON (i.registry_id, i.repository, i.digest) i.scan_id, i.namespace, i.registry_id, i.repository, i.digest
                      FROM scanner.inventories i
                      JOIN images m ON m.registry_id = i.registry_id AND m.repository = i.repository AND m.digest = i.digest
                      ORDER BY i.registry_id, i.repository, i.digest, i.scanned_at DESC)
                    SELECT l.scan_id FROM latest l JOIN hit h ON h.scan_id = l.scan_id
                    WHERE l.namespace IS NOT NULL AND NOT EXISTS (
                      SELECT 1 FROM scanner.deleted_images d
                      WHERE d.registry_id = l.registry_id AND d.repository = l.repository AND d.digest = l.digest)
                    """, logger: logger)
                var candidates: [UUID] = []
                for try await id in rows.decode(UUID.self) { candidates.append(id) }
                return candidates
            }
        }
        var registries: [UUID: RegistryAccess?] = [:]
        var changed = 0
        for scanID in candidates {
            if try await reevaluate(scanID, operation: operation, registries: &registries) { changed += 1 }
        }
        try await runtime.database.query("""
            INSERT INTO scanner.reevaluated_operations (operation, images_checked, images_changed)
            VALUES (\(operation), \(candidates.count), \(changed)) ON CONFLICT (operation) DO NOTHING
            """, logger: logger)
        logger.info("knowledge-base update re-evaluated", metadata: [
            "operation": "\(operation)", "changes": "\(changes.count)", "images_checked": "\(candidates.count)",
            "images_changed": "\(changed)"])
    }

    /// Re-matches inventories stored in the last hour whose findings predate a processed operation that
    /// changed one of their packages (their scan matched before it committed); returns how many.
    func checkLateInventories() async throws -> Int {
        let logger = runtime.logger
        let late = try await runtime.database.withSystemAccess(logger: logger) { connection in
            let rows = try await connection.query("""
                WITH top AS (SELECT COALESCE(max(operation), 0) AS op FROM scanner.reevaluated_operations)
                SELECT i.scan_id, top.op FROM scanner.inventories i, top
                WHERE i.scanned_at > now() - interval '1 hour' AND i.namespace IS NOT NULL AND i.packages_indexed
                  AND i.kb_operation < top.op
                  AND NOT EXISTS (SELECT 1 FROM scanner.deleted_images d WHERE d.registry_id = i.registry_id
                                  AND d.repository = i.repository AND d.digest = i.digest)
                  AND EXISTS (
                    SELECT 1 FROM scanner.inventory_packages p
                    JOIN scanner.kb_changes c ON c.namespace = p.namespace AND c.package_name = p.package_name
                    WHERE p.scan_id = i.scan_id AND c.operation > i.kb_operation AND c.operation <= top.op)
                LIMIT 100
                """, logger: logger)
            var late: [(UUID, Int64)] = []
            for try await row in rows.decode((UUID, Int64).self) { late.append(row) }
            return late
        }
        var registries: [UUID: RegistryAccess?] = [:]
        for (scanID, operation) in late {
            _ = try await reevaluate(scanID, operation: operation, registries: &registries)
        }
        return late.count
    }

    // MARK: One inventory

    /// Matches one stored inventory again; when its findings changed, stores them, writes the history
    /// entry and queues the report. Returns whether they changed.
    func reevaluate(_ scanID: UUID, operation: Int64, registries: inout [UUID: RegistryAccess?]) async throws -> Bool {
        let logger = runtime.logger
        // The scan ID alone does not say whose inventory it is: read it with system access, then act as its tenant.
        let loaded = try await runtime.database.withSystemAccess(logger: logger) { connection in
            let rows = try await connection.query("""
                SELECT i.tenant_id, j.subscription_id, i.registry_id, i.repository, i.digest, i.inventory, i.findings,
                       i.registry_host
                FROM scanner.inventories i JOIN scanner.scan_jobs j ON j.id = i.scan_id
                WHERE i.scan_id = \(scanID)
                """, logger: logger)
            var loaded: (UUID, UUID, UUID, String, String, String, String, String?)?
            for try await row in rows.decode((UUID, UUID, UUID, String, String, String, String, String?).self) { loaded = row }
            return loaded
        }
        guard let (tenantID, subscriptionID, registryID, repository, digest, inventoryJSON, findingsJSON, storedHost) = loaded
        else { return false }
        let decoder = JSONDecoder()
        let inventory = try decoder.decode(ImageInventory.self, from: Data(inventoryJSON.utf8))
        let stored = try decoder.decode([VulnerabilityFinding].self, from: Data(findingsJSON.utf8))
        let started = Date()  // the re-evaluation's start, for its scan-history entry
        let result = try await Matcher.match(inventory, store: knowledgeBase)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let newJSON = String(decoding: try encoder.encode(result.findings), as: UTF8.self)
        let access: RegistryAccess?
        if let cached = registries[registryID] {
            access = cached
        } else {
            access = try await discovery.registryAccess(registryID)
            registries[registryID] = access
        }
        // No data any more (a feed withdrawn), an unchanged result, or a registry no longer registered or
        // without a plan: nothing goes downstream; the inventory is marked as checked.
        guard !result.namespaces.isEmpty, try encoder.encode(stored) != encoder.encode(result.findings),
              let access, access.planEnabled else {
            try await runtime.database.withTenant(tenantID, logger: logger) { connection in
                _ = try await connection.query("""
                    UPDATE scanner.inventories SET kb_operation = greatest(kb_operation, \(operation)), evaluated_at = now()
                    WHERE scan_id = \(scanID)
                    """, logger: logger)
            }
            return false
        }
        let registryHost = storedHost ?? access.loginServer
        let outbox = runtime.outbox
        return try await runtime.database.withTenant(tenantID, logger: logger) { connection -> Bool in
            // Still the image's latest inventory, and the image not deleted meanwhile?
            let current = try await connection.query("""
                SELECT i.scan_id FROM scanner.inventories i
                WHERE i.registry_id = \(registryID) AND i.repository = \(repository) AND i.digest = \(digest)
                  AND NOT EXISTS (SELECT 1 FROM scanner.deleted_images d WHERE d.registry_id = i.registry_id
                                  AND d.repository = i.repository AND d.digest = i.digest)
                ORDER BY i.scanned_at DESC LIMIT 1 FOR UPDATE
                """, logger: logger)
            var latest: UUID?
            for try await id in current.decode(UUID.self) { latest = id }
            guard latest == scanID else {
                // Superseded by a newer scan, or deleted: nothing to report; checked all the same.
                try await connection.query("""
                    UPDATE scanner.inventories SET kb_operation = greatest(kb_operation, \(operation)), evaluated_at = now()
                    WHERE scan_id = \(scanID)
                    """, logger: logger)
                return false
            }
            let historyID = UUID()
            let now = Date()
            try await connection.query("""
                INSERT INTO scanner.scan_jobs (id, tenant_id, subscription_id, registry_id, repository, digest, trigger,
                  priority, status, attempts, max_attempts, deadline_at, queued_at, started_at, finished_at, outcome,
                  findings, kb_operation)
                VALUES (\(historyID), \(tenantID), \(subscriptionID), \(registryID), \(repository), \(digest), 'reevaluation',
                  3, 'succeeded', 1, 1, \(now), \(started), \(started), greatest(clock_timestamp(), \(now)), 'reevaluated',
                  \(result.findings.count), \(operation))
                """, logger: logger)
            try await connection.query("""
                UPDATE scanner.inventories SET findings = \(newJSON), kb_operation = greatest(kb_operation, \(operation)),
                  evaluated_at = now()
                WHERE scan_id = \(scanID)
                """, logger: logger)
            let report = FindingsPolicyAPI.Components.Schemas.ScanReport(
                messageId: "report:\(historyID.uuidString.lowercased())", scanId: historyID.uuidString.lowercased(),
                tenantId: tenantID.uuidString.lowercased(), subscriptionId: subscriptionID.uuidString.lowercased(),
                registryId: registryID.uuidString.lowercased(), registryHost: registryHost, repository: repository,
                digest: digest, scannedAt: now, outcome: .assessed,
                operatingSystem: inventory.operatingSystem.map { .init(id: $0.id, versionId: $0.versionID, prettyName: $0.prettyName) },
                findings: result.findings.map(ScanWorker.finding),
                notes: inventory.notes + ["re-evaluation: knowledge-base update operation \(operation) changed the findings; the stored inventory of scan \(scanID.uuidString.lowercased()) was matched again without pulling the image"])
            try await outbox.enqueue(report, messageID: report.messageId, to: .findingsPolicy, path: "/internal/v1/reports",
                                     on: connection, logger: logger)
            return true
        }
    }
}
