import Ingestion
import GantryRuntime

// Thin entry point: configuration from GANTRY_* variables, then run until SIGTERM.
await ServiceMain.run(.ingestion) { try await buildIngestionApplication(configuration: $0) }
