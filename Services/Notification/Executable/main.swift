import Notification
import GantryRuntime

// Thin entry point: configuration from GANTRY_* variables, then run until SIGTERM.
await ServiceMain.run(.notification) { try await buildNotificationApplication(configuration: $0) }
