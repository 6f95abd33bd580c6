import FindingsPolicyAPI
import Foundation
import GantryRuntime
import Hummingbird
import OpenAPIHummingbird

/// Builds the findings-policy service: reports in, assessments, sub-assessments, rules and scores out,
/// alerts through the outbox, and the rule expiry check beside the server.
///
/// Besides the common `GANTRY_*` variables it reads `GANTRY_UNKNOWN_SEVERITY_BAND` (`Low`, `Medium`, `High`;
/// default `Low`) and `GANTRY_RULE_EXPIRY_INTERVAL_MS` (50–3600000; default 30000).
/// - Parameter onServerRunning: receives the bound port (tests listen on port 0).
/// - Throws: `ConfigurationError` for a bad value of either.
public func buildFindingsPolicyApplication(configuration: GantryConfiguration,
                                           onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in })
    async throws -> some ApplicationProtocol {
    let policy = try SeverityPolicy(environment: configuration.environment)
    let expiryInterval = try GantryConfiguration.integer("GANTRY_RULE_EXPIRY_INTERVAL_MS", configuration.environment,
                                                         default: 30_000, range: 50...3_600_000)
    let runtime = try await ServiceRuntime(configuration: configuration,
                                           migrations: try ServiceRuntime.migrations(in: Bundle.module))
    let store = PostgresPolicyStore(logger: runtime.logger, outbox: runtime.outbox, policy: policy)
    let engine = PolicyEngine(database: runtime.database, store: store, logger: runtime.logger)
    let api = FindingsPolicyAPIImpl(runtime: runtime, store: store, engine: engine)
    let worker = RuleExpiryWorker(engine: engine, readiness: runtime.readiness, interval: .milliseconds(expiryInterval))
    return try runtime.makeApplication(openAPIDocument: FindingsPolicyAPI.openAPIDocument, accessPolicy: .findingsPolicy,
                                       subscriptionOwnership: SubscriptionOwnership(runtime: runtime), services: [worker],
                                       onServerRunning: onServerRunning) { router in
        router.add(middleware: RequestBaseURLMiddleware())
        try api.registerHandlers(on: router, middlewares: [EmptyBodyMiddleware()])
    }
}

// This module also speaks to notification; its own contract's names win.
typealias Operations = FindingsPolicyAPI.Operations
typealias Components = FindingsPolicyAPI.Components
