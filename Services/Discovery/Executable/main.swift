import Discovery
import GantryRuntime
import Hummingbird

// Thin entry point: configuration from GANTRY_* variables, then run until SIGTERM.
let configuration = try GantryConfiguration(service: .discovery)
try await buildDiscoveryApplication(configuration: configuration).runService()
