import GantryRuntime
import Hummingbird
import Ingestion

// Thin entry point: configuration from GANTRY_* variables, then run until SIGTERM.
let configuration = try GantryConfiguration(service: .ingestion)
try await buildIngestionApplication(configuration: configuration).runService()
