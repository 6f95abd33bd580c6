import GantryRuntime
import RegistryClient

/// Discovery's own settings, from `GANTRY_DISCOVERY_*` variables.
///
/// | variable | default | meaning |
/// |---|---|---|
/// | `GANTRY_DISCOVERY_CRAWL_INTERVAL_SECONDS` | 3600; 0 (off) in the development profile | periodic crawl of every applicable registry of an enabled plan; 0 = only on demand |
/// | `GANTRY_DISCOVERY_CRAWL_POLL_MILLISECONDS` | 5000 | how often the crawler looks for due registries (enablement, periodic) |
/// | `GANTRY_DISCOVERY_PAGE_SIZE` | 100 | `n` of `_catalog` and `tags/list` requests |
/// | `GANTRY_DISCOVERY_MAX_PAGES` | 1000 | pages of one listing before the crawl fails as never-ending |
/// | `GANTRY_DISCOVERY_MAX_ENTRIES` | 100000 | repositories plus tags of one crawl before it fails |
/// | `GANTRY_DISCOVERY_ONBOARDING_SCANS` | `false` | the first crawl after enablement requests a scan of every current supported tag |
/// | `GANTRY_ALLOW_PRIVATE_REGISTRIES` | `false` | accept registries resolving to private networks (SSRF guard) |
struct DiscoverySettings: Sendable {
    var crawlInterval: Duration?
    var pollInterval: Duration
    var pageSize: Int
    var maxPages: Int
    var maxEntries: Int
    var onboardingScans: Bool
    var allowPrivateRegistries: Bool
    var addressGuard: AddressGuard

    /// - Throws: `ConfigurationError` naming the bad variable.
    init(configuration: GantryConfiguration) throws {
        let environment = configuration.environment
        let defaultInterval = configuration.profile == .development ? 0 : 3600
        let interval = try GantryConfiguration.integer("GANTRY_DISCOVERY_CRAWL_INTERVAL_SECONDS", environment,
                                                       default: defaultInterval, range: 0...(86_400 * 30))
        crawlInterval = interval == 0 ? nil : .seconds(interval)
        pollInterval = .milliseconds(try GantryConfiguration.integer("GANTRY_DISCOVERY_CRAWL_POLL_MILLISECONDS", environment,
                                                                     default: 5000, range: 50...3_600_000))
        pageSize = try GantryConfiguration.integer("GANTRY_DISCOVERY_PAGE_SIZE", environment, default: 100, range: 1...10_000)
        maxPages = try GantryConfiguration.integer("GANTRY_DISCOVERY_MAX_PAGES", environment, default: 1000, range: 1...1_000_000)
        maxEntries = try GantryConfiguration.integer("GANTRY_DISCOVERY_MAX_ENTRIES", environment, default: 100_000,
                                                     range: 1...10_000_000)
        onboardingScans = try Self.flag("GANTRY_DISCOVERY_ONBOARDING_SCANS", environment)
        addressGuard = try AddressGuard.forDeployment(configuration)
        allowPrivateRegistries = addressGuard.allowPrivate
    }

    static func flag(_ name: String, _ environment: [String: String]) throws -> Bool {
        switch environment[name]?.lowercased() {
        case nil, "", "false", "0": false
        case "true", "1": true
        case let other?: throw ConfigurationError(variable: name, message: "'\(other)' is not true or false")
        }
    }
}
