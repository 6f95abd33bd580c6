import Foundation
import GantryModel
import Logging
import PostgresNIO
import VulnerabilityDB

/// `scanner.inventory_packages`: for each stored inventory, the (namespace, package name) pairs the
/// matcher looks it up by (`Matcher.targets(for:distributionNamespace:)`), so that a knowledge-base change
/// to a package finds the inventories holding it with an index lookup.
enum InventoryIndex {
    /// The distinct lookup keys of `inventory`.
    static func keys(of inventory: ImageInventory) -> [(namespace: String, packageName: String)] {
        let distribution = Matcher.distributionNamespace(for: inventory.operatingSystem).namespace
        let targets = Matcher.targets(for: inventory, distributionNamespace: distribution).targets
        var seen = Set<String>()
        var keys: [(String, String)] = []
        for target in targets where seen.insert(target.namespace + "\u{0}" + target.packageName).inserted {
            keys.append((target.namespace, target.packageName))
        }
        return keys.map { (namespace: $0.0, packageName: $0.1) }
    }

    /// Writes the keys of one stored inventory and marks it indexed (inside the caller's transaction, which must
    /// see the inventory: its tenant's or the system's). Each key row takes the inventory's `tenant_id`.
    static func store(scanID: UUID, inventory: ImageInventory, on connection: PostgresConnection, logger: Logger) async throws {
        let keys = keys(of: inventory)
        if !keys.isEmpty {
            try await connection.query("""
                INSERT INTO scanner.inventory_packages (scan_id, tenant_id, namespace, package_name)
                SELECT i.scan_id, i.tenant_id, n, p
                FROM scanner.inventories i, unnest(\(keys.map(\.namespace))::text[], \(keys.map(\.packageName))::text[]) AS k(n, p)
                WHERE i.scan_id = \(scanID)
                ON CONFLICT DO NOTHING
                """, logger: logger)
        }
        try await connection.query("UPDATE scanner.inventories SET packages_indexed = true WHERE scan_id = \(scanID)",
                                   logger: logger)
    }

    /// The latest update operation in the knowledge base (0 when there is none): recorded with an
    /// inventory as what its findings reflect.
    static func latestOperation(_ database: PostgresClient, logger: Logger) async throws -> Int64 {
        let rows = try await database.query("SELECT COALESCE(max(id), 0)::bigint FROM scanner.kb_update_operations",
                                            logger: logger)
        for try await value in rows.decode(Int64.self) { return value }
        return 0
    }
}
