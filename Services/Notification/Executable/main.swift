import GantryRuntime
import Hummingbird
import Notification

// Thin entry point: configuration from GANTRY_* variables, then run until SIGTERM.
let configuration = try GantryConfiguration(service: .notification)
try await buildNotificationApplication(configuration: configuration).runService()
