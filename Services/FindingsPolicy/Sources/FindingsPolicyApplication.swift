import FindingsPolicyAPI
import Foundation
import GantryRuntime
import Hummingbird
import OpenAPIHummingbird

/// Builds the findings-policy service: reports in, assessments out, alerts through the outbox.
/// - Parameter onServerRunning: receives the bound port (tests listen on port 0).
public func buildFindingsPolicyApplication(configuration: GantryConfiguration,
                                           onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in })
    async throws -> some ApplicationProtocol {
    let runtime = try await ServiceRuntime(configuration: configuration,
                                           migrations: try ServiceRuntime.migrations(in: Bundle.module))
    let api = FindingsPolicyAPIImpl(runtime: runtime)
    return try runtime.makeApplication(openAPIDocument: FindingsPolicyAPI.openAPIDocument,
                                       onServerRunning: onServerRunning) { router in
        try api.registerHandlers(on: router)
    }
}

// This module also speaks to notification; its own contract's names win.
typealias Operations = FindingsPolicyAPI.Operations
typealias Components = FindingsPolicyAPI.Components
