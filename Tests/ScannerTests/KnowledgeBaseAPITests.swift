import Crypto
import Foundation
import GantryRuntime
import GantryTesting
import NIOHTTP1
import Scanner
import Testing
import VulnerabilityDB

/// The knowledge base through the scanner's HTTP API on a real database: signed bundles imported once,
/// unchanged imports writing nothing, update operations and their change lists, and every refusal
/// leaving the knowledge base as it was.
@Suite(.serialized) struct KnowledgeBaseAPITests {
    struct Harness: Sendable {
        let env: TestEnvironment
        let key: Curve25519.Signing.PrivateKey
        var base: String { env.url(.scanner).absoluteString }

        func token() async throws -> String { try await env.tokens(issuer: "gantry-cli").token(for: "scanner") }

        func importBundle(_ documents: [FeedDocument], signedBy signer: Curve25519.Signing.PrivateKey? = nil)
            async throws -> TestHTTP.Reply {
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("kb-test-\(UUID().uuidString).tar.gz")
            defer { try? FileManager.default.removeItem(at: file) }
            try FeedBundle.write(documents, to: file, signingKey: signer ?? key)
            return try await post(try Data(contentsOf: file))
        }

        func post(_ body: Data) async throws -> TestHTTP.Reply {
            try await TestHTTP.send(.POST, "\(base)/internal/v1/feeds/bundle", body: body,
                                    headers: ["Content-Type": "application/octet-stream", "Authorization": "Bearer \(try await token())"])
        }

        func get(_ path: String) async throws -> [String: Any] {
            let reply = try await TestHTTP.send(.GET, "\(base)\(path)")
            try #require(reply.status == 200, "\(path): \(reply.text)")
            return try #require(try reply.json() as? [String: Any])
        }

        func items(_ path: String) async throws -> [[String: Any]] {
            try #require(try await get(path)["items"] as? [[String: Any]])
        }
    }

    static func run(extra: [String: String] = [:], _ body: @Sendable (Harness) async throws -> Void) async throws {
        let key = Curve25519.Signing.PrivateKey()
        let database = try await TestDatabase.create()
        do {
            let env = try TestEnvironment(database: database, extra: [
                "GANTRY_FEEDS_PUBLIC_KEY": key.publicKey.rawRepresentation.base64EncodedString(),
                "GANTRY_SCAN_WORKERS": "1",
                // No downloads unless a test asks for them (the machine may have no internet).
                "GANTRY_FEEDS_UPDATE_SECONDS": "0",
            ].merging(extra) { $1 })
            let app = try await buildScannerApplication(configuration: env.configuration(.scanner))
            try await withRunningServices([app], readyPorts: [env.ports[.scanner]!]) {
                try await body(Harness(env: env, key: key))
            }
        } catch {
            await database.drop()
            throw error
        }
        await database.drop()
    }

    static func alpine(_ rows: [(String, String, String)]) -> FeedDocument {
        FeedDocument(source: "alpine-secdb:v3.7/main", kind: .alpineSecDB, affected: rows.map {
            AffectedPackage.distribution(vulnerabilityID: $0.0, namespace: "alpine:v3.7", packageName: $0.1, versionScheme: .apk,
                                         fixState: .fixed($0.2), source: "alpine-secdb:v3.7/main")
        })
    }

    static let kev = FeedDocument(source: "kev", kind: .kev, kev: [KEVEntry(cve: "CVE-2021-44228", dateAdded: "2021-12-10")])

    @Test func importsOnceListsOperationsAndChanges() async throws {
        try await Self.run { harness in
            let first = Self.alpine([("CVE-2019-14697", "musl", "1.1.18-r4"), ("CVE-2018-0732", "libressl", "2.6.5-r0")])
            let reply = try await harness.importBundle([first, Self.kev])
            try #require(reply.status == 200, "\(reply.text)")
            let items = try #require((try reply.json() as? [String: Any])?["items"] as? [[String: Any]])
            #expect(items.map { $0["changed"] as? Bool } == [true, true])

            // The same content again writes nothing.
            let again = try await harness.importBundle([first, Self.kev])
            let unchanged = try #require((try again.json() as? [String: Any])?["items"] as? [[String: Any]])
            #expect(unchanged.map { $0["changed"] as? Bool } == [false, false])
            let operations = try await harness.items("/v1/feeds/operations")
            #expect(operations.count == 2)
            let alpineOperation = try #require(operations.first { $0["source"] as? String == "alpine-secdb:v3.7/main" }?["id"] as? Int)

            // One fix moves: the change list says exactly that.
            let second = Self.alpine([("CVE-2019-14697", "musl", "1.1.18-r5"), ("CVE-2018-0732", "libressl", "2.6.5-r0")])
            let changed = try await harness.importBundle([second])
            #expect(changed.status == 200, "\(changed.text)")
            let changes = try await harness.items("/v1/feeds/changes?after=\(alpineOperation)")
            #expect(changes.map { "\($0["change"] ?? "") \($0["packageName"] ?? "") \($0["vulnerabilityId"] ?? "")" }.sorted()
                == ["added musl CVE-2019-14697", "removed musl CVE-2019-14697"])
            let feeds = try await harness.items("/v1/feeds")
            #expect(feeds.map { $0["source"] as? String } == ["alpine-secdb:v3.7/main", "kev"])
            #expect(feeds.first?["affected"] as? Int == 2)
            #expect(feeds.last?["kev"] as? Int == 1)

            // Export gives back what is stored.
            let exported = try await TestHTTP.send(.GET, "\(harness.base)/internal/v1/feeds/export",
                                                   headers: ["Authorization": "Bearer \(try await harness.token())"])
            #expect(exported.status == 200)
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601
            let documents = try exported.body.split(separator: 0x0A).map { try decoder.decode(FeedDocument.self, from: Data($0)) }
            #expect(documents.map(\.source) == ["alpine-secdb:v3.7/main", "kev"])
            #expect(Set(documents[0].affected) == Set(second.affected))
        }
    }

    @Test func refusedBundlesChangeNothing() async throws {
        try await Self.run { harness in
            let good = try await harness.importBundle([Self.alpine([("CVE-2019-14697", "musl", "1.1.18-r4")])])
            try #require(good.status == 200)
            let stranger = try await harness.importBundle([Self.alpine([("CVE-2019-14697", "musl", "9")])],
                                                          signedBy: Curve25519.Signing.PrivateKey())
            #expect(try expectProblem(stranger, status: 422).contains("not the trusted key"))
            #expect(try expectProblem(try await harness.post(Data("not a bundle".utf8)), status: 422).contains("bundle"))
            let unsigned = try await TestHTTP.send(.POST, "\(harness.base)/internal/v1/feeds/bundle", body: Data("x".utf8),
                                                   headers: ["Content-Type": "application/octet-stream"])
            #expect(unsigned.status == 401)
            let operations = try await harness.items("/v1/feeds/operations")
            #expect(operations.count == 1)
            let feeds = try await harness.items("/v1/feeds")
            #expect(feeds.first?["fingerprint"] as? String != nil)
            #expect(try expectProblem(try await TestHTTP.send(.GET, "\(harness.base)/v1/feeds/changes?after=5&upTo=2"),
                                      status: 400).contains("upTo"))
        }
    }

    /// The scheduled updater downloading from a mirror (Python's http.server over the corpus feeds): every
    /// recognised source imported, a missing one logged without stopping the others, and the next round
    /// writing nothing because nothing changed.
    @Test(.enabled(if: Corpus.isAvailable)) func updaterImportsFromMirroredSources() async throws {
        let mirror = try await StaticFileServer.start(serving: try Corpus.file("3-vuln-feeds"))
        defer { mirror.stop() }
        let base = mirror.baseURL.absoluteString
        let sources = ["\(base)/alpine/secdb-v3.7-main.yaml", "\(base)/missing/all.zip", "\(base)/kev/known_exploited_vulnerabilities.json",
                       "\(base)/debian/security-tracker-DSA-list"].joined(separator: ",")
        try await Self.run(extra: ["GANTRY_FEED_SOURCES": sources, "GANTRY_FEEDS_UPDATE_SECONDS": "2"]) { harness in
            let feeds = try await eventually("the mirrored feeds imported", timeout: .seconds(60)) { () -> [[String: Any]]? in
                let feeds = try await harness.items("/v1/feeds")
                return feeds.count == 3 ? feeds : nil
            }
            #expect(Set(feeds.compactMap { $0["kind"] as? String }) == ["alpine-secdb", "kev", "debian-advisory-list"])
            #expect((feeds.first { $0["kind"] as? String == "kev" }?["kev"] as? Int ?? 0) > 1000)
            let operations = try await harness.items("/v1/feeds/operations").count
            // Two more rounds change nothing: no new update operation.
            try await Task.sleep(for: .seconds(5))
            #expect(try await harness.items("/v1/feeds/operations").count == operations)
            #expect(mirror.requests.contains { $0.contains("/missing/all.zip") })
        }
    }
}
