import AsyncHTTPClient
import Crypto
import Foundation
import GantryRuntime
import Hummingbird
import ImageAnalysis
import OpenAPIHummingbird
import RegistryClient
import ScannerAPI

/// Builds the scanner service: the scan queue and its worker, and the vulnerability knowledge base.
///
/// Service-specific settings: `GANTRY_SCAN_WORKERS` (default 2), `GANTRY_SCAN_DEADLINE_SECONDS` (default 2400),
/// `GANTRY_FEEDS_PUBLIC_KEY` (base64 raw Ed25519 public key whose signed feed bundles are imported).
/// - Parameter onServerRunning: receives the bound port (tests listen on port 0).
public func buildScannerApplication(configuration: GantryConfiguration,
                                    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in })
    async throws -> some ApplicationProtocol {
    let runtime = try await ServiceRuntime(configuration: configuration,
                                           migrations: try ServiceRuntime.migrations(in: Bundle.module))
    let workers = try GantryConfiguration.integer("GANTRY_SCAN_WORKERS", configuration.environment, default: 2, range: 1...64)
    let deadline = try GantryConfiguration.integer("GANTRY_SCAN_DEADLINE_SECONDS", configuration.environment,
                                                   default: 2400, range: 10...86400)
    let knowledgeBase = PostgresKnowledgeBase(database: runtime.database, logger: runtime.logger)
    // The registry client follows redirects itself, so credentials never travel to a blob store's host.
    let registryHTTP = HTTPClient(eventLoopGroupProvider: .singleton,
                                  configuration: .init(redirectConfiguration: .disallow))
    let scanner = ImageScanner(registry: RegistryClient(httpClient: registryHTTP, logger: runtime.logger),
                               knowledgeBase: knowledgeBase,
                               layerCache: PostgresLayerCache(database: runtime.database, logger: runtime.logger),
                               layerReader: LayerReader(), logger: runtime.logger)
    let discovery = HTTPDiscoveryPeer(runtime: runtime)
    let feedsPublicKey = try feedsPublicKey(configuration.environment)
    let api = ScannerAPIImpl(runtime: runtime, knowledgeBase: knowledgeBase, deadlineSeconds: deadline,
                             feedsPublicKey: feedsPublicKey)
    let scanWorkers = (0..<workers).map { _ in ScanWorker(runtime: runtime, scanner: scanner, discovery: discovery) }
    return try runtime.makeApplication(openAPIDocument: ScannerAPI.openAPIDocument,
                                       services: [HTTPClientService(client: registryHTTP)] + scanWorkers,
                                       onServerRunning: onServerRunning) { router in
        try api.registerHandlers(on: router)
    }
}

// This module also speaks to discovery, findings-policy and billing; its own contract's names win.
typealias Operations = ScannerAPI.Operations
typealias Components = ScannerAPI.Components

/// `GANTRY_FEEDS_PUBLIC_KEY`: base64 of a raw 32-byte Ed25519 public key (`gantry feeds keygen` prints one);
/// nil when unset.
/// - Throws: `ConfigurationError` naming the variable when it is set but not such a key.
func feedsPublicKey(_ environment: [String: String]) throws -> Curve25519.Signing.PublicKey? {
    guard let text = environment["GANTRY_FEEDS_PUBLIC_KEY"], !text.isEmpty else { return nil }
    guard let raw = Data(base64Encoded: text), raw.count == 32,
          let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw) else {
        throw ConfigurationError(variable: "GANTRY_FEEDS_PUBLIC_KEY",
                                 message: "must be the base64 of a raw 32-byte Ed25519 public key")
    }
    return key
}
