import Foundation
import GantryRuntime
import Logging
import NotificationAPI
import PostgresNIO
import RegistryClient

/// Discovery's `registryUnreachable` alert to notification (notification.yaml, "Alert kinds"), the same kind and
/// payload shape as the scanner's (Scanner/AlertSignals.swift): a crawl that could not reach its registry
/// (connection or TLS failure, 5xx after the client's retries) records the episode in
/// `discovery.unreachable_registries` and queues the alert in the outbox, in the transaction that records the crawl.
/// The message ID names the registry, the episode's start and the subscription, so every failed crawl of one
/// episode repeats the same message and the outbox keeps the first: one alert per registry and episode.
/// A successful crawl ends the episode; the next failure starts a new one (and a new alert).
enum UnreachableRegistry {
    /// Whether a crawl's error means the registry could not be reached, as the scanner judges it
    /// (`ImageScanner.classify`): a transport failure (a server without TLS behind an https URL included), or 5xx
    /// after the client's retries. Refusals, 4xx and
    /// malformed answers mean the registry answered.
    static func isUnreachable(_ error: any Error) -> Bool {
        if let error = error as? PostgresTransactionError, let inner = error.closureError { return isUnreachable(inner) }
        switch error as? RegistryError {
        case .transport?, .notTLS?: return true
        case .http(let status, _, _)? where status >= 500: return true
        default: return false
        }
    }

    /// Records the failure in the registry's episode (opening one when none is open) and queues the alert.
    /// - Parameters:
    ///   - reason: the crawl's error text (at most 1,000 characters are kept, as the scanner does).
    ///   - connection: inside the registry's tenant transaction.
    static func recordFailure(_ registry: RegistryRecord, reason: String, outbox: Outbox, on connection: PostgresConnection,
                              logger: Logger) async throws {
        let reason = String(reason.prefix(1000))
        let rows = try await connection.query("""
            INSERT INTO discovery.unreachable_registries AS u (tenant_id, registry_id, since, last_error)
            VALUES (\(registry.tenantID), \(registry.id), now(), \(reason))
            ON CONFLICT (registry_id) DO UPDATE SET last_error = EXCLUDED.last_error
            RETURNING since
            """, logger: logger)
        var since = Date()
        for try await value in rows.decode(Date.self) { since = value }
        let subscription = registry.subscriptionID.uuidString.lowercased()
        // Milliseconds, as the scanner's message IDs: the same episode always gives the same ID.
        let episode = Int64((since.timeIntervalSince1970 * 1000).rounded())
        let alert = NotificationAPI.Components.Schemas.Alert(
            messageId: "alert:registry-unreachable:\(registry.id.uuidString.lowercased()):\(episode):\(subscription)",
            tenantId: registry.tenantID.uuidString.lowercased(), subscriptionId: subscription, kind: .registryUnreachable,
            registryHost: registry.loginServer,
            summary: "registry \(registry.loginServer) cannot be reached by discovery's crawler", since: since, detail: reason)
        try await outbox.enqueue(alert, messageID: alert.messageId, to: .notification, path: "/internal/v1/alerts",
                                 on: connection, logger: logger)
    }

    /// A crawl reached the registry and succeeded: its unreachable episode, if any, is over.
    static func recordSuccess(_ registry: RegistryRecord, on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query("DELETE FROM discovery.unreachable_registries WHERE registry_id = \(registry.id)",
                                   logger: logger)
    }
}
