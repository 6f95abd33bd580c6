import AsyncHTTPClient
import DiscoveryAPI
import Foundation
import GantryRuntime
import Hummingbird
import OpenAPIHummingbird
import RegistryClient
import ServiceLifecycle

/// Builds the discovery service: tenants, subscriptions, plans, registries, and the crawler that keeps the
/// registries' inventory (periodically when `GANTRY_DISCOVERY_CRAWL_INTERVAL_SECONDS` is set, see `DiscoverySettings`).
/// - Parameter onServerRunning: receives the bound port (tests listen on port 0).
/// - Throws: `ConfigurationError` for bad configuration (including no credential key at all).
public func buildDiscoveryApplication(configuration: GantryConfiguration,
                                      onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in })
    async throws -> some ApplicationProtocol {
    let runtime = try await ServiceRuntime(configuration: configuration,
                                           migrations: try ServiceRuntime.migrations(in: Bundle.module))
    let settings = try DiscoverySettings(configuration: configuration)
    let sealer = try CredentialSealer(configuration: configuration)
    let store = PostgresDiscoveryStore(database: runtime.database, logger: runtime.logger)
    // The registry client follows redirects itself (checking each hop with the SSRF guard), so credentials never
    // travel to another host.
    // Each connection goes to the address the guard approved for that request (DNS rebinding).
    let registryHTTP = PinnedHTTPClients(addressGuard: settings.addressGuard,
                                         configuration: .init(redirectConfiguration: .disallow, timeout: .init(connect: .seconds(5))))
    let client = RegistryClient(pinnedClients: registryHTTP, limits: RegistryLimits(maxRetries: 1, requestTimeout: .seconds(30)),
                                logger: runtime.logger)
    let crawler = Crawler(database: runtime.database, store: store, client: client, sealer: sealer, settings: settings,
                          outbox: runtime.outbox, logger: runtime.logger)
    let api = DiscoveryAPIImpl(store: store, sealer: sealer, configuration: configuration, settings: settings, crawler: crawler)
    var services: [any Service] = [PinnedHTTPClientsService(clients: registryHTTP)]
    if settings.crawlInterval != nil {
        services.append(CrawlService(crawler: crawler, readiness: runtime.readiness, interval: settings.pollInterval,
                                     logger: runtime.logger))
    }
    return try runtime.makeApplication(openAPIDocument: DiscoveryAPI.openAPIDocument, accessPolicy: .discovery, services: services,
                                       onServerRunning: onServerRunning) { router in
        try api.registerHandlers(on: router, middlewares: [EmptyBodyMiddleware()])
    }
}
