import AsyncHTTPClient
import Discovery
import Foundation
import GantryModel
import GantryRuntime
import GantryTesting
import ImageAnalysis
import Logging
import OpenAPIRuntime
import NIOHTTP1
import PostgresNIO
import RegistryClient
@testable import Scanner
import ScannerAPI
import ServiceLifecycle
import Testing

/// The scanner's queue, API handlers and re-evaluation on a fresh, migrated database, with the real
/// discovery service running beside them (tenant, subscription with the plan on, one registry). The
/// scanner's own workers and outbox relay do not run: tests drive `ScanWorker`, `ScannerAPIImpl` and
/// `Reevaluator` directly and read what they wrote.
struct ScannerHarness: Sendable {
    let env: TestEnvironment
    let database: TestDatabase
    let runtime: ServiceRuntime
    let knowledgeBase: PostgresKnowledgeBase
    let api: ScannerAPIImpl
    let tenantID: String
    let subscriptionID: String
    let registryID: String
    let secondRegistryID: String

    /// - Parameter maxAttempts: the attempts new jobs get (`GANTRY_SCAN_MAX_ATTEMPTS`).
    static func run(deadlineSeconds: Int = 2400, maxAttempts: Int = 5,
                    _ body: @Sendable (ScannerHarness) async throws -> Void) async throws {
        let database = try await TestDatabase.create()
        do {
            let env = try TestEnvironment(database: database)
            let runtime = try await ServiceRuntime(configuration: try env.configuration(.scanner),
                                                   migrations: try ScannerMigrations.load())
            let discovery = try await buildDiscoveryApplication(configuration: env.configuration(.discovery))
            try await withRunningServices([discovery, runtime.database], readyPorts: [env.ports[.discovery]!]) {
                try await runtime.migrator.migrate(client: runtime.database, logger: runtime.logger)
                let base = env.url(.discovery).absoluteString
                let tenant = try await TestHTTP.json(.POST, "\(base)/v1/tenants", ["name": "scanner-tests"])
                let tenantID = try #require(try tenant.object()["id"] as? String)
                let subscription = try await TestHTTP.json(.POST, "\(base)/v1/tenants/\(tenantID)/subscriptions",
                                                           ["name": "main", "cloudType": "commercial"])
                let subscriptionID = try #require(try subscription.object()["id"] as? String)
                let plan = try await TestHTTP.json(.PUT, "\(base)/v1/tenants/\(tenantID)/subscriptions/\(subscriptionID)/plan",
                                                   ["enabled": true])
                try #require(plan.status == 200, "\(plan.text)")
                var registries: [String] = []
                for host in ["registry-a.example.com", "registry-b.example.com"] {
                    let registry = try await TestHTTP.json(
                        .POST, "\(base)/v1/tenants/\(tenantID)/subscriptions/\(subscriptionID)/registries", ["loginServer": host])
                    try #require(registry.status == 201, "\(registry.text)")
                    registries.append(try #require(try registry.object()["id"] as? String))
                }
                let knowledgeBase = PostgresKnowledgeBase(database: runtime.database, logger: runtime.logger)
                var api = ScannerAPIImpl(runtime: runtime, knowledgeBase: knowledgeBase, deadlineSeconds: deadlineSeconds,
                                         feedsPublicKey: nil)
                api.maxAttempts = maxAttempts
                try await body(ScannerHarness(env: env, database: database, runtime: runtime, knowledgeBase: knowledgeBase,
                                              api: api, tenantID: tenantID, subscriptionID: subscriptionID,
                                              registryID: registries[0], secondRegistryID: registries[1]))
            }
        } catch {
            await database.drop()
            throw error
        }
        await database.drop()
    }

    /// A worker with `settings`; its image scanner and discovery client are real but unused by claim/fail.
    func worker(_ settings: ScanQueueSettings) -> ScanWorker {
        let scanner = ImageScanner(registry: RegistryClient(httpClient: .shared, logger: runtime.logger),
                                   knowledgeBase: knowledgeBase,
                                   layerCache: PostgresLayerCache(database: runtime.database, logger: runtime.logger),
                                   layerReader: LayerReader(), logger: runtime.logger)
        return ScanWorker(runtime: runtime, scanner: scanner, discovery: HTTPDiscoveryPeer(runtime: runtime), settings: settings)
    }

    static func digest(_ seed: String) -> String { "sha256:" + String(repeating: seed, count: 64 / seed.count) }

    /// `POST /internal/v1/scans` through the handler; returns (job ID, deduplicated).
    @discardableResult
    func request(_ trigger: Components.Schemas.Trigger, digest: String, repository: String = "team/app",
                 registryID: String? = nil, messageID: String = UUID().uuidString) async throws -> (String, Bool) {
        let output = try await api.requestScan(.init(body: .json(.init(
            messageId: messageID, tenantId: tenantID, subscriptionId: subscriptionID, registryId: registryID ?? self.registryID,
            repository: repository, digest: digest, trigger: trigger))))
        let accepted = try output.accepted.body.json
        return (accepted.jobId, accepted.deduplicated)
    }

    /// `status attempts error` of a job.
    func job(_ id: String) async throws -> (status: String, attempts: Int, error: String?, nextAttemptIn: Double) {
        let logger = runtime.logger
        let job = try await runtime.database.withSystemAccess(logger: logger) { connection in
            let rows = try await connection.query("""
                SELECT status, attempts, error, extract(epoch FROM next_attempt_at - now())::float8
                FROM scanner.scan_jobs WHERE id = \(UUID(uuidString: id)!)
                """, logger: logger)
            for try await row in rows.decode((String, Int, String?, Double).self) { return Optional(row) }
            return nil
        }
        guard let job else { throw TestServiceError("no job \(id)") }
        return job
    }

    /// Runs SQL (test set-up: marking jobs finished, making retries due) with system access (row-level security).
    func execute(_ query: PostgresQuery) async throws {
        let logger = runtime.logger
        try await runtime.database.withSystemAccess(logger: logger) { connection in
            _ = try await connection.query(query, logger: logger)
        }
    }

    /// The outbox rows (message ID, path, payload) the scanner wrote.
    func outbox() async throws -> [(String, String, String)] {
        let rows = try await runtime.database.query("SELECT message_id, path, payload FROM scanner.outbox ORDER BY id",
                                                    logger: runtime.logger)
        var result: [(String, String, String)] = []
        for try await row in rows.decode((String, String, String).self) { result.append(row) }
        return result
    }
}
