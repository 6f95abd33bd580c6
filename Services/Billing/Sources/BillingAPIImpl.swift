import BillingAPI
import Foundation
import GantryModel
import GantryRuntime
import Logging
import PostgresNIO

/// Billing's HTTP API (Shared/Contracts/specs/billing.yaml): the first successful scan of a digest in a
/// subscription is one billable unit at the cloud profile's price; rescans and repeats cost nothing.
struct BillingAPIImpl: APIProtocol {
    let runtime: ServiceRuntime

    func recordScan(_ input: Operations.RecordScan.Input) async throws -> Operations.RecordScan.Output {
        guard case .json(let usage) = input.body else { throw ProblemError.badRequest("expected a JSON body") }
        let tenantID = try Validate.uuid(usage.tenantId, field: "tenantId")
        let subscriptionID = try Validate.uuid(usage.subscriptionId, field: "subscriptionId")
        let registryID = try Validate.uuid(usage.registryId, field: "registryId")
        let scanID = try Validate.uuid(usage.scanId, field: "scanId")
        let digest = try Validate.digest(usage.digest, field: "digest")
        let messageID = try Validate.text(usage.messageId, field: "messageId")
        let profile = runtime.configuration.cloud
        let logger = runtime.logger
        let inbox = runtime.inbox
        let chargeID: UUID? = try await runtime.database.withTransaction(logger: logger) { connection in
            guard try await inbox.claim(messageID, on: connection, logger: logger) else { return nil }
            // Rescans are free (PRODUCT.md, "Billing: once per image; rescans free").
            guard usage.trigger != .rescan else { return nil }
            let rows = try await connection.query("""
                INSERT INTO billing.charges (id, tenant_id, subscription_id, registry_id, digest, scan_id, unit_price, currency)
                VALUES (\(UUID()), \(tenantID), \(subscriptionID), \(registryID), \(digest.description), \(scanID),
                        \(profile.unitPrice)::numeric, \(profile.currency))
                ON CONFLICT (subscription_id, digest) DO NOTHING RETURNING id
                """, logger: logger)
            for try await id in rows.decode(UUID.self) { return id }
            return nil
        }
        if let chargeID {
            logger.info("image charged", metadata: ["digest": "\(digest)", "subscription": "\(subscriptionID)"])
            return .ok(.init(body: .json(.init(charged: true, chargeId: chargeID.uuidString.lowercased()))))
        }
        return .ok(.init(body: .json(.init(charged: false))))
    }

    func getUsage(_ input: Operations.GetUsage.Input) async throws -> Operations.GetUsage.Output {
        let tenantID = try Validate.uuid(input.path.tenantId, field: "tenantId")
        let subscriptionID = try Validate.uuid(input.path.subscriptionId, field: "subscriptionId")
        let rows = try await runtime.database.query("""
            SELECT id, registry_id, digest, scan_id, charged_at, unit_price::text, currency
            FROM billing.charges WHERE tenant_id = \(tenantID) AND subscription_id = \(subscriptionID)
            ORDER BY charged_at
            """, logger: runtime.logger)
        var charges: [Components.Schemas.Charge] = []
        for try await (id, registry, digest, scan, at, price, currency) in rows.decode(
            (UUID, UUID, String, UUID, Date, String, String).self) {
            charges.append(.init(chargeId: id.uuidString.lowercased(), registryId: registry.uuidString.lowercased(),
                                 digest: digest, scanId: scan.uuidString.lowercased(), chargedAt: at,
                                 unitPrice: price, currency: currency))
        }
        let totals = try await runtime.database.query("""
            SELECT COALESCE(sum(unit_price), 0)::numeric(14, 4)::text FROM billing.charges
            WHERE tenant_id = \(tenantID) AND subscription_id = \(subscriptionID)
            """, logger: runtime.logger)
        var amount = "0.0000"
        for try await total in totals.decode(String.self) { amount = total }
        return .ok(.init(body: .json(.init(
            subscriptionId: subscriptionID.uuidString.lowercased(), billableImages: charges.count, amount: amount,
            currency: charges.first?.currency ?? runtime.configuration.cloud.currency, charges: charges))))
    }
}
