import GantryRuntime

/// Billing's own settings, read from `GANTRY_BILLING_*` variables beside the common configuration.
///
/// | variable | default |
/// |---|---|
/// | `GANTRY_BILLING_TRIAL_DAYS` | `30`: the free trial of a subscription not configured otherwise, in days (0 = none) |
struct BillingSettings: Sendable {
    /// Free-trial length, in days, of subscriptions without their own setting; 0...3650. A subscription takes
    /// the value in force when billing first records it, so changing the variable later alters no running trial.
    var defaultTrialDays: Int

    /// - Throws: `ConfigurationError` naming the variable when it is not an integer in 0...3650.
    init(configuration: GantryConfiguration) throws {
        defaultTrialDays = try GantryConfiguration.integer("GANTRY_BILLING_TRIAL_DAYS", configuration.environment,
                                                           default: 30, range: Metering.trialDaysRange)
    }
}
