import FindingsPolicy
import GantryRuntime
import Hummingbird

// Thin entry point: configuration from GANTRY_* variables, then run until SIGTERM.
let configuration = try GantryConfiguration(service: .findingsPolicy)
try await buildFindingsPolicyApplication(configuration: configuration).runService()
