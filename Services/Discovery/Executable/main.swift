import Discovery
import GantryRuntime

// Thin entry point: configuration from GANTRY_* variables, then run until SIGTERM.
await ServiceMain.run(.discovery) { try await buildDiscoveryApplication(configuration: $0) }
