import Foundation
import GantryRuntime
import Hummingbird
import IngestionAPI
import OpenAPIHummingbird

/// Builds the ingestion service: registry notifications in, scan requests out (through the outbox).
/// - Parameter onServerRunning: receives the bound port (tests listen on port 0).
public func buildIngestionApplication(configuration: GantryConfiguration,
                                      onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in })
    async throws -> some ApplicationProtocol {
    let runtime = try await ServiceRuntime(configuration: configuration,
                                           migrations: try ServiceRuntime.migrations(in: Bundle.module))
    let api = IngestionAPIImpl(runtime: runtime, discovery: HTTPDiscoveryPeer(runtime: runtime))
    return try runtime.makeApplication(openAPIDocument: IngestionAPI.openAPIDocument, onServerRunning: onServerRunning) { router in
        try api.registerHandlers(on: router)
    }
}

// This module also speaks to discovery and the scanner; its own contract's names win.
typealias Operations = IngestionAPI.Operations
typealias Components = IngestionAPI.Components
