import FindingsPolicy
import GantryRuntime

// Thin entry point: configuration from GANTRY_* variables, then run until SIGTERM.
await ServiceMain.run(.findingsPolicy) { try await buildFindingsPolicyApplication(configuration: $0) }
