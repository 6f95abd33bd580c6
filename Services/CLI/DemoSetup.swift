import DiscoveryAPI
import Foundation
import GantryModel
import GantryRuntime
import NotificationAPI

/// The demo's tenant, subscription, registry and webhook: found through discovery's registry lookup when
/// an earlier run created them, else created, so running the demo twice is harmless.
struct DemoSetup: Sendable {
    var tenantID: String
    var subscriptionID: String
    var registryID: String

    static func ensure(connection: ServiceConnection, registry: String, webhookURL: String,
                       webhookSecret: String) async throws -> DemoSetup {
        let (url, transport, middlewares) = connection.clientParts(.discovery)
        let discovery = DiscoveryAPI.Client(serverURL: url, transport: transport, middlewares: middlewares)
        var setup: DemoSetup
        switch try await discovery.lookupRegistry(query: .init(host: registry)) {
        case .ok(let ok):
            let access = try ok.body.json
            setup = DemoSetup(tenantID: access.tenantId, subscriptionID: access.subscriptionId, registryID: access.registryId)
        case .notFound:
            let tenant = try await discovery.createTenant(body: .json(.init(name: "demo"))).created.body.json
            let subscription = try await discovery.createSubscription(
                path: .init(tenantId: tenant.id),
                body: .json(.init(name: "demo", cloudType: .init(rawValue: try GantryConfiguration(service: .discovery).cloud.cloudType.rawValue) ?? .commercial)))
                .created.body.json
            let created = try await discovery.registerRegistry(
                path: .init(tenantId: tenant.id, subscriptionId: subscription.id),
                body: .json(.init(loginServer: registry, insecure: true))).created.body.json
            setup = DemoSetup(tenantID: tenant.id, subscriptionID: subscription.id, registryID: created.id)
        case .undocumented(let status, let payload):
            throw await CLIError.undocumented("discovery (registry lookup)", status: status, payload)
        }
        _ = try await discovery.setPlan(path: .init(tenantId: setup.tenantID, subscriptionId: setup.subscriptionID),
                                        body: .json(.init(enabled: true))).ok

        let (notificationURL, notificationTransport, notificationMiddlewares) = connection.clientParts(.notification)
        let notification = NotificationAPI.Client(serverURL: notificationURL, transport: notificationTransport,
                                                  middlewares: notificationMiddlewares)
        let hooks = try await notification.listWebhooks(path: .init(tenantId: setup.tenantID, subscriptionId: setup.subscriptionID))
            .ok.body.json.items
        if !hooks.contains(where: { $0.url == webhookURL }) {
            _ = try await notification.createWebhook(
                path: .init(tenantId: setup.tenantID, subscriptionId: setup.subscriptionID),
                body: .json(.init(url: webhookURL, secret: webhookSecret))).created
        }
        return setup
    }
}
