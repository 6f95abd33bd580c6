import AsyncHTTPClient
import Billing
import Discovery
import FindingsPolicy
import Foundation
import GantryModel
import GantryRuntime
import GantryTesting
import Ingestion
import Logging
import NIOHTTP1
import Notification
import PostgresNIO
import RegistryClient
import Scanner
import ServiceLifecycle
import Testing

/// Issue 8's billing fault: billing is down while scans complete; when it returns, the scanner's outbox
/// redelivers and every scanned image is billed exactly once, at the price and trial of its scan time.
@Suite(.serialized, .enabled(if: Corpus.isAvailable, "the test corpus (../shared/corpus) is missing"))
struct BillingFaultTests {
    /// One integer from the stack's database, seeing every tenant's rows (row-level security: system access).
    static func count(_ db: PostgresClient, _ query: PostgresQuery) async throws -> Int {
        try await db.withSystemAccess(logger: Logger(label: "test-db")) { connection in
            for try await count in try await connection.query(query, logger: Logger(label: "test-db")).decode(Int.self) {
                return count
            }
            return -1
        }
    }

    @Test("billing down while scans of three images (one scanned twice) complete: on return, and again after lost acknowledgements, each image is charged once")
    func billingDownWhileScansComplete() async throws {
        let database = try await TestDatabase.create()
        do {
            let env = try TestEnvironment(database: database)
            let registry = try await TestRegistry.start(
                notifyURL: URL(string: env.url(.ingestion).absoluteString + "/v1/events/distribution")!)
            defer { registry.stop() }
            // Everything but billing, whose port stays closed: the scanner's relay gets "connection refused".
            let running: [GantryServiceName] = [.discovery, .ingestion, .scanner, .findingsPolicy, .notification]
            let services: [any Service] = [
                try await buildDiscoveryApplication(configuration: env.configuration(.discovery)),
                try await buildIngestionApplication(configuration: env.configuration(.ingestion)),
                try await buildScannerApplication(configuration: env.configuration(.scanner)),
                try await buildFindingsPolicyApplication(configuration: env.configuration(.findingsPolicy)),
                try await buildNotificationApplication(configuration: env.configuration(.notification)),
            ]
            try await withRunningServices(services, readyPorts: running.compactMap { env.ports[$0] }) {
                try await database.withClient { db in
                    let registration = try await Registration.register(env, name: "billing-fault", registryHost: registry.host)
                    let (tenantID, subscriptionID, registryID) = (registration.tenantID, registration.subscriptionID,
                                                                  registration.registryID)

                    // The Alpine 3.7 and 3.10 knowledge, imported the way an operator does.
                    let token = try await env.tokens(issuer: "gantry-cli").token(for: "scanner")
                    for release in ["v3.7", "v3.10"] {
                        let feed = try Corpus.file("3-vuln-feeds/alpine/secdb-\(release)-main.yaml")
                        let reply = try await TestHTTP.send(.POST, env.url(.scanner).absoluteString + "/internal/v1/feeds/alpine-secdb",
                                                            body: try Data(contentsOf: feed),
                                                            headers: ["Content-Type": "application/yaml", "Authorization": "Bearer \(token)"])
                        try #require(reply.status == 200, "\(release): \(reply.text)")
                    }

                    // Three images pushed, then a manual rescan of the first: a second scan of a digest already scanned.
                    var pushed: [String] = []
                    for (archive, tag) in [("alpine-3.7.3", "a"), ("alpine-3.7.3-apk-upgrade", "b"), ("alpine-3.10.9", "c")] {
                        try Skopeo.copy(ociArchive: try Corpus.file("images/\(archive).oci.tar"), to: registry.host,
                                        repository: "fault/alpine", tag: tag, credentials: nil)
                        let fetched = try await RegistryClient(httpClient: .shared, logger: Logger(label: "fault"))
                            .manifest(RegistryEndpoint(baseURL: registry.baseURL, credentials: nil), repository: "fault/alpine",
                                      reference: tag)
                        pushed.append(fetched.digest.description)
                    }
                    let digests = pushed
                    #expect(Set(digests).count == 3)
                    let succeeded: PostgresQuery = "SELECT count(*)::int FROM scanner.scan_jobs WHERE status = 'succeeded'"
                    _ = try await eventually("three succeeded scans", timeout: .seconds(90)) {
                        try await Self.count(db, succeeded) >= 3 ? true : nil
                    }
                    let manual = try await TestHTTP.json(.POST, env.url(.scanner).absoluteString + "/internal/v1/scans", [
                        "messageId": "manual-\(UUID())", "tenantId": tenantID, "subscriptionId": subscriptionID,
                        "registryId": registryID, "repository": "fault/alpine", "digest": digests[0], "trigger": "manual",
                    ], headers: ["Content-Type": "application/json",
                                 "Authorization": "Bearer \(try await env.tokens(issuer: "gantry-cli").token(for: "scanner"))"])
                    try #require(manual.status == 202, "\(manual.text)")

                    // Every scan completes; its usage message waits in the scanner's outbox, where deliveries are refused.
                    // (At least four scans; another scan of a digest, from a crawl, would be one more free usage message.)
                    // NOTE: a refused attempt takes the relay's whole 15 s request timeout (AsyncHTTPClient retries the
                    // connection until the deadline), so the test waits for one refusal, not one per message.
                    let scans = try await Self.explained(db) { try await Self.scansWithUsageWaiting(db) }
                    #expect(try await Self.count(db, "SELECT count(*)::int FROM scanner.outbox WHERE destination = 'billing'") == scans)
                    #expect(try await Self.count(db, "SELECT count(*)::int FROM information_schema.tables WHERE table_schema = 'billing'") == 0)

                    // Billing returns.
                    let returned = Date()
                    let billing = try await buildBillingApplication(configuration: env.configuration(.billing))
                    try await withRunningServices([billing], readyPorts: [env.ports[.billing]!]) {
                        let delivered: PostgresQuery = """
                            SELECT count(*)::int FROM scanner.outbox WHERE destination = 'billing' AND delivered_at IS NOT NULL
                            """
                        _ = try await eventually("the outbox to deliver every usage message", timeout: .seconds(90)) {
                            try await Self.count(db, delivered) == scans ? true : nil
                        }
                        try await Self.expectBilledOnce(db, digests: Set(digests), registryHost: registry.host,
                                                        scans: scans, before: returned)

                        // The acknowledgements are lost (as if the relay died after posting): everything is sent again.
                        try await db.query("""
                            UPDATE scanner.outbox SET delivered_at = NULL, next_attempt_at = now() WHERE destination = 'billing'
                            """)
                        _ = try await eventually("the outbox to deliver every usage message again", timeout: .seconds(30)) {
                            try await Self.count(db, delivered) == scans ? true : nil
                        }
                        try await Self.expectBilledOnce(db, digests: Set(digests), registryHost: registry.host,
                                                        scans: scans, before: returned)

                        let usage = try await TestHTTP.send(.GET, env.url(.billing).absoluteString
                            + "/v1/tenants/\(tenantID)/subscriptions/\(subscriptionID)/usage")
                        let body = try usage.object()
                        #expect(body["scans"] as? Int == scans && body["billableImages"] as? Int == 3)
                        // Inside the default 30-day free trial: recorded at 0, with the list price.
                        #expect(body["trialImages"] as? Int == 3 && body["amount"] as? String == "0.0000")
                        let charges = try #require(body["charges"] as? [[String: Any]])
                        #expect(charges.allSatisfy { $0["listPrice"] as? String == "0.2900" && $0["registryHost"] as? String == registry.host })
                    }
                }
            }
        } catch {
            await database.drop()
            throw error
        }
        await database.drop()
    }

    /// Waits until at least four scans succeeded, none is pending, each left a usage message undelivered in the
    /// scanner's outbox, and at least one delivery was refused; returns the number of scans.
    static func scansWithUsageWaiting(_ db: PostgresClient) async throws -> Int {
        try await eventually("succeeded scans and a refused usage delivery", timeout: .seconds(90)) {
            let finished = try await count(db, "SELECT count(*)::int FROM scanner.scan_jobs WHERE status = 'succeeded'")
            let pending = try await count(db, "SELECT count(*)::int FROM scanner.scan_jobs WHERE status IN ('queued', 'running')")
            let waiting = try await count(db, """
                SELECT count(*)::int FROM scanner.outbox WHERE destination = 'billing' AND delivered_at IS NULL
                """)
            let refused = try await count(db, """
                SELECT count(*)::int FROM scanner.outbox WHERE destination = 'billing'
                  AND delivered_at IS NULL AND attempts >= 1 AND last_error IS NOT NULL
                """)
            return finished >= 4 && pending == 0 && waiting == finished && refused >= 1 ? finished : nil
        }
    }

    /// Runs `body`; when it throws, records the scan jobs and the scanner's outbox with the error, to say why.
    static func explained<T>(_ client: PostgresClient, _ body: () async throws -> T) async throws -> T {
        do { return try await body() } catch {
            let state = try await { () async throws -> String in
                var lines: [String] = []
                // System access: scan_jobs has row-level security.
                lines += try await client.withSystemAccess(logger: Logger(label: "test-db")) { connection in
                    var jobs: [String] = []
                    for try await (digest, trigger, status, failure) in try await connection.query(
                        "SELECT digest, trigger, status, error FROM scanner.scan_jobs ORDER BY queued_at", logger: Logger(label: "test-db"))
                        .decode((String, String, String, String?).self) {
                        jobs.append("job \(digest.prefix(19)) \(trigger) \(status) \(failure ?? "")")
                    }
                    return jobs
                }
                for try await (destination, attempts, delivered, lastError) in try await client.query(
                    "SELECT destination, attempts, delivered_at IS NOT NULL, last_error FROM scanner.outbox ORDER BY id")
                    .decode((String, Int, Bool, String?).self) {
                    lines.append("outbox \(destination) attempts=\(attempts) delivered=\(delivered) \(lastError?.prefix(80) ?? "")")
                }
                return lines.joined(separator: "\n")
            }()
            Issue.record("\(error)\n\(state)")
            throw error
        }
    }

    /// One charge per digest, scanned (priced) before billing returned; one usage event per scan.
    static func expectBilledOnce(_ db: PostgresClient, digests: Set<String>, registryHost: String, scans: Int,
                                 before: Date) async throws {
        let charged = try await db.withSystemAccess(logger: Logger(label: "test-db")) { connection in
            var charged: [(String, Date, String?)] = []
            for try await row in try await connection.query("SELECT digest, scanned_at, registry_host FROM billing.charges",
                                                            logger: Logger(label: "test-db"))
                .decode((String, Date, String?).self) { charged.append(row) }
            return charged
        }
        #expect(charged.count == 3)
        #expect(Set(charged.map(\.0)) == digests)
        #expect(charged.allSatisfy { $0.1 < before && $0.2 == registryHost })
        #expect(try await count(db, "SELECT count(*)::int FROM billing.usage_events") == scans)
        #expect(try await count(db, "SELECT count(*)::int FROM billing.usage_events WHERE disposition = 'alreadyCharged'") == scans - 3)
        #expect(try await count(db, "SELECT count(*)::int FROM billing.inbox") == scans)
    }
}
