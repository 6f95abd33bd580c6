import Billing
import GantryRuntime

// Thin entry point: configuration from GANTRY_* variables, then run until SIGTERM.
await ServiceMain.run(.billing) { try await buildBillingApplication(configuration: $0) }
