import AsyncHTTPClient
import Foundation
import GantryRuntime
import Hummingbird
import NIOCore
import NotificationAPI
import OpenAPIHummingbird
import RegistryClient

/// Builds the notification service: alerts in, routed by rules through noise control to webhook, Slack, Teams,
/// CloudEvents and e-mail channels, with retries, dead letters and a delivery log (notification.yaml).
/// - Parameter onServerRunning: receives the bound port (tests listen on port 0).
/// - Throws: `ConfigurationError` for a bad `GANTRY_NOTIFICATION_*` or `GANTRY_SMTP_*` variable.
public func buildNotificationApplication(configuration: GantryConfiguration,
                                         onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in })
    async throws -> some ApplicationProtocol {
    let settings = try NotificationSettings(environment: configuration.environment)
    let runtime = try await ServiceRuntime(configuration: configuration,
                                           migrations: try ServiceRuntime.migrations(in: Bundle.module))
    // Channel URLs are checked when created; never follow a redirect to somewhere unchecked.
    var clientConfiguration = HTTPClient.Configuration(redirectConfiguration: .disallow)
    let timeout = TimeAmount.nanoseconds(Int64(settings.attemptTimeout.seconds * 1e9))
    clientConfiguration.timeout = .init(connect: timeout, read: timeout)
    // A refused connection fails the attempt at once; the worker's backoff does the retrying, not the pool.
    clientConfiguration.connectionPool.retryConnectionEstablishment = false
    // Each connection goes to the address the SSRF guard approved for that attempt (DNS rebinding).
    let deliveryClient = PinnedHTTPClients(addressGuard: try .forDeployment(configuration, privateVariable: AddressGuard.allowPrivateWebhooksVariable), configuration: clientConfiguration)
    let worker = DeliveryWorker(runtime: runtime, settings: settings, clients: deliveryClient)
    let api = NotificationAPIImpl(runtime: runtime, settings: settings)
    return try runtime.makeApplication(openAPIDocument: NotificationAPI.openAPIDocument, accessPolicy: .notification,
                                       subscriptionOwnership: SubscriptionOwnership(runtime: runtime),
                                       services: [PinnedHTTPClientsService(clients: deliveryClient), worker],
                                       onServerRunning: onServerRunning) { router in
        try api.registerHandlers(on: router, middlewares: [EmptyBodyMiddleware()])
    }
}
