import GantryRuntime
import ServiceLifecycle

/// The periodic check behind rule expiry: every `interval`, re-evaluates the images of rules whose
/// `expiresAt` has passed (and evaluates assessments stored before findings rows existed).
/// Interval: `GANTRY_RULE_EXPIRY_INTERVAL_MS`, default 30000.
struct RuleExpiryWorker: Service {
    let engine: PolicyEngine
    let readiness: Readiness
    let interval: Duration

    func run() async throws {
        // Database work only: bounded, so a statement caught by a database restart cannot stop the loop.
        await PollingLoop.run(name: "rule expiry", readiness: readiness, interval: interval, passLimit: .seconds(300),
                              logger: engine.logger) {
            let expired = try await engine.expireDueRules()
            let evaluated = try await engine.evaluateStoredImages()
            return expired + evaluated > 0
        }
    }
}
