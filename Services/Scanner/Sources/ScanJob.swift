import Foundation
import GantryRuntime

/// A claimed scan job.
struct ScanJob: Sendable {
    var id: UUID
    var tenantID: UUID
    var subscriptionID: UUID
    var registryID: UUID
    var repository: String
    var digest: String
    var tag: String?
    var trigger: String
    var attempt: Int
    var maxAttempts: Int
    var queuedAt: Date
    /// The job must be finished by then (`GANTRY_SCAN_DEADLINE_SECONDS` after it was queued).
    var deadline: Date

    /// Queue order: pushes and imports first, then manual scans, then rescans.
    static func priority(of trigger: String) -> Int {
        switch trigger {
        case "push", "import": 0
        case "manual": 1
        default: 2
        }
    }
}

/// How the scan queue behaves (ARCHITECTURE.md, "Work queues"), from `GANTRY_SCAN_*` variables.
struct ScanQueueSettings: Sendable {
    /// `GANTRY_SCAN_LEASE_SECONDS` (default 60): a running job's lease, renewed every third of it; a job
    /// whose worker died is taken again after it expires.
    var lease: Duration = .seconds(60)
    /// `GANTRY_SCAN_MAX_ATTEMPTS` (default 5): transient failures are retried until then, then dead-lettered.
    var maxAttempts = 5
    /// `GANTRY_SCAN_DEADLINE_SECONDS` (default 2400, the seed product's 40 minutes): a job not finished
    /// this long after it was queued is dead-lettered, retries included.
    var deadlineSeconds = 2400
    /// `GANTRY_SCAN_RETRY_BASE_MS` (default 2000): the first retry's delay; each further one doubles,
    /// capped at 5 minutes, with ±20 % jitter.
    var retryBase: Duration = .seconds(2)
    /// `GANTRY_SCAN_REGISTRY_CONCURRENCY` (default 2): scans of one registry running at once, across replicas.
    var registryConcurrency = 2
    /// `GANTRY_SCAN_REGISTRY_RATE_PER_MINUTE` (default 60): scans of one registry started per minute,
    /// so that a rescan of everything never floods a registry.
    var registryRatePerMinute = 60

    init() {}

    /// - Throws: `ConfigurationError` naming a variable whose value is out of range.
    init(environment: [String: String]) throws {
        lease = .seconds(try GantryConfiguration.integer("GANTRY_SCAN_LEASE_SECONDS", environment, default: 60, range: 3...3600))
        maxAttempts = try GantryConfiguration.integer("GANTRY_SCAN_MAX_ATTEMPTS", environment, default: 5, range: 1...50)
        deadlineSeconds = try GantryConfiguration.integer("GANTRY_SCAN_DEADLINE_SECONDS", environment, default: 2400,
                                                          range: 10...86400)
        retryBase = .milliseconds(try GantryConfiguration.integer("GANTRY_SCAN_RETRY_BASE_MS", environment, default: 2000,
                                                                  range: 10...600_000))
        registryConcurrency = try GantryConfiguration.integer("GANTRY_SCAN_REGISTRY_CONCURRENCY", environment, default: 2,
                                                              range: 1...64)
        registryRatePerMinute = try GantryConfiguration.integer("GANTRY_SCAN_REGISTRY_RATE_PER_MINUTE", environment,
                                                                default: 60, range: 1...100_000)
    }

    /// Seconds before retry number `attempt` (1-based count of failed attempts): `retryBase · 2^(attempt-1)`,
    /// capped at 300 s, times a uniform jitter in [0.8, 1.2] so that jobs failing together spread out.
    func retryDelay(afterAttempt attempt: Int) -> Double {
        let base = Double(retryBase.components.seconds) + Double(retryBase.components.attoseconds) / 1e18
        return min(300.0, base * pow(2.0, Double(min(max(attempt - 1, 0), 20)))) * Double.random(in: 0.8...1.2)
    }
}
