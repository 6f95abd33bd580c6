import Foundation
import GantryRuntime
import Hummingbird
import IngestionAPI
import OpenAPIHummingbird
import RegistryClient
import ServiceLifecycle
import AsyncHTTPClient

/// Builds the ingestion service: registry webhooks in (recorded, then processed by the event processor),
/// scan requests and deletions out (through the outbox), and the recently-pulled rescan schedule.
///
/// Service-specific settings: `GANTRY_RESCAN_INTERVAL_SECONDS` (default 604800, one week; 60…31536000),
/// `GANTRY_RESCAN_PULLED_WITHIN_DAYS` (default 30; 1…365), `GANTRY_EVENT_POLL_MS` (how often the event
/// processor looks for recorded events when idle; default 100; 10…10000), `GANTRY_IMPORT_WORKERS` (imports
/// copied at once per replica; default 2; 1…16), `GANTRY_IMPORT_LEASE_SECONDS` (how long a job of a dead
/// worker stays leased before another takes it; default 60; 3…3600), `GANTRY_EVENT_RETENTION_DAYS` (how long
/// processed webhook events are kept; default 7; 1…3650), `GANTRY_EVENT_RETENTION_CHECK_SECONDS` (how often expired
/// events are deleted; default 3600; 1…86400).
/// Under `GANTRY_PROFILE=development` a registry without a webhook secret is accepted unauthenticated.
/// - Parameter onServerRunning: receives the bound port (tests listen on port 0).
public func buildIngestionApplication(configuration: GantryConfiguration,
                                      onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in })
    async throws -> some ApplicationProtocol {
    let environment = configuration.environment
    let rescanSeconds = try GantryConfiguration.integer("GANTRY_RESCAN_INTERVAL_SECONDS", environment,
                                                        default: 604_800, range: 60...31_536_000)
    let pulledWithinDays = try GantryConfiguration.integer("GANTRY_RESCAN_PULLED_WITHIN_DAYS", environment,
                                                           default: 30, range: 1...365)
    let pollMilliseconds = try GantryConfiguration.integer("GANTRY_EVENT_POLL_MS", environment, default: 100, range: 10...10_000)
    let runtime = try await ServiceRuntime(configuration: configuration,
                                           migrations: try ServiceRuntime.migrations(in: Bundle.module))
    let discovery = HTTPDiscoveryPeer(runtime: runtime)
    let directory = RegistryDirectory(discovery: discovery, database: runtime.database, logger: runtime.logger)
    let intake = EventIntake(directory: directory, writer: EventWriter(database: runtime.database, logger: runtime.logger),
                             allowUnsetSecrets: configuration.profile == .development, logger: runtime.logger)
    let processor = EventProcessor(runtime: runtime, directory: directory, pollInterval: .milliseconds(pollMilliseconds))
    let rescans = RescanScheduler(runtime: runtime, directory: directory, interval: .seconds(rescanSeconds),
                                  pulledWithinDays: pulledWithinDays)
    let retention = EventRetention(
        runtime: runtime,
        retention: .seconds(86_400 * (try GantryConfiguration.integer("GANTRY_EVENT_RETENTION_DAYS", environment, default: 7,
                                                                       range: 1...3650))),
        checkInterval: .seconds(try GantryConfiguration.integer("GANTRY_EVENT_RETENTION_CHECK_SECONDS", environment,
                                                                default: 3600, range: 1...86_400)))
    let importWorkers = try GantryConfiguration.integer("GANTRY_IMPORT_WORKERS", environment, default: 2, range: 1...16)
    let importLease = try GantryConfiguration.integer("GANTRY_IMPORT_LEASE_SECONDS", environment, default: 60, range: 3...3600)
    let importSealer = ImportCredentialSealer(configuration: configuration)
    // The registry client follows redirects itself, so credentials never travel to a blob store's host.
    // SSRF guard before every registry request, redirect hop and token fetch (sources and targets alike), each
    // connection made to the address the guard approved.
    let registryHTTP = PinnedHTTPClients(addressGuard: try .forDeployment(configuration),
                                         configuration: .init(redirectConfiguration: .disallow))
    let registryClient = RegistryClient(pinnedClients: registryHTTP, logger: runtime.logger)
    let importRunners: [any Service] = (0..<importWorkers).map { _ in
        ImportRunner(runtime: runtime, directory: directory, registry: registryClient, sealer: importSealer,
                     lease: .seconds(importLease))
    }
    let api = IngestionAPIImpl(runtime: runtime, discovery: discovery, directory: directory, intake: intake, rescans: rescans,
                               importSealer: importSealer)
    return try runtime.makeApplication(openAPIDocument: IngestionAPI.openAPIDocument, accessPolicy: .ingestion,
                                       subscriptionOwnership: SubscriptionOwnership(runtime: runtime),
                                       services: [processor, rescans, retention, PinnedHTTPClientsService(clients: registryHTTP)] + importRunners,
                                       onServerRunning: onServerRunning) { router in
        try api.registerHandlers(on: WithoutWebhookRoutes(router: router), middlewares: [EmptyBodyMiddleware()])
        WebhookRoutes(intake: intake).register(on: router)
    }
}

// This module also speaks to discovery and the scanner; its own contract's names win.
typealias Operations = IngestionAPI.Operations
typealias Components = IngestionAPI.Components
