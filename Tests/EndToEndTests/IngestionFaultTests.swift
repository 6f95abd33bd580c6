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
import NIOCore
import NIOHTTP1
import PostgresNIO
import RegistryClient
import Scanner
import ServiceLifecycle
import Testing

/// Faults that must lose nothing (issue 5): the scanner killed with SIGKILL in the middle of a scan, a
/// burst of 10,000 push events for 100 digests, and findings-policy down while scans complete. Real
/// services, a real registry (distribution) and a real PostgreSQL; the SIGKILL case runs the scanner as
/// its real executable.
@Suite("Ingestion and scan-queue faults", .serialized,
       .enabled(if: Corpus.isAvailable, "the test corpus (../shared/corpus) is missing"))
struct IngestionFaultTests {
    /// Imports the corpus's Alpine 3.7 secdb through the scanner's API (for findings on alpine 3.7 images).
    static func importFeeds(_ env: TestEnvironment) async throws {
        let token = try await env.tokens(issuer: "gantry-cli").token(for: "scanner")
        let reply = try await TestHTTP.send(.POST, env.url(.scanner).absoluteString + "/internal/v1/feeds/alpine-secdb",
                                            body: try Data(contentsOf: try Corpus.file("3-vuln-feeds/alpine/secdb-v3.7-main.yaml")),
                                            headers: ["Content-Type": "application/yaml", "Authorization": "Bearer \(token)"])
        try #require(reply.status == 200, "\(reply.text)")
    }

    static func requestScan(_ env: TestEnvironment, _ registration: Registration, repository: String, digest: String)
        async throws -> String {
        let token = try await env.tokens(issuer: "gantry-cli").token(for: "scanner")
        let reply = try await TestHTTP.json(.POST, env.url(.scanner).absoluteString + "/internal/v1/scans", [
            "messageId": "fault-\(UUID())", "tenantId": registration.tenantID, "subscriptionId": registration.subscriptionID,
            "registryId": registration.registryID, "repository": repository, "digest": digest, "trigger": "push",
        ], headers: ["Content-Type": "application/json", "Authorization": "Bearer \(token)"])
        try #require(reply.status == 202, "\(reply.text)")
        return try #require((try reply.json() as? [String: Any])?["jobId"] as? String)
    }

    /// The first integer `sql` returns, with system access (every tenant's rows; row-level security).
    static func count(_ database: TestDatabase, _ sql: String) async throws -> Int {
        try await database.withClient { client in
            let logger = Logger(label: "faults-db")
            return try await client.withSystemAccess(logger: logger) { connection in
                var value = -1
                for try await count in try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger).decode(Int.self) {
                    value = count
                }
                return value
            }
        }
    }

    /// The scanner's settings for these tests: a short lease so that a killed worker's job is taken again
    /// within seconds, no feed downloads.
    static let scannerSettings = [
        "GANTRY_SCAN_LEASE_SECONDS": "3", "GANTRY_SCAN_WORKERS": "2", "GANTRY_SCAN_REGISTRY_CONCURRENCY": "4",
        "GANTRY_SCAN_REGISTRY_RATE_PER_MINUTE": "100000", "GANTRY_SCAN_RETRY_BASE_MS": "200",
        "GANTRY_FEEDS_UPDATE_SECONDS": "604800", "GANTRY_FEED_SOURCES": "http://127.0.0.1:9/none.json",
    ]

    @Test("the scanner killed with SIGKILL mid-scan: after a restart the job completes exactly once (one report, one charge)")
    func scannerKilledMidScan() async throws {
        let database = try await TestDatabase.create()
        defer { Task { await database.drop() } }
        let env = try TestEnvironment(database: database, extra: Self.scannerSettings)
        let registry = try await TestRegistry.start()
        defer { registry.stop() }
        let services: [any Service] = [
            try await buildDiscoveryApplication(configuration: env.configuration(.discovery)),
            try await buildFindingsPolicyApplication(configuration: env.configuration(.findingsPolicy)),
            try await buildBillingApplication(configuration: env.configuration(.billing)),
        ]
        try await withRunningServices(services, readyPorts: [env.ports[.discovery]!, env.ports[.findingsPolicy]!,
                                                             env.ports[.billing]!]) {
            let registration = try await Registration.register(env, name: "faults", registryHost: registry.host)
            let digest = try await pushCorpusImage("images/alpine-3.7.3.oci.tar", to: registry, repository: "faults/alpine", tag: "3.7.3")
            var environment = env.environment
            environment["GANTRY_PORT"] = String(env.ports[.scanner]!)
            environment["GANTRY_SCAN_WORKERS"] = "1"
            let log = FileManager.default.temporaryDirectory.appendingPathComponent("gantry-scanner-kill-\(UUID()).log")
            var scanner = try ServiceProcessTests.launch("gantry-scanner", environment: environment, output: log)
            defer { if scanner.isRunning { kill(scanner.processIdentifier, SIGKILL) } }
            try await waitUntilReady(ports: [env.ports[.scanner]!])
            try await Self.importFeeds(env)

            // The registry frozen: the scan blocks on its first request, and is killed there.
            kill(registry.processIdentifier, SIGSTOP)
            let jobID = try await Self.requestScan(env, registration, repository: "faults/alpine", digest: digest)
            _ = try await eventually("the scan to be running") {
                try await Self.count(database, "SELECT count(*)::int FROM scanner.scan_jobs WHERE status = 'running'") == 1 ? true : nil
            }
            try await Task.sleep(for: .milliseconds(300))
            kill(scanner.processIdentifier, SIGKILL)
            scanner.waitUntilExit()
            #expect(scanner.terminationReason == .uncaughtSignal)
            kill(registry.processIdentifier, SIGCONT)
            #expect(try await Self.count(database, "SELECT count(*)::int FROM scanner.inventories") == 0)

            scanner = try ServiceProcessTests.launch("gantry-scanner", environment: environment, output: log)
            try await waitUntilReady(ports: [env.ports[.scanner]!])
            _ = try await eventually("the job to succeed after the restart", timeout: .seconds(60)) {
                try await Self.count(database, "SELECT count(*)::int FROM scanner.scan_jobs WHERE status = 'succeeded'") == 1 ? true : nil
            }
            // Delivered downstream, once.
            _ = try await eventually("findings-policy and billing to receive the outcome", timeout: .seconds(30)) {
                let reports = try await Self.count(database, "SELECT count(*)::int FROM findings_policy.inbox WHERE message_id LIKE 'report:%'")
                let usage = try await Self.count(database, "SELECT count(*)::int FROM billing.inbox WHERE message_id LIKE 'usage:%'")
                return reports == 1 && usage == 1 ? true : nil
            }
            try await Task.sleep(for: .seconds(2))
            let attempts = try await Self.count(database, "SELECT attempts FROM scanner.scan_jobs")
            #expect(attempts == 2, "the killed attempt and the one that completed")
            #expect(try await Self.count(database, "SELECT count(*)::int FROM scanner.inventories") == 1)
            #expect(try await Self.count(database, "SELECT count(*)::int FROM scanner.outbox") == 2)
            #expect(try await Self.count(database, "SELECT count(*)::int FROM findings_policy.inbox") == 1)
            #expect(try await Self.count(database, "SELECT count(*)::int FROM billing.inbox") == 1)
            let scans = try await TestHTTP.send(.GET, env.url(.scanner).absoluteString + "/v1/tenants/\(registration.tenantID)/scans?digest=\(digest)")
            let items = (try scans.json() as? [String: Any])?["items"] as? [[String: Any]] ?? []
            #expect(items.count == 1)
            #expect(items.first?["jobId"] as? String == jobID)
            #expect(items.first?["outcome"] as? String == "assessed")
            #expect(items.first?["findings"] as? Int == 2)

            // The same history through `gantry scans history`.
            let (status, table) = try Self.gantry(["scans", "history", "--digest", digest],
                                                  environment: env.environment.merging(["GANTRY_TENANT": registration.tenantID]) { $1 })
            #expect(status == 0, "\(table)")
            let lines = table.split(separator: "\n")
            #expect(lines.first?.hasPrefix("TRIGGER") == true, "\(table)")
            #expect(lines.count == 2, "\(table)")
            #expect(lines.last?.hasPrefix("push") == true && lines.last?.contains("succeeded/assessed") == true
                    && lines.last?.contains("2/5") == true, "\(table)")
            scanner.terminate()
            scanner.waitUntilExit()
        }
    }

    @Test("a burst of 10,000 push events for 100 digests (100 per digest, unique event IDs, concurrent envelopes): 100 scans, no more")
    func burst() async throws {
        let database = try await TestDatabase.create()
        defer { Task { await database.drop() } }
        let env = try TestEnvironment(database: database, extra: Self.scannerSettings)
        let registry = try await TestRegistry.start()
        defer { registry.stop() }
        let services: [any Service] = [
            try await buildDiscoveryApplication(configuration: env.configuration(.discovery)),
            try await buildIngestionApplication(configuration: env.configuration(.ingestion)),
            try await buildScannerApplication(configuration: env.configuration(.scanner)),
            try await buildFindingsPolicyApplication(configuration: env.configuration(.findingsPolicy)),
            try await buildBillingApplication(configuration: env.configuration(.billing)),
        ]
        try await withRunningServices(services, readyPorts: [.discovery, .ingestion, .scanner, .findingsPolicy, .billing].map { env.ports[$0]! }) {
            let registration = try await Registration.register(env, name: "faults", registryHost: registry.host)
            try await Self.importFeeds(env)
            let digests = try await Self.manifestVariants(registry, repository: "burst/app", count: 100)
            #expect(Set(digests).count == 100)
            let secret = try await TestHTTP.json(
                .PUT, env.url(.ingestion).absoluteString + "/v1/tenants/\(registration.tenantID)/registries/\(registration.registryID)/webhook-secret", [:])
            let header = try #require((try secret.json() as? [String: Any])?["header"] as? String)

            // 200 envelopes of 50 events; each digest pushed 100 times, interleaved, 8 senders at once.
            let events = (0..<10_000).map { index -> [String: Any] in
                let digest = digests[index % 100]
                return ["id": "burst-\(index)", "timestamp": "2024-05-01T10:00:00Z", "action": "push",
                        "target": ["mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest,
                                   "repository": "burst/app", "tag": "v\(index % 100)", "size": 400],
                        "request": ["host": registry.host, "method": "PUT"]]
            }
            let bodies: [Data] = try stride(from: 0, to: events.count, by: 50).map {
                try JSONSerialization.data(withJSONObject: ["events": Array(events[$0..<min($0 + 50, events.count)])])
            }
            let url = env.url(.ingestion).absoluteString + "/v1/events/distribution"
            let started = ContinuousClock.now
            let accepted = try await withThrowingTaskGroup(of: Int.self) { group in
                for sender in 0..<8 {
                    group.addTask {
                        var recorded = 0
                        for body in bodies.enumerated().filter({ $0.offset % 8 == sender }).map(\.element) {
                            let reply = try await TestHTTP.send(.POST, url, body: body, headers: [
                                "Content-Type": "application/vnd.docker.distribution.events.v1+json", "Authorization": header])
                            try #require(reply.status == 202, "\(reply.text)")
                            recorded += (try reply.json() as? [String: Any])?["recorded"] as? Int ?? 0
                        }
                        return recorded
                    }
                }
                return try await group.reduce(0, +)
            }
            let intake = ContinuousClock.now - started
            #expect(accepted == 10_000)
            _ = try await eventually("ingestion to process the burst", timeout: .seconds(120)) {
                try await Self.count(database, "SELECT count(*)::int FROM ingestion.events WHERE processed_at IS NULL") == 0 ? true : nil
            }
            let processed = ContinuousClock.now - started
            _ = try await eventually("100 scans to succeed", timeout: .seconds(180)) {
                try await Self.count(database, "SELECT count(*)::int FROM scanner.scan_jobs WHERE status = 'succeeded'") == 100 ? true : nil
            }
            let scanned = ContinuousClock.now - started
            try await Task.sleep(for: .seconds(2))
            #expect(try await Self.count(database, "SELECT count(*)::int FROM scanner.scan_jobs") == 100)
            #expect(try await Self.count(database, "SELECT count(*)::int FROM ingestion.outbox WHERE path = '/internal/v1/scans'") == 100)
            #expect(try await Self.count(database, "SELECT count(DISTINCT digest)::int FROM scanner.scan_jobs") == 100)
            _ = try await eventually("100 charges", timeout: .seconds(60)) {
                try await Self.count(database, "SELECT count(*)::int FROM billing.inbox") == 100 ? true : nil
            }
            print("burst: 10,000 events recorded in \(intake), processed in \(processed), 100 scans done in \(scanned)")
        }
    }

    @Test("findings-policy down while a scan completes: the report waits in the outbox and is delivered once when it returns")
    func downstreamDown() async throws {
        let database = try await TestDatabase.create()
        defer { Task { await database.drop() } }
        let env = try TestEnvironment(database: database, extra: Self.scannerSettings)
        let registry = try await TestRegistry.start()
        defer { registry.stop() }
        let services: [any Service] = [
            try await buildDiscoveryApplication(configuration: env.configuration(.discovery)),
            try await buildScannerApplication(configuration: env.configuration(.scanner)),
            try await buildBillingApplication(configuration: env.configuration(.billing)),
        ]
        try await withRunningServices(services, readyPorts: [.discovery, .scanner, .billing].map { env.ports[$0]! }) {
            let registration = try await Registration.register(env, name: "faults", registryHost: registry.host)
            try await Self.importFeeds(env)
            let digest = try await pushCorpusImage("images/alpine-3.7.3.oci.tar", to: registry, repository: "down/alpine", tag: "3.7.3")
            _ = try await Self.requestScan(env, registration, repository: "down/alpine", digest: digest)
            // "Down for minutes" shortened to one failed delivery: the relay's HTTP client keeps retrying a
            // refused connection until its 15 s request timeout, so one failure already means 15 s down.
            let failing = try await eventually("the report to fail delivery", timeout: .seconds(60)) {
                try await Self.count(database, """
                    SELECT count(*)::int FROM scanner.outbox
                    WHERE path = '/internal/v1/reports' AND delivered_at IS NULL AND attempts >= 1 AND last_error IS NOT NULL
                    """) == 1 ? true : nil
            }
            #expect(failing)
            let findingsPolicy = try await buildFindingsPolicyApplication(configuration: env.configuration(.findingsPolicy))
            try await withRunningServices([findingsPolicy], readyPorts: [env.ports[.findingsPolicy]!]) {
                _ = try await eventually("the report to be delivered", timeout: .seconds(60)) {
                    try await Self.count(database, """
                        SELECT count(*)::int FROM scanner.outbox WHERE path = '/internal/v1/reports' AND delivered_at IS NOT NULL
                        """) == 1 ? true : nil
                }
                try await Task.sleep(for: .seconds(2))
                #expect(try await Self.count(database, "SELECT count(*)::int FROM findings_policy.inbox") == 1)
                #expect(try await Self.count(database, "SELECT attempts FROM scanner.outbox WHERE path = '/internal/v1/reports'") >= 2)
                #expect(try await Self.count(database, "SELECT count(*)::int FROM findings_policy.assessments") == 1)
                let reply = try await TestHTTP.send(.GET, env.url(.findingsPolicy).absoluteString
                    + "/v1/tenants/\(registration.tenantID)/subscriptions/\(registration.subscriptionID)/assessments/\(digest)")
                #expect(reply.status == 200, "\(reply.text)")
            }
        }
    }

    @Test("PostgreSQL restarts during a burst: every acknowledged event is recorded and processed; re-sent ones are duplicates")
    func postgresRestartDuringBurst() async throws {
        let postgres = try await PrivatePostgres.start()
        defer { postgres.stop() }
        let database = try await TestDatabase.create()
        defer { Task { await database.drop() } }
        // The shared test cluster cannot be restarted under other tests: this one runs on its own.
        let env = try TestEnvironment(database: database, extra: ["GANTRY_DATABASE_URL": postgres.url])
        let services: [any Service] = [
            try await buildDiscoveryApplication(configuration: env.configuration(.discovery)),
            try await buildIngestionApplication(configuration: env.configuration(.ingestion)),
        ]
        try await withRunningServices(services, readyPorts: [env.ports[.discovery]!, env.ports[.ingestion]!]) {
            let registration = try await Registration.register(env, name: "faults", registryHost: "restart.example.com")
            let url = env.url(.ingestion).absoluteString + "/v1/events/distribution"
            // 2,000 pushes of 20 digests in envelopes of 10; a sender re-sends an envelope until it is
            // acknowledged, as distribution does.
            let bodies: [Data] = try (0..<200).map { envelope in
                try JSONSerialization.data(withJSONObject: ["events": (0..<10).map { item -> [String: Any] in
                    let index = envelope * 10 + item
                    return ["id": "restart-\(index)", "action": "push",
                            "target": ["mediaType": "application/vnd.oci.image.manifest.v1+json", "repository": "restart/app",
                                       "digest": "sha256:" + String(repeating: String(format: "%02x", index % 20), count: 32)],
                            "request": ["host": "restart.example.com"]]
                }])
            }
            let acknowledged = Counter()
            let failures = Counter()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for sender in 0..<4 {
                    group.addTask {
                        // Every fifth envelope is delivered twice, as a registry does when an answer is lost.
                        for (_, body) in bodies.enumerated().filter({ $0.offset % 4 == sender })
                            .flatMap({ $0.offset % 5 == 0 ? [$0, $0] : [$0] }) {
                            var attempts = 0
                            while true {
                                let reply = try? await TestHTTP.send(.POST, url, body: body, headers: ["Content-Type": "application/json"])
                                if reply?.status == 202 { break }
                                await failures.add(1)
                                attempts += 1
                                guard attempts < 150 else {
                                    throw TestServiceError("an envelope was refused for 30 s: \(reply.map { "\($0.status) \($0.text)" } ?? "no answer")")
                                }
                                try await Task.sleep(for: .milliseconds(200))
                            }
                            await acknowledged.add(1)
                        }
                    }
                }
                group.addTask {
                    while await acknowledged.value < 60 { try await Task.sleep(for: .milliseconds(10)) }
                    try await postgres.restart()
                }
                try await group.waitForAll()
            }
            #expect(await acknowledged.value == 240)
            // A batch caught by the restart may hang in postgres-nio; the processor gives it up after 15 s.
            _ = try await eventually("every event to be processed", timeout: .seconds(90)) {
                let pending = try await postgres.count("SELECT count(*)::int FROM ingestion.events WHERE processed_at IS NULL")
                return pending == 0 ? true : nil
            }
            #expect(try await postgres.count("SELECT count(*)::int FROM ingestion.events") == 2000)
            #expect(try await postgres.count("SELECT count(DISTINCT event_id)::int FROM ingestion.events") == 2000)
            #expect(try await postgres.count("SELECT count(*)::int FROM ingestion.images") == 20)
            #expect(try await postgres.count("SELECT count(*)::int FROM ingestion.outbox WHERE path = '/internal/v1/scans'") == 20)
            _ = registration
            print("postgres restart: \(await failures.value) refused or failed requests were re-sent")
        }
    }

    /// Runs the `gantry` executable; returns its exit status and output (stdout and stderr).
    static func gantry(_ arguments: [String], environment: [String: String]) throws -> (Int32, String) {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("gantry-cli-\(UUID()).txt")
        defer { try? FileManager.default.removeItem(at: output) }
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        let handle = try FileHandle(forWritingTo: output)
        defer { try? handle.close() }
        let process = Process()
        process.executableURL = ServiceProcessTests.binDirectory.appendingPathComponent("gantry")
        process.arguments = arguments
        process.environment = environment.merging(["PATH": "/usr/bin:/bin"]) { $1 }
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        process.waitUntilExit()
        return (process.terminationStatus, try String(contentsOf: output, encoding: .utf8))
    }

    /// Pushes one image with skopeo, then `count - 1` more manifests that differ from it only by an
    /// annotation (same config and layers), through the registry's manifest API: `count` real digests.
    static func manifestVariants(_ registry: TestRegistry, repository: String, count: Int) async throws -> [String] {
        let first = try await pushCorpusImage("images/alpine-3.7.3.oci.tar", to: registry, repository: repository, tag: "base")
        var get = HTTPClientRequest(url: "\(registry.baseURL.absoluteString)/v2/\(repository)/manifests/base")
        get.headers.add(name: "Accept", value: "application/vnd.oci.image.manifest.v1+json")
        get.headers.add(name: "Accept", value: "application/vnd.docker.distribution.manifest.v2+json")
        let response = try await HTTPClient.shared.execute(get, timeout: .seconds(30))
        let mediaType = response.headers.first(name: "Content-Type") ?? "application/vnd.oci.image.manifest.v1+json"
        let body = try await response.body.collect(upTo: 1 << 20)
        var manifest = try #require(try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any])
        var digests = [first]
        for index in 1..<count {
            manifest["annotations"] = ["org.opencontainers.image.description": "gantry burst variant \(index)"]
            let bytes = try JSONSerialization.data(withJSONObject: manifest, options: [.sortedKeys])
            var put = HTTPClientRequest(url: "\(registry.baseURL.absoluteString)/v2/\(repository)/manifests/v\(index)")
            put.method = .PUT
            put.headers.add(name: "Content-Type", value: mediaType)
            put.body = .bytes(ByteBuffer(bytes: bytes))
            let stored = try await HTTPClient.shared.execute(put, timeout: .seconds(30))
            try #require(stored.status == .created, "PUT manifest v\(index): HTTP \(stored.status.code)")
            digests.append(try #require(stored.headers.first(name: "Docker-Content-Digest")))
        }
        return digests
    }
}

/// A counter shared by concurrent test tasks.
actor Counter {
    private(set) var value = 0
    func add(_ amount: Int) { value += amount }
}

/// A PostgreSQL cluster of its own (initdb into a temporary directory, trust authentication for role
/// `gantry`, a free port, fsync off) for a test that restarts the server. The server runs in the
/// foreground as this process's child (as root, through `runuser -u postgres`, as scripts/postgres.sh
/// does): `pg_ctl start` would leave a daemon holding the descriptor Foundation's `Process` watches, and
/// the wait for pg_ctl would never end.
final class PrivatePostgres: @unchecked Sendable {
    let directory: URL
    let port: Int
    let bin: String
    let asRoot: Bool
    private let lock = NSLock()
    private var server: Process?

    /// The cluster's bootstrap superuser (`initdb -U`).
    let superuser: String

    var url: String { "postgres://\(superuser)@127.0.0.1:\(port)/postgres" }
    private var data: String { directory.appendingPathComponent("data").path }

    private init(directory: URL, port: Int, bin: String, asRoot: Bool, superuser: String) {
        self.superuser = superuser
        self.directory = directory
        self.port = port
        self.bin = bin
        self.asRoot = asRoot
    }

    /// - Throws: `ProcessRunner.Failure` when initdb fails; `TestServiceError` when the server does not answer.
    static func start(superuser: String = "gantry") async throws -> PrivatePostgres {
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        let version = versions.contains("15") ? "15" : versions.sorted { $0.localizedStandardCompare($1) == .orderedAscending }.last ?? "15"
        let directory = URL(fileURLWithPath: "/tmp/gantry-pg-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        let asRoot = getuid() == 0
        if asRoot { try FileManager.default.setAttributes([.ownerAccountName: "postgres"], ofItemAtPath: directory.path) }
        let postgres = PrivatePostgres(directory: directory, port: try FreePort.next(), bin: "/usr/lib/postgresql/\(version)/bin",
                                       asRoot: asRoot, superuser: superuser)
        try postgres.run("initdb", ["-D", postgres.data, "-U", superuser, "--auth=trust", "-E", "UTF8"])
        try await postgres.launch()
        return postgres
    }

    /// A fast shutdown (open connections are cut), then a new server on the same port and data.
    func restart() async throws {
        try run("pg_ctl", ["-D", data, "-m", "fast", "-w", "stop"])
        lock.withLock { server }?.waitUntilExit()
        try await launch()
    }

    func stop() {
        try? run("pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"])
        lock.withLock { server }?.waitUntilExit()
        try? FileManager.default.removeItem(at: directory)
    }

    func count(_ sql: String) async throws -> Int {
        let client = PostgresClient(settings: try DatabaseSettings(url: url), logger: Logger(label: "private-pg"))
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            let logger = Logger(label: "private-pg")
            // System access: every tenant's rows of row-level-secured tables.
            return try await client.withSystemAccess(logger: logger) { connection in
                var value = -1
                for try await count in try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger).decode(Int.self) {
                    value = count
                }
                return value
            }
        }
    }

    /// Starts the server in the foreground and waits until it accepts connections.
    private func launch() async throws {
        let process = Process()
        let arguments = ["\(bin)/postgres", "-D", data, "-p", "\(port)", "-h", "127.0.0.1", "-k", directory.path,
                         "-c", "fsync=off", "-c", "max_connections=200"]
        process.executableURL = URL(fileURLWithPath: asRoot ? "/usr/sbin/runuser" : arguments[0])
        process.arguments = asRoot ? ["-u", "postgres", "--"] + arguments : Array(arguments.dropFirst())
        let log = directory.appendingPathComponent("server-\(UUID().uuidString.prefix(4)).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        lock.withLock { server = process }
        _ = try await eventually("the private PostgreSQL on port \(port)", timeout: .seconds(30)) {
            (try? await self.count("SELECT 1")) == 1 ? true : nil
        }
    }

    private func run(_ tool: String, _ arguments: [String]) throws {
        if asRoot {
            try ProcessRunner.run("/usr/sbin/runuser", ["-u", "postgres", "--", "\(bin)/\(tool)"] + arguments)
        } else {
            try ProcessRunner.run("\(bin)/\(tool)", arguments)
        }
    }
}
