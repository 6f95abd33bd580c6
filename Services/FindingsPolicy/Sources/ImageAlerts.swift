import FindingsPolicyAPI
import Foundation
import GantryRuntime
import NotificationAPI
import PostgresNIO

/// The image alerts besides "became unhealthy" (issue 8, "Alert rules"): an Unhealthy image that became
/// Healthy (so notification's noise control re-arms), and findings that count and are new on an image
/// that was already Unhealthy — typically after a feed update re-evaluated the stored inventory.
extension PostgresPolicyStore {
    /// `vulnerabilityId package` of the image's stored findings that count (not exempt), before a new
    /// report replaces them.
    func countedFindingKeys(of key: ImageKey, subscriptionID: UUID, tenantID: UUID,
                            on connection: PostgresConnection) async throws -> Set<String> {
        let rows = try await connection.query("""
            SELECT vulnerability_id, package_name FROM findings_policy.findings
            WHERE tenant_id = \(tenantID) AND subscription_id = \(subscriptionID) AND registry_id = \(key.registryID)
              AND repository = \(key.repository) AND digest = \(key.digest) AND exempt_rule_id IS NULL
            """, logger: logger)
        var keys: Set<String> = []
        for try await (vulnerability, package) in rows.decode((String, String).self) { keys.insert("\(vulnerability) \(package)") }
        return keys
    }

    /// Queues `imageHealthy` for an image that was Unhealthy and no longer is.
    /// - Parameter messageID: unique per change (notification's limit: 200 characters).
    func alertHealthy(_ image: StoredImage, evaluation: Evaluation, messageID: String,
                      on connection: PostgresConnection) async throws {
        let alert = NotificationAPI.Components.Schemas.Alert(
            messageId: messageID, tenantId: image.tenantID.uuidString.lowercased(),
            subscriptionId: image.subscriptionID.uuidString.lowercased(), kind: .imageHealthy,
            imageDigest: image.key.digest, repositoryName: image.key.repository, registryHost: image.registryHost,
            summary: evaluation.status.description ?? "image is no longer unhealthy")
        try await outbox.enqueue(alert, messageID: messageID, to: .notification, path: "/internal/v1/alerts",
                                 on: connection, logger: logger)
    }

    /// Queues `newFindings` with the counted findings whose `vulnerabilityId package` is not in `before`;
    /// nothing when there are none. All of them travel in one message (noise control: one message per image).
    /// - Returns: how many findings the alert carries.
    @discardableResult
    func alertNewFindings(_ image: StoredImage, evaluation: Evaluation, before: Set<String>, messageID: String,
                          on connection: PostgresConnection) async throws -> Int {
        let new = image.report.findings.enumerated()
            .filter { evaluation.exemptions[$0.offset] == nil && !before.contains("\($0.element.vulnerabilityId) \($0.element.packageName)") }
            .map(\.element)
        guard !new.isEmpty else { return 0 }
        let alert = NotificationAPI.Components.Schemas.Alert(
            messageId: messageID, tenantId: image.tenantID.uuidString.lowercased(),
            subscriptionId: image.subscriptionID.uuidString.lowercased(), kind: .newFindings,
            imageDigest: image.key.digest, repositoryName: image.key.repository, registryHost: image.registryHost,
            summary: "\(new.count) new finding\(new.count == 1 ? "" : "s") on an image already assessed as unhealthy",
            findings: new.map {
                .init(vulnerabilityId: $0.vulnerabilityId, packageName: $0.packageName, installedVersion: $0.installedVersion,
                      fixedVersion: $0.fixedVersion, severity: $0.severity.rawValue)
            })
        try await outbox.enqueue(alert, messageID: messageID, to: .notification, path: "/internal/v1/alerts",
                                 on: connection, logger: logger)
        return new.count
    }
}
