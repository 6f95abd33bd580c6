import Scanner
import GantryRuntime

// Thin entry point: configuration from GANTRY_* variables, then run until SIGTERM.
await ServiceMain.run(.scanner) { try await buildScannerApplication(configuration: $0) }
