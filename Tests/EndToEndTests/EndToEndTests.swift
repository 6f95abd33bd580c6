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

/// The walking skeleton end to end: a real registry notifies the real ingestion service; every hop
/// is HTTP between the six services, each persisting to its own schema of a real PostgreSQL.
@Suite(.serialized, .enabled(if: Corpus.isAvailable, "the test corpus (../shared/corpus) is missing"))
struct EndToEndTests {
    /// One stack: services, registry and webhook sink, with helpers to drive them.
    struct Stack: Sendable {
        let env: TestEnvironment
        let registry: TestRegistry
        let sink: WebhookSink
        let credentials: RegistryCredentials?
        let tenantID: String
        let subscriptionID: String
        let registryID: String

        func api(_ service: GantryServiceName, _ path: String) -> String { env.url(service).absoluteString + path }

        func token(_ audience: String) async throws -> String {
            try await env.tokens(issuer: "gantry-cli").token(for: audience)
        }

        /// Pushes a corpus image with skopeo and returns the digest the registry stored.
        func push(_ archive: String, repository: String, tag: String) async throws -> String {
            try await pushCorpusImage(archive, to: registry, repository: repository, tag: tag, credentials: credentials)
        }

        func assessment(_ digest: String) async throws -> [String: Any]? {
            let reply = try await TestHTTP.send(.GET, api(.findingsPolicy,
                "/v1/tenants/\(tenantID)/subscriptions/\(subscriptionID)/assessments/\(digest)"))
            return reply.status == 200 ? try reply.json() as? [String: Any] : nil
        }

        func scans(_ digest: String) async throws -> [[String: Any]] {
            let reply = try await TestHTTP.send(.GET, api(.scanner, "/v1/tenants/\(tenantID)/scans?digest=\(digest)"))
            return ((try reply.json() as? [String: Any])?["items"] as? [[String: Any]]) ?? []
        }

        func usage() async throws -> [String: Any] {
            let reply = try await TestHTTP.send(.GET, api(.billing, "/v1/tenants/\(tenantID)/subscriptions/\(subscriptionID)/usage"))
            return (try reply.json() as? [String: Any]) ?? [:]
        }
    }

    /// Starts everything, registers a tenant, subscription (plan enabled), registry and webhook,
    /// imports the Alpine secdb from the corpus, then runs `body`.
    static func withStack(credentials: RegistryCredentials? = nil,
                          _ body: @Sendable (Stack) async throws -> Void) async throws {
        let database = try await TestDatabase.create()
        do {
            let env = try TestEnvironment(database: database)
            let registry = try await TestRegistry.start(
                basicAuth: credentials.map { ($0.username, $0.password) },
                notifyURL: URL(string: env.url(.ingestion).absoluteString + "/v1/events/distribution")!)
            defer { registry.stop() }
            let sink = WebhookSink(secret: "e2e-webhook-secret-0123456789")
            let sinkPort = try FreePort.next()
            let services: [any Service] = [
                try await buildDiscoveryApplication(configuration: env.configuration(.discovery)),
                try await buildIngestionApplication(configuration: env.configuration(.ingestion)),
                try await buildScannerApplication(configuration: env.configuration(.scanner)),
                try await buildFindingsPolicyApplication(configuration: env.configuration(.findingsPolicy)),
                try await buildBillingApplication(configuration: env.configuration(.billing)),
                try await buildNotificationApplication(configuration: env.configuration(.notification)),
                sink.application(port: sinkPort),
            ]
            try await withRunningServices(services, readyPorts: Array(env.ports.values) + [sinkPort]) {
                let registration = try await Registration.register(env, name: "e2e", registryHost: registry.host,
                                                                   credentials: credentials)
                let (tenantID, subscriptionID) = (registration.tenantID, registration.subscriptionID)
                let hook = try await TestHTTP.json(
                    .POST, env.url(.notification).absoluteString + "/v1/tenants/\(tenantID)/subscriptions/\(subscriptionID)/webhooks",
                    ["url": "http://127.0.0.1:\(sinkPort)/hook", "secret": sink.secret])
                try #require(hook.status == 201, "\(hook.text)")
                let stack = Stack(env: env, registry: registry, sink: sink, credentials: credentials, tenantID: tenantID,
                                  subscriptionID: subscriptionID, registryID: registration.registryID)
                // The knowledge base, imported the way an operator (or `gantry feeds`) does.
                let token = try await stack.token("scanner")
                let feeds = try Corpus.file("3-vuln-feeds/alpine")
                for file in try FileManager.default.contentsOfDirectory(at: feeds, includingPropertiesForKeys: nil)
                where file.lastPathComponent.hasPrefix("secdb-") {
                    let reply = try await TestHTTP.send(.POST, stack.api(.scanner, "/internal/v1/feeds/alpine-secdb"),
                                                        body: try Data(contentsOf: file),
                                                        headers: ["Content-Type": "application/yaml", "Authorization": "Bearer \(token)"])
                    try #require(reply.status == 200, "\(file.lastPathComponent): \(reply.text)")
                }
                try await body(stack)
            }
        } catch {
            await database.drop()
            throw error
        }
        await database.drop()
    }

    static func findings(_ assessment: [String: Any]) -> [String] {
        ((assessment["findings"] as? [[String: Any]]) ?? []).map {
            "\($0["vulnerabilityId"] ?? "") \($0["packageName"] ?? "") \($0["installedVersion"] ?? "") → \($0["fixedVersion"] ?? "none") patchable=\($0["patchable"] ?? "")"
        }.sorted()
    }

    @Test("push → scan → findings, billing once per digest, one signed webhook for the unhealthy image")
    func pushToFindings() async throws {
        try await Self.withStack { stack in
            let vulnerable = try await stack.push("images/alpine-3.7.3.oci.tar", repository: "e2e/alpine", tag: "3.7.3")
            let upgraded = try await stack.push("images/alpine-3.7.3-apk-upgrade.oci.tar", repository: "e2e/alpine", tag: "3.7.3-upgraded")
            #expect(vulnerable != upgraded)

            let first = try await eventually("the assessment of \(vulnerable)", timeout: .seconds(60)) {
                try await stack.assessment(vulnerable)
            }
            #expect((first["status"] as? [String: Any])?["code"] as? String == "Unhealthy")
            #expect(Self.findings(first) == [
                "CVE-2019-14697 musl 1.1.18-r3 → 1.1.18-r4 patchable=1",
                "CVE-2019-14697 musl-utils 1.1.18-r3 → 1.1.18-r4 patchable=1",
            ])
            #expect((first["operatingSystem"] as? [String: Any])?["versionId"] as? String == "3.7.3")
            #expect(first["registryHost"] as? String == stack.registry.host)
            #expect(first["repositoryName"] as? String == "e2e/alpine")

            let second = try await eventually("the assessment of \(upgraded)", timeout: .seconds(60)) {
                try await stack.assessment(upgraded)
            }
            #expect((second["status"] as? [String: Any])?["code"] as? String == "Healthy")
            #expect(Self.findings(second).isEmpty)

            // Exactly one signed delivery, for the unhealthy image only.
            let delivered = try await eventually("one webhook delivery") {
                let deliveries = await stack.sink.deliveries
                return deliveries.isEmpty ? nil : deliveries
            }
            #expect(delivered.count == 1)
            #expect(delivered.first?.signatureValid == true)
            #expect(delivered.first?.event == "imageUnhealthy")
            let alert = try #require(try JSONSerialization.jsonObject(with: delivered[0].body) as? [String: Any])
            #expect(alert["imageDigest"] as? String == vulnerable)
            #expect((alert["findings"] as? [Any])?.count == 2)

            // One billable scan per digest.
            let usage = try await eventually("two charges") {
                let usage = try await stack.usage()
                return (usage["billableImages"] as? Int) == 2 ? usage : nil
            }
            let charged = ((usage["charges"] as? [[String: Any]]) ?? []).compactMap { $0["digest"] as? String }.sorted()
            #expect(charged == [vulnerable, upgraded].sorted())
            // Both inside the default 30-day free trial: recorded at 0 with their list price.
            #expect(usage["amount"] as? String == "0.0000")
            #expect(((usage["charges"] as? [[String: Any]]) ?? []).allSatisfy { $0["listPrice"] as? String == "0.2900" })

            // SBOMs from the scanner API: CycloneDX with the findings as vulnerabilities, and SPDX.
            let cyclone = try await TestHTTP.send(.GET, stack.api(.scanner, "/v1/tenants/\(stack.tenantID)/images/\(vulnerable)/sbom"))
            #expect(cyclone.status == 200)
            #expect(cyclone.header("Content-Type")?.hasPrefix("application/vnd.cyclonedx+json") == true)
            let bom = try #require(try cyclone.json() as? [String: Any])
            #expect(bom["specVersion"] as? String == "1.6")
            #expect((bom["components"] as? [[String: Any]])?.filter { $0["type"] as? String == "library" }.count == 13)
            #expect((bom["vulnerabilities"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == ["CVE-2019-14697", "CVE-2019-14697"])
            let spdx = try await TestHTTP.send(.GET, stack.api(.scanner, "/v1/tenants/\(stack.tenantID)/images/\(vulnerable)/sbom?format=spdx-json"))
            #expect(spdx.status == 200)
            let spdxDocument = try #require(try spdx.json() as? [String: Any])
            #expect(spdxDocument["spdxVersion"] as? String == "SPDX-2.3")
            #expect((spdxDocument["packages"] as? [Any])?.count == 15)
            let missing = try await TestHTTP.send(.GET, stack.api(.scanner, "/v1/tenants/\(stack.tenantID)/images/sha256:\(String(repeating: "0", count: 64))/sbom"))
            #expect(missing.status == 404)

            // The base layer the two images share was read once: one cache entry per distinct layer.
            let cached = try await stack.env.database.withClient { client in
                var layers: [String] = []
                for try await layer in try await client.query("SELECT layer_digest FROM scanner.layer_cache ORDER BY 1")
                    .decode(String.self) { layers.append(layer) }
                return layers
            }
            #expect(cached.count == 2)
            #expect(cached.contains("sha256:dcc2844b5e99c427e4525de949fc741ea4b13ca2856295972ac06272080ad585"))

            // The same image under another tag: the tag is recorded, but the digest is not scanned again
            // (its findings stay current through re-evaluation), nor billed or alerted twice.
            _ = try await stack.push("images/alpine-3.7.3.oci.tar", repository: "e2e/alpine", tag: "again")
            _ = try await eventually("the tag 'again' on \(vulnerable)") {
                let reply = try await TestHTTP.send(.GET, stack.api(.ingestion,
                    "/v1/tenants/\(stack.tenantID)/registries/\(stack.registryID)/images?repository=e2e/alpine"))
                let items = (try reply.json() as? [String: Any])?["items"] as? [[String: Any]] ?? []
                let tags = items.first { $0["digest"] as? String == vulnerable }?["tags"] as? [String] ?? []
                return tags.contains("again") ? tags : nil
            }
            try await Task.sleep(for: .seconds(2))
            #expect(try await stack.scans(vulnerable).count == 1)
            #expect(await stack.sink.deliveries.count == 1)
            #expect((try await stack.usage())["billableImages"] as? Int == 2)
        }
    }

    @Test("a blob whose bytes do not match its digest fails the scan with the reason and bills nothing")
    func corruptBlobFailsScan() async throws {
        try await Self.withStack { stack in
            // With the plan off, the push is recorded but not scanned; the layer is then corrupted on the
            // registry's disk, the plan enabled and a scan requested: the scanner must verify and refuse.
            let plan = stack.api(.discovery, "/v1/tenants/\(stack.tenantID)/subscriptions/\(stack.subscriptionID)/plan")
            #expect(try await TestHTTP.json(.PUT, plan, ["enabled": false]).status == 200)
            let digest = try await stack.push("images/alpine-3.10.9.oci.tar", repository: "e2e/corrupt", tag: "3.10.9")
            // Wait until ingestion has recorded the push (without a scan) before the plan comes back on.
            _ = try await eventually("ingestion to record the push of \(digest)") {
                let reply = try await TestHTTP.send(.GET, stack.api(.ingestion, "/v1/events?registryId=\(stack.registryID)"))
                let items = (try reply.json() as? [String: Any])?["items"] as? [[String: Any]] ?? []
                return items.first { $0["digest"] as? String == digest && $0["scanRequested"] as? Bool == false }
            }
            let manifest = try await RegistryClient(httpClient: .shared, logger: Logger(label: "e2e"))
                .resolveImage(RegistryEndpoint(baseURL: stack.registry.baseURL, credentials: nil),
                              repository: "e2e/corrupt", reference: digest)
            let layer = try #require(manifest.manifest.layers.first)
            let file = stack.registry.blobDataFile(hex: layer.digest.encoded)
            var bytes = try Data(contentsOf: file)
            bytes[bytes.count / 2] ^= 0xFF
            try bytes.write(to: file)
            #expect(try await TestHTTP.json(.PUT, plan, ["enabled": true]).status == 200)
            #expect(try await stack.scans(digest).isEmpty)

            let before = try await stack.usage()["billableImages"] as? Int
            let request: [String: Any] = [
                "messageId": "manual-\(UUID())", "tenantId": stack.tenantID, "subscriptionId": stack.subscriptionID,
                "registryId": stack.registryID, "repository": "e2e/corrupt", "digest": digest, "trigger": "manual",
            ]
            let accepted = try await TestHTTP.json(.POST, stack.api(.scanner, "/internal/v1/scans"), request,
                                                   headers: ["Content-Type": "application/json",
                                                             "Authorization": "Bearer \(try await stack.token("scanner"))"])
            try #require(accepted.status == 202, "\(accepted.text)")
            let jobID = try #require((try accepted.json() as? [String: Any])?["jobId"] as? String)
            let failed = try await eventually("the manual scan to fail", timeout: .seconds(60)) {
                try await stack.scans(digest).first { $0["jobId"] as? String == jobID && $0["status"] as? String == "failed" }
            }
            let reason = failed["error"] as? String ?? ""
            #expect(reason.contains("verification failed"), "\(reason)")
            #expect(reason.contains(layer.digest.description), "\(reason)")
            #expect(try await stack.usage()["billableImages"] as? Int == before)
            #expect(try await stack.assessment(digest) == nil)
        }
    }

    @Test("a registry with basic auth: credentials from discovery (sealed at rest) let the scanner pull")
    func basicAuthRegistry() async throws {
        try await Self.withStack(credentials: RegistryCredentials(username: "gantry-e2e", password: "s3cret-\(UUID())")) { stack in
            let digest = try await stack.push("images/alpine-3.7.3.oci.tar", repository: "private/alpine", tag: "3.7.3")
            let assessment = try await eventually("the assessment of \(digest)", timeout: .seconds(60)) {
                try await stack.assessment(digest)
            }
            #expect((assessment["status"] as? [String: Any])?["code"] as? String == "Unhealthy")
            #expect(Self.findings(assessment).count == 2)
            // The password is not stored in clear.
            let password = stack.credentials?.password ?? ""
            let sealed = try await stack.env.database.withClient { client in
                // System access: discovery's tables have row-level security.
                try await client.withSystemAccess(logger: Logger(label: "test-db")) { connection in
                    var values: [String] = []
                    for try await value in try await connection.query("SELECT credentials_sealed FROM discovery.registries",
                                                                      logger: Logger(label: "test-db"))
                        .decode(String.self) { values.append(value) }
                    return values
                }
            }
            #expect(sealed.count == 1)
            #expect(!sealed.contains { $0.contains(password) || $0.contains("gantry-e2e") })
        }
    }

    @Test("an image without a package database is NotApplicable with the reason and never billed")
    func scratchImageIsNotApplicable() async throws {
        try await Self.withStack { stack in
            let digest = try await stack.push("images/scratch-static.oci.tar", repository: "e2e/scratch", tag: "static")
            let assessment = try await eventually("the assessment of \(digest)", timeout: .seconds(60)) {
                try await stack.assessment(digest)
            }
            let status = assessment["status"] as? [String: Any]
            #expect(status?["code"] as? String == "NotApplicable")
            #expect(status?["cause"] as? String == "NoPackageDatabase")
            try await Task.sleep(for: .seconds(1))
            #expect(try await stack.usage()["billableImages"] as? Int == 0)
            #expect(await stack.sink.deliveries.isEmpty)
            // Only the scan can tell a scratch image: the scanner reports it to discovery's digest inventory.
            let digests = stack.api(.discovery, "/v1/tenants/\(stack.tenantID)/subscriptions/\(stack.subscriptionID)"
                + "/registries/\(stack.registryID)/digests?repository=e2e/scratch")
            let classified = try await eventually("discovery to list \(digest) as noPackageDatabase", timeout: .seconds(30)) {
                let reply = try await TestHTTP.send(.GET, digests)
                let items = ((try? reply.json() as? [String: Any])?["items"] as? [[String: Any]]) ?? []
                return items.first { $0["digest"] as? String == digest && $0["classification"] as? String == "noPackageDatabase" }
            }
            #expect((classified["reason"] as? String)?.isEmpty == false)
        }
    }
}
