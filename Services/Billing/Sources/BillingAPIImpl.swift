import BillingAPI
import Foundation
import GantryModel
import GantryRuntime
import Logging
import OpenAPIRuntime
import PostgresNIO

/// Billing's HTTP API (Shared/Contracts/specs/billing.yaml): metering of reported scans (`Metering`),
/// the cloud's effective-dated price list, free trials, usage reports and monthly invoices.
///
/// NOTE: the tenant routes are meant for the tenant's Owners and the price routes for operators; they are
/// unrestricted until user authentication exists (only `/internal` routes check tokens today).
struct BillingAPIImpl: APIProtocol {
    let runtime: ServiceRuntime
    let settings: BillingSettings
    let store: PostgresBillingStore

    /// How far ahead of billing's clock a reported scan time may be (clock skew between hosts), in seconds.
    static let maxClockSkew: TimeInterval = 300

    init(runtime: ServiceRuntime, settings: BillingSettings) {
        self.runtime = runtime
        self.settings = settings
        store = PostgresBillingStore(database: runtime.database, inbox: runtime.inbox, cloud: runtime.configuration.cloud,
                                     logger: runtime.logger)
    }

    var cloud: CloudProfile { runtime.configuration.cloud }

    // MARK: Metering

    func recordScan(_ input: Operations.RecordScan.Input) async throws -> Operations.RecordScan.Output {
        guard case .json(let usage) = input.body else { throw ProblemError.badRequest("expected a JSON body") }
        let now = Date()
        let scannedAt = usage.scannedAt ?? now
        guard scannedAt <= now.addingTimeInterval(Self.maxClockSkew) else {
            throw ProblemError.badRequest(
                "scannedAt \(ISO8601DateFormatter().string(from: scannedAt)) is more than \(Int(Self.maxClockSkew)) s in the future")
        }
        var registryHost: String?
        if let host = usage.registryHost {
            guard CloudProfile.host(ofLoginServer: host) != nil else {
                throw ProblemError.badRequest("registryHost '\(host.prefix(100))' is not a host name with an optional port")
            }
            registryHost = host
        }
        let scan = MeteredScan(
            messageID: try Validate.text(usage.messageId, field: "messageId"),
            tenantID: try Validate.uuid(usage.tenantId, field: "tenantId"),
            subscriptionID: try Validate.uuid(usage.subscriptionId, field: "subscriptionId"),
            registryID: try Validate.uuid(usage.registryId, field: "registryId"),
            registryHost: registryHost,
            digest: try Validate.digest(usage.digest, field: "digest").description,
            scanID: try Validate.uuid(usage.scanId, field: "scanId"),
            trigger: usage.trigger.rawValue, outcome: (usage.outcome ?? .assessed).rawValue,
            planEnabled: usage.planEnabled ?? true, scannedAt: scannedAt)
        let receipt = try await store.record(scan, defaultTrialDays: settings.defaultTrialDays)
        if receipt.disposition.isCharge, !receipt.redelivered {
            runtime.logger.info("image charged", metadata: [
                "digest": "\(scan.digest)", "subscription": "\(scan.subscriptionID.lowercased)",
                "unit_price": "\(receipt.unitPrice ?? "")", "disposition": "\(receipt.disposition.rawValue)"])
        }
        return .ok(.init(body: .json(.init(
            charged: receipt.disposition.isCharge, chargeId: receipt.chargeID?.lowercased,
            disposition: .init(rawValue: receipt.disposition.rawValue) ?? .alreadyCharged,
            unitPrice: receipt.unitPrice, listPrice: receipt.listPrice, currency: receipt.currency,
            redelivered: receipt.redelivered))))
    }

    // MARK: Prices

    func listPrices(_ input: Operations.ListPrices.Input) async throws -> Operations.ListPrices.Output {
        let prices = [PostgresBillingStore.builtInPrice(cloud)] + (try await store.prices())
        let current = try await store.currentPrice()
        return .ok(.init(body: .json(.init(cloud: cloud.cloudType.rawValue, currency: cloud.currency,
                                           current: Self.price(current), prices: prices.map(Self.price)))))
    }

    func addPrice(_ input: Operations.AddPrice.Input) async throws -> Operations.AddPrice.Output {
        guard case .json(let price) = input.body else { throw ProblemError.badRequest("expected a JSON body") }
        guard Money.isUnitPrice(price.unitPrice) else {
            throw ProblemError.badRequest(
                "unitPrice '\(price.unitPrice.prefix(40))' is not a non-negative decimal with at most 8 integer and 4 fraction digits")
        }
        guard Money.isCurrencyCode(price.currency) else {
            throw ProblemError.badRequest("currency '\(price.currency.prefix(40))' is not an ISO 4217 code (three capital letters)")
        }
        guard price.currency == cloud.currency else {
            throw ProblemError.badRequest("currency \(price.currency): the \(cloud.cloudType.rawValue) cloud bills in \(cloud.currency)")
        }
        guard let added = try await store.addPrice(unitPrice: price.unitPrice, currency: price.currency,
                                                   effectiveFrom: price.effectiveFrom) else {
            throw ProblemError.conflict("a price taking effect at \(ISO8601DateFormatter().string(from: price.effectiveFrom)) exists already")
        }
        runtime.logger.notice("price added", metadata: [
            "unit_price": "\(added.unitPrice)", "currency": "\(added.currency)", "effective_from": "\(price.effectiveFrom)"])
        return .created(.init(body: .json(Self.price(added))))
    }

    static func price(_ record: PriceRecord) -> Components.Schemas.Price {
        .init(unitPrice: record.unitPrice, currency: record.currency, effectiveFrom: record.effectiveFrom,
              createdAt: record.createdAt)
    }

    // MARK: Trials

    func getTrial(_ input: Operations.GetTrial.Input) async throws -> Operations.GetTrial.Output {
        let tenantID = try Validate.uuid(input.path.tenantId, field: "tenantId")
        let subscriptionID = try Validate.uuid(input.path.subscriptionId, field: "subscriptionId")
        // Unknown to billing (or another tenant's): the default trial, not yet started.
        let trial = try await store.trial(tenantID: tenantID, subscriptionID: subscriptionID)
            ?? TrialRecord(days: settings.defaultTrialDays, startsAt: nil)
        return .ok(.init(body: .json(Self.trial(trial, subscriptionID: subscriptionID))))
    }

    func setTrial(_ input: Operations.SetTrial.Input) async throws -> Operations.SetTrial.Output {
        let tenantID = try Validate.uuid(input.path.tenantId, field: "tenantId")
        let subscriptionID = try Validate.uuid(input.path.subscriptionId, field: "subscriptionId")
        guard case .json(let settings) = input.body else { throw ProblemError.badRequest("expected a JSON body") }
        guard Metering.trialDaysRange.contains(settings.days) else {
            let range = Metering.trialDaysRange
            throw ProblemError.badRequest("days \(settings.days) is not in \(range.lowerBound)...\(range.upperBound)")
        }
        let trial = try await store.setTrial(tenantID: tenantID, subscriptionID: subscriptionID, days: settings.days)
        return .ok(.init(body: .json(Self.trial(trial, subscriptionID: subscriptionID))))
    }

    static func trial(_ trial: TrialRecord, subscriptionID: UUID, now: Date = Date()) -> Components.Schemas.Trial {
        let end = Metering.trialEnd(start: trial.startsAt, days: trial.days)
        return .init(subscriptionId: subscriptionID.lowercased, days: trial.days, startsAt: trial.startsAt, endsAt: end,
                     active: trial.days > 0 && (end.map { now < $0 } ?? true))
    }

    // MARK: Usage

    func getUsage(_ input: Operations.GetUsage.Input) async throws -> Operations.GetUsage.Output {
        let tenantID = try Validate.uuid(input.path.tenantId, field: "tenantId")
        let subscriptionID = try Validate.uuid(input.path.subscriptionId, field: "subscriptionId")
        let from = try input.query.from.map { try BillingCalendar.day($0, field: "from") }
        let to = try input.query.to.map { try BillingCalendar.day($0, field: "to") }
        if let from, let to, to < from {
            throw ProblemError.badRequest("to \(input.query.to ?? "") is before from \(input.query.from ?? "")")
        }
        let range = TimeRange(from: from, to: to.map(BillingCalendar.nextDay))
        let granularity: UsageGranularity = input.query.granularity == .day ? .day : .month
        let records = try await store.usagePeriods(tenantID: tenantID, subscriptionID: subscriptionID, range: range,
                                                   granularity: granularity)
        let charges = try await store.charges(tenantID: tenantID, subscriptionID: subscriptionID, range: range)
        let totals = try await store.totals(tenantID: tenantID, subscriptionID: subscriptionID, range: range)
        let hosts = try await store.registryHosts(tenantID: tenantID, subscriptionID: subscriptionID)
        // Oldest period first; within one, registries by login server, then ID.
        let periods = records.sorted {
            ($0.period, hosts[$0.registryID] ?? "", $0.registryID.uuidString)
                < ($1.period, hosts[$1.registryID] ?? "", $1.registryID.uuidString)
        }
        return .ok(.init(body: .json(.init(
            subscriptionId: subscriptionID.lowercased, from: input.query.from, to: input.query.to,
            granularity: granularity == .day ? .day : .month, scans: periods.reduce(0) { $0 + $1.scans },
            billableImages: totals.billableImages, trialImages: totals.trialImages, amount: totals.amount,
            currency: cloud.currency,
            periods: periods.map {
                .init(period: $0.period, registryId: $0.registryID.lowercased, registryHost: hosts[$0.registryID],
                      scans: $0.scans, billableImages: $0.billableImages, trialImages: $0.trialImages, amount: $0.amount)
            },
            charges: charges.map {
                .init(chargeId: $0.id.lowercased, registryId: $0.registryID.lowercased, registryHost: $0.registryHost,
                      digest: $0.digest, scanId: $0.scanID.lowercased, scannedAt: $0.scannedAt, chargedAt: $0.chargedAt,
                      unitPrice: $0.unitPrice, listPrice: $0.listPrice, inTrial: $0.inTrial, currency: $0.currency)
            }))))
    }

    // MARK: Invoices

    func getInvoice(_ input: Operations.GetInvoice.Input) async throws -> Operations.GetInvoice.Output {
        let tenantID = try Validate.uuid(input.path.tenantId, field: "tenantId")
        let subscriptionID = try Validate.uuid(input.path.subscriptionId, field: "subscriptionId")
        let month = input.path.month
        let (start, end) = try BillingCalendar.month(month, field: "month")
        let now = Date()
        guard start <= now else { throw ProblemError.badRequest("month \(month) has not begun") }
        let range = TimeRange(from: start, to: end)
        let records = try await store.invoiceLines(tenantID: tenantID, subscriptionID: subscriptionID, range: range)
        let totals = try await store.totals(tenantID: tenantID, subscriptionID: subscriptionID, range: range)
        let hosts = try await store.registryHosts(tenantID: tenantID, subscriptionID: subscriptionID)
        // Registries by login server, then ID; within one, the store's order (trial first, then by price).
        let sorted = records.enumerated().sorted {
            (hosts[$0.element.registryID] ?? "", $0.element.registryID.uuidString, $0.offset)
                < (hosts[$1.element.registryID] ?? "", $1.element.registryID.uuidString, $1.offset)
        }.map(\.element)
        let lines = sorted.map { line in
            Components.Schemas.InvoiceLine(
                registryId: line.registryID.lowercased, registryHost: hosts[line.registryID],
                description: line.inTrial
                    ? "First scans of image digests, free trial (list price \(line.listPrice) \(line.currency))"
                    : "First scans of image digests",
                quantity: line.quantity, unitPrice: line.unitPrice, listPrice: line.listPrice, inTrial: line.inTrial,
                amount: line.amount)
        }
        switch input.query.format ?? .json {
        case .json:
            return .ok(.init(body: .json(.init(
                tenantId: tenantID.lowercased, subscriptionId: subscriptionID.lowercased, month: month,
                periodStart: start, periodEnd: end, status: now >= end ? .closed : .open, currency: cloud.currency,
                generatedAt: now, billableImages: totals.billableImages, total: totals.amount, lines: lines))))
        case .csv:
            let rows = zip(lines, sorted).map { line, record in
                [month, tenantID.lowercased, subscriptionID.lowercased, line.registryId, line.registryHost ?? "",
                 line.description, String(line.quantity), line.unitPrice, line.listPrice, line.amount, record.currency]
            }
            return .ok(.init(body: .csv(HTTPBody(InvoiceCSV.document(rows: rows)))))
        }
    }
}
