import BillingAPI
import Foundation
import GantryRuntime
import Hummingbird
import OpenAPIHummingbird

/// Builds the billing service.
/// - Parameter onServerRunning: receives the bound port (tests listen on port 0).
/// - Throws: `ConfigurationError` for a bad `GANTRY_BILLING_*` variable (see `BillingSettings`).
public func buildBillingApplication(configuration: GantryConfiguration,
                                    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in })
    async throws -> some ApplicationProtocol {
    let settings = try BillingSettings(configuration: configuration)
    let runtime = try await ServiceRuntime(configuration: configuration,
                                           migrations: try ServiceRuntime.migrations(in: Bundle.module))
    let api = BillingAPIImpl(runtime: runtime, settings: settings)
    return try runtime.makeApplication(openAPIDocument: BillingAPI.openAPIDocument, accessPolicy: .billing,
                                       subscriptionOwnership: SubscriptionOwnership(runtime: runtime), onServerRunning: onServerRunning) { router in
        try api.registerHandlers(on: router, middlewares: [EmptyBodyMiddleware()])
    }
}
