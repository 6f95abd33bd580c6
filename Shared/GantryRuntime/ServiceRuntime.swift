import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Metrics
import OpenAPIAsyncHTTPClient
import OpenAPIRuntime
import PostgresNIO
import Prometheus
import ServiceLifecycle

/// What every Gantry service runs on: its configuration, database client, service tokens,
/// HTTP client, outbox and readiness. One per service process (several in one test process).
public final class ServiceRuntime: Sendable {
    public let configuration: GantryConfiguration
    public let database: PostgresClient
    public let tokens: ServiceTokens
    public let httpClient: HTTPClient
    public let logger: Logger
    public let readiness: Readiness
    public let migrator: Migrator
    public let outbox: Outbox
    public let inbox: Inbox
    /// Verifies user tokens on public routes (`UserAuthSettings`, docs/ROLES.md).
    public let users: UserAuthenticator

    /// - Parameter migrations: the service's own migrations (its `Migrations` resources).
    public init(configuration: GantryConfiguration, migrations: [Migration], logger: Logger? = nil) async throws {
        JSONLogHandler.bootstrapOnce(level: configuration.logLevel)
        GantryMetrics.bootstrapOnce()
        self.configuration = configuration
        var logger = logger ?? Logger(label: "gantry-\(configuration.service.rawValue)")
        logger.logLevel = Logger.Level(rawValue: configuration.logLevel) ?? .info
        self.logger = logger
        let settings = try DatabaseSettings(url: configuration.databaseURL)
        database = PostgresClient(settings: settings, logger: logger)
        tokens = await ServiceTokens(key: configuration.serviceKey, issuer: configuration.service.rawValue)
        httpClient = HTTPClient.shared
        readiness = Readiness()
        migrator = try Migrator(schema: configuration.service.schema, migrations: migrations)
        outbox = Outbox(schema: configuration.service.schema)
        inbox = Inbox(schema: configuration.service.schema)
        users = try await UserAuthenticator(settings: try UserAuthSettings(configuration: configuration),
                                            httpClient: httpClient, logger: logger)
        if !users.isConfigured {
            logger.warning("no user authentication is configured (GANTRY_OIDC_ISSUER/GANTRY_OIDC_JWKS_URL or, in development, GANTRY_DEV_TOKEN_KEY_FILE): every public route answers 401")
        }
    }

    /// The schema this service owns.
    public var schema: String { configuration.service.schema }

    /// Transport and middlewares for a generated client of `peer`: service token, request ID and traceparent.
    public func peerClientParts(_ peer: GantryServiceName) -> (URL, any ClientTransport, [any ClientMiddleware]) {
        (configuration.url(of: peer),
         AsyncHTTPClientTransport(configuration: .init(client: httpClient, timeout: .seconds(30))),
         [PeerCallMiddleware(tokens: tokens, audience: peer.rawValue)])
    }

    /// The outbox relay of this service, to run beside the server.
    public func outboxRelay() -> OutboxRelay {
        OutboxRelay(schema: schema, database: database, httpClient: httpClient, tokens: tokens,
                    peers: configuration.peerURLs, readiness: readiness, logger: logger)
    }

    /// Builds the HTTP application: common middleware, `/healthz`, `/readyz`, `/metrics`, `/openapi.yaml`,
    /// the service's routes, migration before the server listens, and `services` (workers) beside it.
    /// Services stop in reverse order on graceful shutdown: list what others use (an HTTP client) first.
    ///
    /// - Parameter accessPolicy: the service's role table (docs/ROLES.md); routes missing from it are denied.
    /// - Parameter subscriptionOwnership: when set, public routes with `{tenantId}` and `{subscriptionId}` answer
    ///   404 unless discovery says the subscription is the tenant's (every service but discovery sets it).
    /// - Parameter routes: registers the service's routes (usually the generated `registerHandlers`).
    public func makeApplication(
        openAPIDocument: String,
        accessPolicy: AccessPolicy = AccessPolicy([]),
        subscriptionOwnership: SubscriptionOwnership? = nil,
        services: [any Service] = [],
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in },
        routes: (Router<BasicRequestContext>) throws -> Void
    ) throws -> some ApplicationProtocol {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: RequestTraceMiddleware())
        router.add(middleware: MetricsMiddleware())
        router.add(middleware: ProblemMiddleware())
        router.add(middleware: BodyLimitMiddleware(maxBytes: configuration.maxBodyBytes))
        router.add(middleware: ServiceAuthMiddleware(tokens: tokens, audience: configuration.service.rawValue))
        router.add(middleware: UserAuthMiddleware(authenticator: users, policy: accessPolicy, ownership: subscriptionOwnership))
        let database = self.database
        let readiness = self.readiness
        let logger = self.logger
        router.get("/healthz") { _, _ in HealthStatus(status: "ok") }
        router.get("/readyz") { _, _ -> Response in
            guard readiness.isReady else {
                return ProblemMiddleware<BasicRequestContext>.response(
                    status: .serviceUnavailable, detail: "migrations have not been applied yet", instance: "/readyz")
            }
            do {
                try await database.query("SELECT 1", logger: logger)
            } catch {
                return ProblemMiddleware<BasicRequestContext>.response(
                    status: .serviceUnavailable, detail: "the database is not reachable", instance: "/readyz")
            }
            return Response(status: .ok, headers: [.contentType: "application/json"],
                            body: .init(byteBuffer: ByteBuffer(string: #"{"status":"ready"}"#)))
        }
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                     body: .init(byteBuffer: ByteBuffer(bytes: GantryMetrics.registry.emitToBuffer())))
        }
        router.get("/openapi.yaml") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/yaml"],
                     body: .init(byteBuffer: ByteBuffer(string: openAPIDocument)))
        }
        try routes(router)
        let migrator = self.migrator
        var app = Application(
            router: router,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port),
                                 serverName: "gantry-\(configuration.service.rawValue)"),
            services: [database] + [outboxRelay()] + services,
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? 0) },
            logger: logger)
        app.beforeServerStarts {
            try await migrator.migrate(client: database, logger: logger)
            readiness.markReady()
            logger.info("migrations applied; ready", metadata: ["schema": "\(migrator.schema)"])
        }
        return app
    }
}

/// The body of `/healthz` and `/readyz`.
struct HealthStatus: ResponseEncodable {
    let status: String
}

/// Adds the service token, request ID and traceparent to every call a generated client makes.
public struct PeerCallMiddleware: ClientMiddleware {
    let tokens: ServiceTokens
    let audience: String

    /// - Parameter audience: the called service's name (the token's `aud`).
    public init(tokens: ServiceTokens, audience: String) {
        self.tokens = tokens
        self.audience = audience
    }

    public func intercept(_ request: HTTPRequest, body: HTTPBody?, baseURL: URL, operationID: String,
                   next: @Sendable (HTTPRequest, HTTPBody?, URL) async throws -> (HTTPResponse, HTTPBody?))
        async throws -> (HTTPResponse, HTTPBody?) {
        var request = request
        request.headerFields[.authorization] = "Bearer \(try await tokens.token(for: audience))"
        let trace = RequestTrace.current?.child() ?? RequestTrace.fresh()
        request.headerFields[RequestTrace.requestIDField] = trace.requestID
        request.headerFields[RequestTrace.traceparentField] = trace.traceparent
        return try await next(request, body, baseURL)
    }
}

/// The process-wide Prometheus registry behind swift-metrics.
public enum GantryMetrics {
    public static let registry = PrometheusCollectorRegistry()
    nonisolated(unsafe) private static var bootstrapped = false
    private static let lock = NSLock()

    static func bootstrapOnce() {
        lock.lock()
        defer { lock.unlock() }
        guard !bootstrapped else { return }
        bootstrapped = true
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
    }
}
