import Foundation
import GantryRuntime
import GantryTesting
@testable import Ingestion
import NIOHTTP1
import PostgresNIO
import RegistryClient
import Testing

/// Image import (issue 5, "Import") against real registries (Debian's docker-registry): a multi-platform
/// corpus image pushed with skopeo `--all`, copied between two registries (streamed) and within one
/// (cross-repository mount), with digests preserved and import scans queued in the outbox.
@Suite("Image import", .enabled(if: Corpus.isAvailable, "needs the test corpus (GANTRY_CORPUS)"))
struct ImportTests {
    static let multiarch = "images/alpine-3.17.10-multiarch.oci.tar"
    /// The corpus image's index: two platforms, four blobs (two configs, two layers).
    static let blobBytes: Int64 = 366 + 3_275_855 + 381 + 3_146_365

    /// Registers `host` (plain HTTP) for the harness's tenant; returns its ID.
    static func register(_ h: IngestionHarness, host: String) async throws -> String {
        let reply = try await TestHTTP.json(
            .POST, "\(h.discovery)/v1/tenants/\(h.tenantID)/subscriptions/\(h.subscriptionID)/registries",
            ["loginServer": host, "insecure": true])
        try #require(reply.status == 201, "\(reply.text)")
        return try #require(try reply.object()["id"] as? String)
    }

    static func start(_ h: IngestionHarness, registryID: String, _ body: [String: Any]) async throws -> String {
        let reply = try await TestHTTP.json(.POST, "\(h.ingestion)/v1/tenants/\(h.tenantID)/registries/\(registryID)/imports", body)
        try #require(reply.status == 202, "\(reply.text)")
        let job = try reply.object()
        #expect(job["status"] as? String == "queued")
        return try #require(job["importId"] as? String)
    }

    /// Polls the job until its copy has ended (any status but queued and copying; without a scanner running
    /// a copied job stays scanRequested).
    static func finished(_ h: IngestionHarness, registryID: String, _ id: String,
                         timeout: Duration = .seconds(90)) async throws -> [String: Any] {
        try await eventually("import \(id) to finish", timeout: timeout) {
            let reply = try await TestHTTP.send(.GET, "\(h.ingestion)/v1/tenants/\(h.tenantID)/registries/\(registryID)/imports/\(id)")
            try #require(reply.status == 200, "\(reply.text)")
            let job = try reply.object()
            return ["queued", "copying"].contains(job["status"] as? String ?? "queued") ? nil : job
        }
    }

    /// The digest the registry announces for `repository:reference` (an index or manifest) and the SHA-256 of
    /// the body it serves.
    static func manifestDigests(host: String, repository: String, reference: String) async throws -> (String?, String) {
        let reply = try await TestHTTP.send(
            .GET, "http://\(host)/v2/\(repository)/manifests/\(reference)",
            headers: ["Accept": "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json"],
            authorize: false)
        try #require(reply.status == 200, "\(reply.text)")
        return (reply.header("Docker-Content-Digest"), "sha256:" + Checksum.sha256Hex(Array(reply.body)))
    }

    @Test("an index is copied from another registry, streamed, every platform with its digest; a second import skips every blob")
    func crossRegistry() async throws {
        let target = try await TestRegistry.start()
        defer { target.stop() }
        let source = try await TestRegistry.start()
        defer { source.stop() }
        try Skopeo.copy(ociArchive: try Corpus.file(Self.multiarch), to: source.host, repository: "upstream/alpine",
                        tag: "3.17", all: true)
        let (sourceDigest, _) = try await Self.manifestDigests(host: source.host, repository: "upstream/alpine", reference: "3.17")
        let indexDigest = try #require(sourceDigest)
        try await IngestionHarness.run { h in
            let registryID = try await Self.register(h, host: target.host)
            let id = try await Self.start(h, registryID: registryID,
                                          ["source": "\(source.host)/upstream/alpine:3.17", "insecure": true,
                                           "repository": "mirror/alpine"])
            let job = try await Self.finished(h, registryID: registryID, id)
            #expect(job["status"] as? String == "scanRequested", "\(job)")
            #expect(job["digest"] as? String == indexDigest)
            #expect(job["source"] as? String == "\(source.host)/upstream/alpine:3.17")
            #expect(job["targetTag"] as? String == "3.17")
            let platforms = try #require(job["platforms"] as? [[String: Any]])
            #expect(platforms.compactMap { $0["platform"] as? String }.sorted() == ["linux/amd64", "linux/arm64/v8"])
            #expect(job["blobsCopied"] as? Int == 4)
            #expect(job["blobsMounted"] as? Int == 0)
            #expect(job["blobsSkipped"] as? Int == 0)
            #expect((job["bytesCopied"] as? NSNumber)?.int64Value == Self.blobBytes)
            #expect(job["scanRequested"] as? Bool == true)
            // No scanner runs here: the scans stay requested and the answer says why their state is unknown.
            #expect((job["scanStatusError"] as? String ?? "").contains("scanner"), "\(job)")

            // The target serves the same bytes under the same digests: the index by tag, each platform by digest.
            let (announced, hashed) = try await Self.manifestDigests(host: target.host, repository: "mirror/alpine", reference: "3.17")
            #expect(announced == indexDigest)
            #expect(hashed == indexDigest)
            for platform in platforms {
                let digest = try #require(platform["digest"] as? String)
                let (_, body) = try await Self.manifestDigests(host: target.host, repository: "mirror/alpine", reference: digest)
                #expect(body == digest)
            }

            // One scan request per platform image, trigger import, through the outbox to the scanner.
            let scans = try await h.outbox().filter { $0.path == "/internal/v1/scans" }
            #expect(scans.count == 2)
            for scan in scans {
                let payload = try #require(try JSONSerialization.jsonObject(with: Data(scan.payload.utf8)) as? [String: Any])
                #expect(payload["trigger"] as? String == "import")
                #expect(payload["repository"] as? String == "mirror/alpine")
                #expect(platforms.contains { $0["digest"] as? String == payload["digest"] as? String })
            }
            // The inventory knows the images as scan-requested, so the registry's own push events add no scans.
            let images = try await h.database.withSystemAccess { client in
                var rows: [String] = []
                for try await (digest, requested) in try await client.query("""
                    SELECT digest, scan_requested_generation IS NOT NULL FROM ingestion.images
                    WHERE repository = 'mirror/alpine' ORDER BY digest
                    """).decode((String, Bool).self) { rows.append("\(digest) \(requested)") }
                return rows
            }
            #expect(images.count == 3 && images.allSatisfy { $0.hasSuffix(" true") }, "\(images)")

            // Again, by digest, into another tag: every blob is already there.
            let again = try await Self.start(h, registryID: registryID,
                                             ["source": "\(source.host)/upstream/alpine@\(indexDigest)", "insecure": true,
                                              "repository": "mirror/alpine", "tag": "pinned"])
            let second = try await Self.finished(h, registryID: registryID, again)
            #expect(second["status"] as? String == "scanRequested", "\(second)")
            #expect(second["blobsSkipped"] as? Int == 4)
            #expect(second["blobsCopied"] as? Int == 0)
            #expect((second["bytesCopied"] as? NSNumber)?.int64Value == 0)
            #expect(try await Self.manifestDigests(host: target.host, repository: "mirror/alpine", reference: "pinned").1 == indexDigest)
        }
    }

    @Test("within one registry every blob is mounted across repositories, nothing streamed")
    func sameRegistryMount() async throws {
        let registry = try await TestRegistry.start()
        defer { registry.stop() }
        try Skopeo.copy(ociArchive: try Corpus.file(Self.multiarch), to: registry.host, repository: "base/alpine",
                        tag: "3.17", all: true)
        let (sourceDigest, _) = try await Self.manifestDigests(host: registry.host, repository: "base/alpine", reference: "3.17")
        try await IngestionHarness.run { h in
            let registryID = try await Self.register(h, host: registry.host)
            let id = try await Self.start(h, registryID: registryID,
                                          ["source": "\(registry.host)/base/alpine:3.17", "insecure": true, "repository": "team/alpine",
                                           "tag": "stable"])
            let job = try await Self.finished(h, registryID: registryID, id)
            #expect(job["status"] as? String == "scanRequested", "\(job)")
            #expect(job["blobsMounted"] as? Int == 4)
            #expect(job["blobsCopied"] as? Int == 0)
            #expect((job["bytesCopied"] as? NSNumber)?.int64Value == 0)
            let (announced, hashed) = try await Self.manifestDigests(host: registry.host, repository: "team/alpine", reference: "stable")
            #expect(announced == sourceDigest)
            #expect(hashed == sourceDigest)
        }
    }

    @Test("bad input: unknown registry 404, malformed reference 400, refused host 422, nothing stored; a missing source, or https to a registry without TLS, fails the job with its reason")
    func badInput() async throws {
        try await IngestionHarness.run { h in
            let base = "\(h.ingestion)/v1/tenants/\(h.tenantID)/registries"
            try expectProblem(try await TestHTTP.json(.POST, "\(base)/\(UUID().uuidString)/imports", ["source": "alpine:3.20"]),
                              status: 404)
            // Another tenant's view of the registry is the same as none.
            try expectProblem(try await TestHTTP.json(
                .POST, "\(h.ingestion)/v1/tenants/\(UUID().uuidString)/registries/\(h.registryID)/imports", ["source": "alpine:3.20"]),
                              status: 404)
            for source in ["Alpine:3.20", "alpine@sha256:1234", "alpine:bad tag", "", "https://example.com/app:1", "team//app:1"] {
                let reply = try await TestHTTP.json(.POST, "\(base)/\(h.registryID)/imports", ["source": source])
                try expectProblem(reply, status: 400)
            }
            try expectProblem(try await TestHTTP.json(.POST, "\(base)/\(h.registryID)/imports",
                                                      ["source": "alpine:3.20", "tag": "-bad"]), status: 400)
            for host in ["10.0.0.8", "169.254.169.254", "192.168.1.1:5000", "[fd00::1]:5000"] {
                let detail = try expectProblem(try await TestHTTP.json(.POST, "\(base)/\(h.registryID)/imports",
                                                                       ["source": "\(host)/team/app:1"]), status: 422)
                #expect(detail.contains("refused"))
                if !host.hasPrefix("169.254") { #expect(detail.contains("GANTRY_ALLOW_PRIVATE_REGISTRIES=true"), "\(detail)") }
            }
            #expect(try await Self.importCount(h) == 0)

            // Bad references are 400 before anything is written; a source that is not there fails the job.
            let registryID = try await Self.register(h, host: "127.0.0.1:5000")
            let id = try await Self.start(h, registryID: registryID,
                                          ["source": "127.0.0.1:5000/gantry-import-tests/absent:\(UUID().uuidString.prefix(8).lowercased())",
                                           "insecure": true])
            let job = try await Self.finished(h, registryID: registryID, id)
            #expect(job["status"] as? String == "failed")
            #expect((job["reason"] as? String ?? "").contains("not found"), "\(job)")
            #expect(job["attempts"] as? Int == 1)
            // Without `insecure` the source is reached over https; a registry serving plain HTTP fails at once,
            // saying what to do, rather than retrying a TLS error.
            let overTLS = try await Self.start(h, registryID: registryID,
                                               ["source": "127.0.0.1:5000/gantry-import-tests/absent:\(UUID().uuidString.prefix(8).lowercased())"])
            let refused = try await Self.finished(h, registryID: registryID, overTLS)
            #expect(refused["status"] as? String == "failed")
            let reason = refused["reason"] as? String ?? ""
            #expect(reason.contains("does not speak TLS") && reason.contains("--insecure") && reason.contains("https://127.0.0.1:5000/"),
                    "\(refused)")
            #expect(refused["attempts"] as? Int == 1)
            #expect(try await h.outbox().filter { $0.path == "/internal/v1/scans" }.isEmpty)
            try expectProblem(try await TestHTTP.send(.GET, "\(base)/\(registryID)/imports/\(UUID().uuidString)"), status: 404)
            try expectProblem(try await TestHTTP.send(.GET, "\(base)/\(h.registryID)/imports/\(id)"), status: 404)
        }
    }

    @Test("a job left copying by a worker that died (lease run out) is taken again and completes")
    func resumesAfterRestart() async throws {
        let registry = try await TestRegistry.start()
        defer { registry.stop() }
        try Skopeo.copy(ociArchive: try Corpus.file(Self.multiarch), to: registry.host, repository: "base/alpine",
                        tag: "3.17", all: true)
        try await IngestionHarness.run(environment: ["GANTRY_IMPORT_LEASE_SECONDS": "3"]) { h in
            let registryID = try await Self.register(h, host: registry.host)
            let id = UUID()
            // As a worker that crashed mid-copy leaves it: copying, one attempt, counters part-way, lease expired.
            try await h.database.withSystemAccess { client in
                try await client.query("""
                    INSERT INTO ingestion.imports (id, tenant_id, registry_id, source, source_base_url, source_repository,
                      source_reference, target_repository, target_tag, status, attempts, blobs_copied, bytes_copied, lease_until)
                    VALUES (\(id), \(UUID(uuidString: h.tenantID)!), \(UUID(uuidString: registryID)!),
                            \("\(registry.host)/base/alpine:3.17"), \("http://\(registry.host)"), 'base/alpine', '3.17',
                            'restored/alpine', '3.17', 'copying', 1, 1, 366, now() - interval '1 second')
                    """)
            }
            let job = try await Self.finished(h, registryID: registryID, id.uuidString.lowercased())
            #expect(job["status"] as? String == "scanRequested", "\(job)")
            #expect(job["attempts"] as? Int == 2)
            #expect(job["blobsMounted"] as? Int == 4)
            #expect(try await h.outbox().filter { $0.path == "/internal/v1/scans" }.count == 2)
        }
    }

    @Test("source credentials: sealed with AES-GCM while the job runs (never in clear), cleared when it ends; Basic auth source works")
    func sourceCredentials() async throws {
        let source = try await TestRegistry.start(basicAuth: ("puller", "s3cret-pull-password"))
        defer { source.stop() }
        let target = try await TestRegistry.start()
        defer { target.stop() }
        try Skopeo.copy(ociArchive: try Corpus.file("images/alpine-3.7.3.oci.tar"), to: source.host, repository: "private/alpine",
                        tag: "3.7", credentials: ("puller", "s3cret-pull-password"))
        try await IngestionHarness.run { h in
            let registryID = try await Self.register(h, host: target.host)
            let wrong = try await Self.start(h, registryID: registryID,
                                             ["source": "\(source.host)/private/alpine:3.7", "insecure": true])
            let refused = try await Self.finished(h, registryID: registryID, wrong)
            #expect(refused["status"] as? String == "failed")
            #expect((refused["reason"] as? String ?? "").contains("refused access"), "\(refused)")

            let id = try await Self.start(h, registryID: registryID,
                                          ["source": "\(source.host)/private/alpine:3.7", "insecure": true,
                                           "credentials": ["username": "puller", "password": "s3cret-pull-password"]])
            let job = try await Self.finished(h, registryID: registryID, id)
            #expect(job["status"] as? String == "scanRequested", "\(job)")
            #expect(job["blobsCopied"] as? Int == 2)
            let stored = try await h.database.withSystemAccess { client in
                var values: [String] = []
                for try await value in try await client.query(
                    "SELECT coalesce(source_credentials_sealed, '-') FROM ingestion.imports").decode(String.self) { values.append(value) }
                return values
            }
            #expect(stored == ["-", "-"])
            // The sealed form does not contain the password and opens only with the service's key.
            let sealer = try #require(ImportCredentialSealer(configuration: try h.env.configuration(.ingestion)))
            let sealed = try sealer.seal(.init(username: "puller", password: "s3cret-pull-password"))
            // GantryRuntime's SecretSealer text form (AES-GCM): base64 of nonce || ciphertext || tag after the prefix.
            #expect(sealed.hasPrefix(SecretSealer.prefix) && !sealed.contains("s3cret"))
            #expect(!(Data(base64Encoded: String(sealed.dropFirst(SecretSealer.prefix.count))) ?? Data()).contains(Data("s3cret".utf8)))
            #expect(try sealer.open(sealed).password == "s3cret-pull-password")
            #expect(throws: (any Error).self) { try sealer.open(String(sealed.dropLast(4)) + "AAA=") }
            #expect(throws: (any Error).self) { try sealer.open("{\"username\":\"x\",\"password\":\"clear\"}") }
        }
    }

    @Test("source references: Docker Hub defaults, hosts with ports, tags and digests")
    func referenceParsing() throws {
        let hub = try ImportSource.parse("alpine", insecure: false)
        #expect(hub.normalized == "docker.io/library/alpine:latest")
        #expect(hub.baseURL.absoluteString == "https://registry-1.docker.io")
        #expect(try ImportSource.parse("bitnami/redis:7.2", insecure: false).normalized == "docker.io/bitnami/redis:7.2")
        let local = try ImportSource.parse("127.0.0.1:5001/team/app@sha256:" + String(repeating: "ab", count: 32), insecure: true)
        #expect(local.host == "127.0.0.1:5001")
        #expect(local.repository == "team/app")
        #expect(local.reference == "sha256:" + String(repeating: "ab", count: 32))
        #expect(local.baseURL.absoluteString == "http://127.0.0.1:5001")
        #expect(try ImportSource.parse("localhost/app:1", insecure: false).host == "localhost")
        #expect(try ImportSource.parse("myregistry.azurecr.io/ns/app:v1.2", insecure: false).tag == "v1.2")
    }

    static func importCount(_ h: IngestionHarness) async throws -> Int {
        try await h.database.withSystemAccess { client in
            var count = -1
            for try await value in try await client.query("SELECT count(*)::int FROM ingestion.imports").decode(Int.self) { count = value }
            return count
        }
    }
}
