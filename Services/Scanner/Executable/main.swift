import GantryRuntime
import Hummingbird
import Scanner

// Thin entry point: configuration from GANTRY_* variables, then run until SIGTERM.
let configuration = try GantryConfiguration(service: .scanner)
try await buildScannerApplication(configuration: configuration).runService()
