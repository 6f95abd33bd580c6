import Foundation
import GantryModel
import GantryRuntime
import Logging
import PostgresNIO

/// A scan reported for metering, validated.
struct MeteredScan: Sendable {
    var messageID: String
    var tenantID: UUID
    var subscriptionID: UUID
    var registryID: UUID
    var registryHost: String?
    var digest: String
    var scanID: UUID
    /// `push`, `import`, `manual`, `rescan` or `reevaluation`.
    var trigger: String
    /// `assessed`, `notApplicable` or `failed`.
    var outcome: String
    var planEnabled: Bool
    var scannedAt: Date
}

/// What recording a scan did. Prices are decimal strings with 4 fraction digits, in `currency`.
struct MeteringReceipt: Sendable, Equatable {
    var disposition: Metering.Disposition
    var chargeID: UUID?
    var unitPrice: String?
    var listPrice: String?
    var currency: String?
    /// True when the message had been processed before: this is the original receipt, nothing changed.
    var redelivered: Bool
}

/// A price of the cloud's price list; `effectiveFrom` nil is the cloud profile's built-in price.
struct PriceRecord: Sendable, Equatable {
    var unitPrice: String
    var currency: String
    var effectiveFrom: Date?
    var createdAt: Date?
}

/// A subscription's free trial: its length and, once the first billable scan was recorded, its start.
struct TrialRecord: Sendable, Equatable {
    var days: Int
    var startsAt: Date?
}

/// A charge row.
struct ChargeRecord: Sendable {
    var id: UUID
    var registryID: UUID
    var registryHost: String?
    var digest: String
    var scanID: UUID
    var scannedAt: Date
    var chargedAt: Date
    var unitPrice: String
    var listPrice: String
    var inTrial: Bool
    var currency: String
}

/// Usage of one registry in one period (`YYYY-MM-DD` or `YYYY-MM`, UTC).
struct UsagePeriodRecord: Sendable, Equatable {
    var period: String
    var registryID: UUID
    var scans = 0
    var billableImages = 0
    var trialImages = 0
    var amount = "0.0000"
}

/// Charges summed over a range.
struct ChargeTotals: Sendable, Equatable {
    var billableImages: Int
    var trialImages: Int
    var amount: String
}

/// Charges of one registry at one price, the line item of an invoice.
struct InvoiceLineRecord: Sendable, Equatable {
    var registryID: UUID
    var inTrial: Bool
    var unitPrice: String
    var listPrice: String
    var currency: String
    var quantity: Int
    var amount: String
}

/// A time range `[from, to)`; either end open when nil.
struct TimeRange: Sendable {
    var from: Date?
    var to: Date?
}

/// Usage period length for reports.
enum UsageGranularity: String, Sendable {
    case day
    case month

    /// `date_trunc` field and `to_char` pattern of the period label.
    var sql: (unit: String, label: String) {
        switch self {
        case .day: ("day", "YYYY-MM-DD")
        case .month: ("month", "YYYY-MM")
        }
    }
}

/// Billing's persistence in schema `billing`. Every tenant-scoped method takes the tenant it works for and
/// runs in `withTenant` (row-level security, migration 3); the global price list is read and written on the
/// plain pool, as it has no tenant rows.
struct PostgresBillingStore: Sendable {
    let database: PostgresClient
    let inbox: Inbox
    let cloud: CloudProfile
    let logger: Logger

    // MARK: Metering

    /// Records one reported scan exactly once per message ID, and charges its (subscription, digest) at most once.
    ///
    /// In one transaction: claims the message in the inbox (a redelivery returns the original receipt), creates
    /// or locks billing's subscription row (starting the trial at the first billable scan), applies the metering
    /// rules, prices the scan at its scan time, inserts the charge under the unique key (subscription, digest)
    /// and appends the scan to `usage_events`.
    /// The transaction is the scan's tenant's (`withTenant`): the tenant comes from the message body.
    /// - Throws: `ProblemError` 409 when the subscription is recorded for another tenant (nothing is stored).
    func record(_ scan: MeteredScan, defaultTrialDays: Int) async throws -> MeteringReceipt {
        let logger = self.logger
        let inbox = self.inbox
        let cloud = self.cloud
        return try await database.withTenant(scan.tenantID, logger: logger) { connection in
            guard try await inbox.claim(scan.messageID, on: connection, logger: logger) else {
                return try await Self.originalReceipt(messageID: scan.messageID, on: connection, logger: logger)
            }
            let exemption = Metering.exemption(trigger: scan.trigger, outcome: scan.outcome, planEnabled: scan.planEnabled)
            let trialStart: Date? = exemption == nil ? scan.scannedAt : nil
            // The row lock also orders concurrent scans of one subscription; the unique key below is what
            // makes a second charge impossible. Another tenant's row is left alone by the WHERE (no row
            // returned), before row-level security would raise on it.
            let owners = try await connection.query("""
                INSERT INTO billing.subscriptions (subscription_id, tenant_id, trial_days, trial_starts_at)
                VALUES (\(scan.subscriptionID), \(scan.tenantID), \(defaultTrialDays), \(trialStart))
                ON CONFLICT (subscription_id) DO UPDATE
                  SET trial_starts_at = COALESCE(subscriptions.trial_starts_at, EXCLUDED.trial_starts_at)
                  WHERE subscriptions.tenant_id = EXCLUDED.tenant_id
                RETURNING tenant_id, trial_days, trial_starts_at
                """, logger: logger)
            var trial: (tenant: UUID, days: Int, start: Date?)?
            for try await row in owners.decode((UUID, Int, Date?).self) { trial = row }
            guard let trial, trial.tenant == scan.tenantID else {
                throw ProblemError.conflict("subscription \(scan.subscriptionID.lowercased) belongs to another tenant")
            }

            var receipt = MeteringReceipt(disposition: exemption ?? .alreadyCharged, redelivered: false)
            if exemption == nil, let start = trial.start {
                let price = try await Self.price(cloud: cloud, at: scan.scannedAt, on: connection, logger: logger)
                let inTrial = Metering.inTrial(scannedAt: scan.scannedAt, start: start, days: trial.days)
                let charged = try await connection.query("""
                    INSERT INTO billing.charges (id, tenant_id, subscription_id, registry_id, registry_host, digest, scan_id,
                      scanned_at, list_price, unit_price, in_trial, currency)
                    VALUES (\(UUID()), \(scan.tenantID), \(scan.subscriptionID), \(scan.registryID), \(scan.registryHost),
                      \(scan.digest), \(scan.scanID), \(scan.scannedAt), \(price.unitPrice)::numeric,
                      CASE WHEN \(inTrial) THEN 0 ELSE \(price.unitPrice)::numeric END, \(inTrial), \(price.currency))
                    ON CONFLICT (subscription_id, digest) DO NOTHING
                    RETURNING id, unit_price::text, list_price::text, currency
                    """, logger: logger)
                for try await (id, unitPrice, listPrice, currency) in charged.decode((UUID, String, String, String).self) {
                    receipt = MeteringReceipt(disposition: inTrial ? .trial : .charged, chargeID: id, unitPrice: unitPrice,
                                              listPrice: listPrice, currency: currency, redelivered: false)
                }
            }
            try await connection.query("""
                INSERT INTO billing.usage_events (message_id, tenant_id, subscription_id, registry_id, registry_host, digest,
                  scan_id, trigger, outcome, plan_enabled, scanned_at, disposition, charge_id)
                VALUES (\(scan.messageID), \(scan.tenantID), \(scan.subscriptionID), \(scan.registryID), \(scan.registryHost),
                  \(scan.digest), \(scan.scanID), \(scan.trigger), \(scan.outcome), \(scan.planEnabled), \(scan.scannedAt),
                  \(receipt.disposition.rawValue), \(receipt.chargeID))
                """, logger: logger)
            return receipt
        }
    }

    /// The receipt of a message processed before.
    private static func originalReceipt(messageID: String, on connection: PostgresConnection,
                                        logger: Logger) async throws -> MeteringReceipt {
        let rows = try await connection.query("""
            SELECT e.disposition, e.charge_id, c.unit_price::text, c.list_price::text, c.currency
            FROM billing.usage_events e LEFT JOIN billing.charges c ON c.id = e.charge_id
            WHERE e.message_id = \(messageID)
            """, logger: logger)
        for try await (disposition, chargeID, unitPrice, listPrice, currency) in rows.decode(
            (String, UUID?, String?, String?, String?).self) {
            return MeteringReceipt(disposition: Metering.Disposition(rawValue: disposition) ?? .alreadyCharged,
                                   chargeID: chargeID, unitPrice: unitPrice, listPrice: listPrice, currency: currency,
                                   redelivered: true)
        }
        // Processed before usage events were kept (migration 2): its effect, if any, is already recorded.
        return MeteringReceipt(disposition: .alreadyCharged, redelivered: true)
    }

    // MARK: Prices

    /// The price in force at `instant`: the latest effective-dated price of the cloud, else the profile's.
    static func price(cloud: CloudProfile, at instant: Date, on connection: PostgresConnection,
                      logger: Logger) async throws -> PriceRecord {
        let rows = try await connection.query("""
            SELECT unit_price::text, currency, effective_from, created_at FROM billing.prices
            WHERE cloud = \(cloud.cloudType.rawValue) AND effective_from <= \(instant)
            ORDER BY effective_from DESC LIMIT 1
            """, logger: logger)
        for try await (unitPrice, currency, from, created) in rows.decode((String, String, Date, Date).self) {
            return PriceRecord(unitPrice: unitPrice, currency: currency, effectiveFrom: from, createdAt: created)
        }
        return builtInPrice(cloud)
    }

    /// The cloud profile's price, which applies before the cloud's first effective-dated price.
    static func builtInPrice(_ cloud: CloudProfile) -> PriceRecord {
        PriceRecord(unitPrice: Money.fourPlaces(cloud.unitPrice), currency: cloud.currency, effectiveFrom: nil, createdAt: nil)
    }

    /// The price in force now.
    func currentPrice() async throws -> PriceRecord {
        let cloud = self.cloud
        let logger = self.logger
        return try await database.withConnection { connection in
            try await Self.price(cloud: cloud, at: Date(), on: connection, logger: logger)
        }
    }

    /// The cloud's effective-dated prices, oldest first (without the profile's built-in price).
    func prices() async throws -> [PriceRecord] {
        let rows = try await database.query("""
            SELECT unit_price::text, currency, effective_from, created_at FROM billing.prices
            WHERE cloud = \(cloud.cloudType.rawValue) ORDER BY effective_from
            """, logger: logger)
        var prices: [PriceRecord] = []
        for try await (unitPrice, currency, from, created) in rows.decode((String, String, Date, Date).self) {
            prices.append(PriceRecord(unitPrice: unitPrice, currency: currency, effectiveFrom: from, createdAt: created))
        }
        return prices
    }

    /// Adds a price taking effect at `effectiveFrom`, which must still be in the future when the row commits.
    /// - Returns: nil when the cloud already has a price at that instant.
    /// - Throws: `ProblemError` 400 when `effectiveFrom` is not in the future.
    func addPrice(unitPrice: String, currency: String, effectiveFrom: Date) async throws -> PriceRecord? {
        let rows = try await database.query("""
            INSERT INTO billing.prices (id, cloud, currency, unit_price, effective_from)
            SELECT \(UUID()), \(cloud.cloudType.rawValue), \(currency), \(unitPrice)::numeric, \(effectiveFrom)
            WHERE \(effectiveFrom) > now()
            ON CONFLICT (cloud, effective_from) DO NOTHING
            RETURNING unit_price::text, currency, effective_from, created_at
            """, logger: logger)
        for try await (price, currency, from, created) in rows.decode((String, String, Date, Date).self) {
            return PriceRecord(unitPrice: price, currency: currency, effectiveFrom: from, createdAt: created)
        }
        // Nothing inserted: either the instant is taken or it is not in the future (judged by the database's clock).
        let future = try await database.query("SELECT \(effectiveFrom) > now()", logger: logger)
        for try await isFuture in future.decode(Bool.self) where !isFuture {
            throw ProblemError.badRequest("""
                effectiveFrom \(ISO8601DateFormatter().string(from: effectiveFrom)) is not in the future; prices can only be \
                added for the future, so that recorded and late-delivered scans keep the price of their scan time
                """)
        }
        return nil
    }

    // MARK: Trials

    /// The subscription's trial as recorded, or nil when billing has no record of it for this tenant.
    func trial(tenantID: UUID, subscriptionID: UUID) async throws -> TrialRecord? {
        let logger = self.logger
        return try await database.withTenant(tenantID, logger: logger) { connection in
            let rows = try await connection.query("""
                SELECT trial_days, trial_starts_at FROM billing.subscriptions
                WHERE subscription_id = \(subscriptionID) AND tenant_id = \(tenantID)
                """, logger: logger)
            for try await (days, start) in rows.decode((Int, Date?).self) { return TrialRecord(days: days, startsAt: start) }
            return nil
        }
    }

    /// Sets the trial length of the subscription (creating billing's record of it); its start is unchanged.
    /// - Throws: `ProblemError` 409 when the subscription is recorded for another tenant.
    func setTrial(tenantID: UUID, subscriptionID: UUID, days: Int) async throws -> TrialRecord {
        let logger = self.logger
        return try await database.withTenant(tenantID, logger: logger) { connection in
            let rows = try await connection.query("""
                INSERT INTO billing.subscriptions (subscription_id, tenant_id, trial_days)
                VALUES (\(subscriptionID), \(tenantID), \(days))
                ON CONFLICT (subscription_id) DO UPDATE SET trial_days = EXCLUDED.trial_days, updated_at = now()
                  WHERE subscriptions.tenant_id = EXCLUDED.tenant_id
                RETURNING trial_days, trial_starts_at
                """, logger: logger)
            for try await (days, start) in rows.decode((Int, Date?).self) { return TrialRecord(days: days, startsAt: start) }
            // Another tenant's subscription is unknown here: saying it exists elsewhere would leak it (issue 6).
            throw ProblemError.notFound("tenant \(tenantID.lowercased) has no subscription \(subscriptionID.lowercased)")
        }
    }

    // MARK: Usage and invoices

    /// Scans and charges per registry and period, oldest period first, within `range` (by scan time).
    func usagePeriods(tenantID: UUID, subscriptionID: UUID, range: TimeRange,
                      granularity: UsageGranularity) async throws -> [UsagePeriodRecord] {
        let logger = self.logger
        return try await database.withTenant(tenantID, logger: logger) { connection in
            let (unit, label) = granularity.sql
            var periods: [String: UsagePeriodRecord] = [:]
            let scans = try await connection.query("""
                SELECT to_char(date_trunc(\(unit), scanned_at AT TIME ZONE 'UTC'), \(label)), registry_id, count(*)::int
                FROM billing.usage_events
                WHERE tenant_id = \(tenantID) AND subscription_id = \(subscriptionID)
                  AND (\(range.from)::timestamptz IS NULL OR scanned_at >= \(range.from))
                  AND (\(range.to)::timestamptz IS NULL OR scanned_at < \(range.to))
                GROUP BY 1, 2
                """, logger: logger)
            for try await (period, registry, count) in scans.decode((String, UUID, Int).self) {
                periods["\(period) \(registry)", default: UsagePeriodRecord(period: period, registryID: registry)].scans = count
            }
            let charges = try await connection.query("""
                SELECT to_char(date_trunc(\(unit), scanned_at AT TIME ZONE 'UTC'), \(label)), registry_id, count(*)::int,
                  (count(*) FILTER (WHERE in_trial))::int, sum(unit_price)::numeric(14, 4)::text
                FROM billing.charges
                WHERE tenant_id = \(tenantID) AND subscription_id = \(subscriptionID)
                  AND (\(range.from)::timestamptz IS NULL OR scanned_at >= \(range.from))
                  AND (\(range.to)::timestamptz IS NULL OR scanned_at < \(range.to))
                GROUP BY 1, 2
                """, logger: logger)
            for try await (period, registry, billable, trial, amount) in charges.decode((String, UUID, Int, Int, String).self) {
                var record = periods["\(period) \(registry)", default: UsagePeriodRecord(period: period, registryID: registry)]
                record.billableImages = billable
                record.trialImages = trial
                record.amount = amount
                periods["\(period) \(registry)"] = record
            }
            return periods.values.sorted { ($0.period, $0.registryID.uuidString) < ($1.period, $1.registryID.uuidString) }
        }
    }

    /// The charges within `range`, by scan time.
    func charges(tenantID: UUID, subscriptionID: UUID, range: TimeRange) async throws -> [ChargeRecord] {
        let logger = self.logger
        return try await database.withTenant(tenantID, logger: logger) { connection in
            let rows = try await connection.query("""
                SELECT id, registry_id, registry_host, digest, scan_id, scanned_at, charged_at, unit_price::text,
                  list_price::text, in_trial, currency
                FROM billing.charges
                WHERE tenant_id = \(tenantID) AND subscription_id = \(subscriptionID)
                  AND (\(range.from)::timestamptz IS NULL OR scanned_at >= \(range.from))
                  AND (\(range.to)::timestamptz IS NULL OR scanned_at < \(range.to))
                ORDER BY scanned_at, charged_at, id
                """, logger: logger)
            var charges: [ChargeRecord] = []
            for try await (id, registry, host, digest, scan, scannedAt, chargedAt, unitPrice, listPrice, inTrial, currency)
                in rows.decode((UUID, UUID, String?, String, UUID, Date, Date, String, String, Bool, String).self) {
                charges.append(ChargeRecord(id: id, registryID: registry, registryHost: host, digest: digest, scanID: scan,
                                            scannedAt: scannedAt, chargedAt: chargedAt, unitPrice: unitPrice,
                                            listPrice: listPrice, inTrial: inTrial, currency: currency))
            }
            return charges
        }
    }

    /// Billable images, of which in the trial, and the amount charged within `range`.
    func totals(tenantID: UUID, subscriptionID: UUID, range: TimeRange) async throws -> ChargeTotals {
        let logger = self.logger
        return try await database.withTenant(tenantID, logger: logger) { connection in
            let rows = try await connection.query("""
                SELECT count(*)::int, (count(*) FILTER (WHERE in_trial))::int, COALESCE(sum(unit_price), 0)::numeric(14, 4)::text
                FROM billing.charges
                WHERE tenant_id = \(tenantID) AND subscription_id = \(subscriptionID)
                  AND (\(range.from)::timestamptz IS NULL OR scanned_at >= \(range.from))
                  AND (\(range.to)::timestamptz IS NULL OR scanned_at < \(range.to))
                """, logger: logger)
            for try await (billable, trial, amount) in rows.decode((Int, Int, String).self) {
                return ChargeTotals(billableImages: billable, trialImages: trial, amount: amount)
            }
            return ChargeTotals(billableImages: 0, trialImages: 0, amount: "0.0000")
        }
    }

    /// The invoice's line items for `range`: charges grouped by registry, trial and price.
    func invoiceLines(tenantID: UUID, subscriptionID: UUID, range: TimeRange) async throws -> [InvoiceLineRecord] {
        let logger = self.logger
        return try await database.withTenant(tenantID, logger: logger) { connection in
            let rows = try await connection.query("""
                SELECT registry_id, in_trial, unit_price::text, list_price::text, currency, count(*)::int,
                  sum(unit_price)::numeric(14, 4)::text
                FROM billing.charges
                WHERE tenant_id = \(tenantID) AND subscription_id = \(subscriptionID)
                  AND scanned_at >= \(range.from) AND scanned_at < \(range.to)
                GROUP BY registry_id, in_trial, unit_price, list_price, currency
                ORDER BY registry_id, in_trial DESC, list_price, currency
                """, logger: logger)
            var lines: [InvoiceLineRecord] = []
            for try await (registry, inTrial, unitPrice, listPrice, currency, quantity, amount) in rows.decode(
                (UUID, Bool, String, String, String, Int, String).self) {
                lines.append(InvoiceLineRecord(registryID: registry, inTrial: inTrial, unitPrice: unitPrice, listPrice: listPrice,
                                               currency: currency, quantity: quantity, amount: amount))
            }
            return lines
        }
    }

    /// The latest login server reported for each of the subscription's registries.
    func registryHosts(tenantID: UUID, subscriptionID: UUID) async throws -> [UUID: String] {
        let logger = self.logger
        return try await database.withTenant(tenantID, logger: logger) { connection in
            let rows = try await connection.query("""
                SELECT DISTINCT ON (registry_id) registry_id, registry_host FROM billing.usage_events
                WHERE tenant_id = \(tenantID) AND subscription_id = \(subscriptionID) AND registry_host IS NOT NULL
                ORDER BY registry_id, scanned_at DESC
                """, logger: logger)
            var hosts: [UUID: String] = [:]
            for try await (registry, host) in rows.decode((UUID, String).self) { hosts[registry] = host }
            return hosts
        }
    }
}

extension UUID {
    /// The lowercase text form the contracts use.
    var lowercased: String { uuidString.lowercased() }
}
