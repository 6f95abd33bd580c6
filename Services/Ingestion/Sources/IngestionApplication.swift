import Foundation
import GantryRuntime
import Hummingbird
import IngestionAPI
import OpenAPIHummingbird

/// Builds the ingestion service: registry webhooks in (recorded, then processed by the event processor),
/// scan requests and deletions out (through the outbox), and the recently-pulled rescan schedule.
///
/// Service-specific settings: `GANTRY_RESCAN_INTERVAL_SECONDS` (default 604800, one week; 60…31536000),
/// `GANTRY_RESCAN_PULLED_WITHIN_DAYS` (default 30; 1…365), `GANTRY_EVENT_POLL_MS` (how often the event
/// processor looks for recorded events when idle; default 100; 10…10000).
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
    let api = IngestionAPIImpl(runtime: runtime, discovery: discovery, directory: directory, intake: intake, rescans: rescans)
    return try runtime.makeApplication(openAPIDocument: IngestionAPI.openAPIDocument, services: [processor, rescans],
                                       onServerRunning: onServerRunning) { router in
        router.add(middleware: WebhookAuthorizationMiddleware())
        try api.registerHandlers(on: router)
    }
}

/// Binds each request's `Authorization` header to `WebhookRequest.authorization` for the handlers.
struct WebhookAuthorizationMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context,
                next: (Request, Context) async throws -> Response) async throws -> Response {
        try await WebhookRequest.$authorization.withValue(request.headers[.authorization]) {
            try await next(request, context)
        }
    }
}

// This module also speaks to discovery and the scanner; its own contract's names win.
typealias Operations = IngestionAPI.Operations
typealias Components = IngestionAPI.Components
