import Foundation

/// The metering rules (PRODUCT.md, "billing"; issue 8, item 1), free of storage so they can be read in one place.
///
/// The first successful scan (outcome `assessed`) of an image digest in a subscription whose plan is enabled,
/// started by a push, an import or a manual request, is one billable unit. Everything else is free: rescans
/// (the weekly rescan of pulled images, free in the seed product too), re-evaluations after a feed update,
/// failed and not-applicable scans, scans under a disabled plan, and every scan of a digest already charged.
/// The last rule is enforced by the unique key (subscription, digest) of `billing.charges`, not here.
enum Metering {
    /// What billing did with one reported scan (the `Disposition` of the contract).
    enum Disposition: String, Sendable, CaseIterable {
        /// Charged at the price in force at scan time.
        case charged
        /// Charged at 0 inside the subscription's free trial (the list price is recorded).
        case trial
        /// Free: the (subscription, digest) was charged before.
        case alreadyCharged
        /// Free: a rescan or a re-evaluation.
        case freeTrigger
        /// Free: the scan failed or the image is not applicable.
        case notAssessed
        /// Free: the subscription's plan was disabled at scan time.
        case planDisabled

        /// Whether a charge row belongs to this disposition.
        var isCharge: Bool { self == .charged || self == .trial }
    }

    /// Triggers whose first scan of a digest is billable; `rescan` and `reevaluation` never are.
    static let billableTriggers: Set<String> = ["push", "import", "manual"]

    /// Accepted free-trial lengths, in days (0 = no trial; at most ten years).
    static let trialDaysRange = 0...3650

    /// The free disposition of a scan whatever else was charged, or nil when it is a candidate for a charge.
    static func exemption(trigger: String, outcome: String, planEnabled: Bool) -> Disposition? {
        if outcome != "assessed" { return .notAssessed }
        if !planEnabled { return .planDisabled }
        if !billableTriggers.contains(trigger) { return .freeTrigger }
        return nil
    }

    /// The end (exclusive) of a trial of `days` days that started at `start`; nil before the first usage.
    /// A day is 86,400 s: the trial is counted in UTC, where days have no daylight-saving changes.
    static func trialEnd(start: Date?, days: Int) -> Date? {
        start.map { $0.addingTimeInterval(Double(days) * 86_400) }
    }

    /// Whether a scan at `scannedAt` falls in a trial of `days` days that started at `start`.
    ///
    /// The trial starts with the subscription's first billable scan, so a scan delivered out of order with an
    /// earlier time than that one belongs to the trial as well: everything before the end is inside.
    static func inTrial(scannedAt: Date, start: Date, days: Int) -> Bool {
        days > 0 && scannedAt < start.addingTimeInterval(Double(days) * 86_400)
    }
}
