import AsyncHTTPClient
import Foundation
import GantryRuntime
import Hummingbird
import NotificationAPI
import OpenAPIHummingbird

/// Builds the notification service: alerts in, signed webhook deliveries out, with a delivery log.
/// - Parameter onServerRunning: receives the bound port (tests listen on port 0).
public func buildNotificationApplication(configuration: GantryConfiguration,
                                         onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in })
    async throws -> some ApplicationProtocol {
    let runtime = try await ServiceRuntime(configuration: configuration,
                                           migrations: try ServiceRuntime.migrations(in: Bundle.module))
    // Webhook URLs are checked when created; never follow a redirect to somewhere unchecked.
    var clientConfiguration = HTTPClient.Configuration(redirectConfiguration: .disallow)
    clientConfiguration.timeout = .init(connect: .seconds(5), read: .seconds(10))
    let webhookClient = HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfiguration)
    let worker = DeliveryWorker(runtime: runtime, httpClient: webhookClient)
    let api = NotificationAPIImpl(runtime: runtime)
    return try runtime.makeApplication(openAPIDocument: NotificationAPI.openAPIDocument,
                                       services: [HTTPClientService(client: webhookClient), worker],
                                       onServerRunning: onServerRunning) { router in
        try api.registerHandlers(on: router)
    }
}
