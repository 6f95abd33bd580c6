import DiscoveryAPI
import Foundation
import GantryRuntime
import Hummingbird
import OpenAPIHummingbird

/// Builds the discovery service: tenants, subscriptions, plans and registries.
/// - Parameter onServerRunning: receives the bound port (tests listen on port 0).
/// - Throws: `ConfigurationError` for bad configuration (including a missing `GANTRY_SECRET_KEY`).
public func buildDiscoveryApplication(configuration: GantryConfiguration,
                                      onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in })
    async throws -> some ApplicationProtocol {
    let runtime = try await ServiceRuntime(configuration: configuration,
                                           migrations: try ServiceRuntime.migrations(in: Bundle.module))
    let api = DiscoveryAPIImpl(store: PostgresDiscoveryStore(database: runtime.database, logger: runtime.logger),
                               sealer: try CredentialSealer(configuration: configuration), configuration: configuration)
    return try runtime.makeApplication(openAPIDocument: DiscoveryAPI.openAPIDocument, onServerRunning: onServerRunning) { router in
        try api.registerHandlers(on: router)
    }
}
