import AsyncHTTPClient
import Crypto
import Foundation
import GantryRuntime
import Hummingbird
import ImageAnalysis
import OpenAPIHummingbird
import RegistryClient
import ScannerAPI
import ServiceLifecycle

/// Builds the scanner service: the scan queue and its worker, and the vulnerability knowledge base.
///
/// Service-specific settings: `GANTRY_SCAN_WORKERS` (default 2), the queue's `GANTRY_SCAN_*` settings
/// (`ScanQueueSettings`: deadline, lease, attempts, retry base, per-registry concurrency and rate),
/// `GANTRY_REEVALUATION_POLL_MS` (default 1000), `GANTRY_FEEDS_PUBLIC_KEY` (base64 raw Ed25519 public key whose
/// signed feed bundles are imported), `GANTRY_FEEDS_UPDATE_SECONDS` (feed download interval, default 21600; 0 = off)
/// and `GANTRY_FEED_SOURCES` (comma-separated feed URLs replacing the cloud's production list; see `FeedSources`).
/// - Parameter onServerRunning: receives the bound port (tests listen on port 0).
public func buildScannerApplication(configuration: GantryConfiguration,
                                    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in })
    async throws -> some ApplicationProtocol {
    let runtime = try await ServiceRuntime(configuration: configuration,
                                           migrations: try ServiceRuntime.migrations(in: Bundle.module))
    let workers = try GantryConfiguration.integer("GANTRY_SCAN_WORKERS", configuration.environment, default: 2, range: 1...64)
    let queue = try ScanQueueSettings(environment: configuration.environment)
    let reevaluationPoll = try GantryConfiguration.integer("GANTRY_REEVALUATION_POLL_MS", configuration.environment,
                                                           default: 1000, range: 10...600_000)
    let knowledgeBase = PostgresKnowledgeBase(database: runtime.database, logger: runtime.logger)
    // The registry client follows redirects itself, so credentials never travel to a blob store's host.
    // SSRF guard before every registry request and redirect hop, each connection made to the approved address.
    let registryHTTP = PinnedHTTPClients(addressGuard: try .forDeployment(configuration),
                                         configuration: .init(redirectConfiguration: .disallow))
    let scanner = ImageScanner(registry: RegistryClient(pinnedClients: registryHTTP, logger: runtime.logger),
                               knowledgeBase: knowledgeBase,
                               layerCache: PostgresLayerCache(database: runtime.database, logger: runtime.logger),
                               layerReader: LayerReader(), logger: runtime.logger)
    let discovery = HTTPDiscoveryPeer(runtime: runtime)
    let feedsPublicKey = try feedsPublicKey(configuration.environment)
    let ownership = SubscriptionOwnership(runtime: runtime)
    var api = ScannerAPIImpl(runtime: runtime, knowledgeBase: knowledgeBase, deadlineSeconds: queue.deadlineSeconds,
                             feedsPublicKey: feedsPublicKey, ownership: ownership)
    api.maxAttempts = queue.maxAttempts
    let scanWorkers: [any Service] = (0..<workers).map { _ in
        ScanWorker(runtime: runtime, scanner: scanner, discovery: discovery, settings: queue)
    }
    let reevaluator = Reevaluator(runtime: runtime, knowledgeBase: knowledgeBase, discovery: discovery,
                                  pollInterval: .milliseconds(reevaluationPoll))
    let updateSeconds = try GantryConfiguration.integer("GANTRY_FEEDS_UPDATE_SECONDS", configuration.environment,
                                                        default: 21600, range: 0...604_800)
    // Feed publishers redirect (salsa, CDNs); these downloads carry no credentials.
    let feedHTTP = HTTPClient(eventLoopGroupProvider: .singleton,
                              configuration: .init(redirectConfiguration: .follow(max: 5, allowCycles: false)))
    let updater = FeedUpdater(sources: try FeedSources.configured(configuration), interval: .seconds(updateSeconds),
                              knowledgeBase: knowledgeBase, httpClient: feedHTTP, readiness: runtime.readiness,
                              logger: runtime.logger)
    let staleness = FeedStalenessMonitor(
        runtime: runtime,
        staleAfter: .seconds(try GantryConfiguration.integer("GANTRY_FEEDS_STALE_AFTER_SECONDS", configuration.environment,
                                                             default: 172_800, range: 0...31_536_000)),
        checkInterval: .seconds(try GantryConfiguration.integer("GANTRY_FEEDS_STALE_CHECK_SECONDS", configuration.environment,
                                                                default: 3600, range: 1...86_400)))
    return try runtime.makeApplication(openAPIDocument: ScannerAPI.openAPIDocument, accessPolicy: .scanner,
                                       subscriptionOwnership: ownership,
                                       services: [PinnedHTTPClientsService(clients: registryHTTP), HTTPClientService(client: feedHTTP)]
                                           + scanWorkers + [reevaluator, updater, staleness],
                                       onServerRunning: onServerRunning) { router in
        try api.registerHandlers(on: router, middlewares: [EmptyBodyMiddleware()])
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
