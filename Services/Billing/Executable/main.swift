import Billing
import GantryRuntime
import Hummingbird

// Thin entry point: configuration from GANTRY_* variables, then run until SIGTERM.
let configuration = try GantryConfiguration(service: .billing)
try await buildBillingApplication(configuration: configuration).runService()
