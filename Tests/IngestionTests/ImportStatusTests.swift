import Foundation
import GantryRuntime
import GantryTesting
import NIOHTTP1
import PostgresNIO
import Scanner
import ServiceLifecycle
import Testing

/// Import status after the copy (issue 5, "Import"): it follows the scanner's jobs for the platform images
/// (read from a real scanner), the registry's imports list newest first a page at a time, and the
/// `gantry import` commands print them.
@Suite("Image import status and list", .enabled(if: Corpus.isAvailable, "needs the test corpus (GANTRY_CORPUS)"))
struct ImportStatusTests {
    /// The scanner's settings: quick leases and retries, no feed fetching (the knowledge base is imported).
    static let scannerSettings = [
        "GANTRY_SCAN_LEASE_SECONDS": "3", "GANTRY_SCAN_WORKERS": "2", "GANTRY_SCAN_RETRY_BASE_MS": "200",
        "GANTRY_FEEDS_UPDATE_SECONDS": "604800", "GANTRY_FEED_SOURCES": "http://127.0.0.1:9/none.json",
    ]
    static let gantry = Corpus.repositoryRoot.appendingPathComponent(".build/debug/gantry").path

    @Test("a real import reaches scanned: each platform image with the scanner's job, outcome and finish time; the list and `gantry import status|list` show it")
    func reachesScanned() async throws {
        let registry = try await TestRegistry.start()
        defer { registry.stop() }
        try Skopeo.copy(ociArchive: try Corpus.file(ImportTests.multiarch), to: registry.host, repository: "base/alpine",
                        tag: "3.17", all: true)
        try await IngestionHarness.run(environment: Self.scannerSettings) { h in
            let scanner = try await buildScannerApplication(configuration: h.env.configuration(.scanner))
            try await withRunningServices([scanner], readyPorts: [h.env.ports[.scanner]!]) {
                let token = try await h.env.tokens(issuer: "gantry-cli").token(for: "scanner")
                let feed = try await TestHTTP.send(
                    .POST, h.env.url(.scanner).absoluteString + "/internal/v1/feeds/alpine-secdb",
                    body: try Data(contentsOf: try Corpus.file("3-vuln-feeds/alpine/secdb-v3.7-main.yaml")),
                    headers: ["Content-Type": "application/yaml", "Authorization": "Bearer \(token)"])
                try #require(feed.status == 200, "\(feed.text)")

                let registryID = try await ImportTests.register(h, host: registry.host)
                let id = try await ImportTests.start(h, registryID: registryID,
                                                     ["source": "\(registry.host)/base/alpine:3.17", "insecure": true,
                                                      "repository": "team/alpine", "tag": "stable"])
                let url = "\(h.ingestion)/v1/tenants/\(h.tenantID)/registries/\(registryID)/imports/\(id)"
                let seen = StatusLog()
                let polled: [String: Any]?
                do {
                    let ended: [String: Any] = try await eventually("import \(id) to be scanned", timeout: .seconds(120)) {
                    let reply = try await TestHTTP.send(.GET, url)
                    try #require(reply.status == 200, "\(reply.text)")
                    let job = try reply.object()
                    let status = job["status"] as? String ?? "?"
                    await seen.add(status, reply.text)
                    return ["scanned", "scanFailed", "failed", "done"].contains(status) ? job : nil
                    }
                    polled = ended
                } catch {
                    Issue.record("\(error); statuses \(await seen.statuses), last answer \(await seen.last)")
                    polled = nil
                }
                let job = try #require(polled)
                #expect(job["status"] as? String == "scanned", "\(job)")
                #expect(job["scanStatusError"] == nil, "\(job)")
                // Every status seen is a step of the documented path, in order.
                let order = ["queued", "copying", "scanRequested", "scanQueued", "scanning", "scanned"]
                let statuses = await seen.statuses
                let steps = statuses.compactMap { order.firstIndex(of: $0) }
                #expect(steps == steps.sorted() && steps.count == statuses.count, "\(statuses)")

                let copiedAt = try #require((job["finishedAt"] as? String).flatMap(Self.date))
                let platforms = try #require(job["platforms"] as? [[String: Any]])
                #expect(platforms.count == 2)
                for platform in platforms {
                    let scan = try #require(platform["scan"] as? [String: Any], "\(platform)")
                    #expect(scan["status"] as? String == "scanned", "\(scan)")
                    // The corpus image is Alpine 3.17, which the 3.7 secdb does not cover: either outcome is a scan's end.
                    #expect(["assessed", "notApplicable"].contains(scan["outcome"] as? String ?? ""), "\(scan)")
                    #expect(scan["trigger"] as? String == "import", "\(scan)")
                    #expect(scan["findings"] as? Int != nil, "\(scan)")
                    let finished = try #require((scan["finishedAt"] as? String).flatMap(Self.date), "\(scan)")
                    #expect(finished >= copiedAt)
                    // The same job as the scanner's own history for the digest shows.
                    let digest = try #require(platform["digest"] as? String)
                    let history = try await TestHTTP.send(
                        .GET, h.env.url(.scanner).absoluteString + "/v1/tenants/\(h.tenantID)/scans?digest=\(digest)")
                    try #require(history.status == 200, "\(history.text)")
                    let jobs = try #require(try history.object()["items"] as? [[String: Any]])
                    #expect(jobs.map { $0["jobId"] as? String } == [scan["jobId"] as? String], "\(jobs)")
                    #expect(jobs.first?["outcome"] as? String == scan["outcome"] as? String)
                    #expect(jobs.first?["finishedAt"] as? String != nil)
                }

                // The list shows it, scanned; so does the status filter, and another status filter does not.
                let list = try await Self.list(h, registryID: registryID, query: "")
                #expect(list.items.map { $0["importId"] as? String } == [id])
                #expect(list.items.first?["status"] as? String == "scanned")
                #expect(try await Self.list(h, registryID: registryID, query: "status=scanned").items.count == 1)
                #expect(try await Self.list(h, registryID: registryID, query: "status=scanning").items.isEmpty)

                // The CLI says what each line is.
                let cli = ["--registry", registryID, "--tenant", h.tenantID]
                let (status, output) = try await Self.gantry(["import", "status", id] + cli, env: h.env)
                #expect(status == 0, "\(output)")
                #expect(output.contains("import \(id): scanned"), "\(output)")
                for platform in platforms {
                    let name = try #require(platform["platform"] as? String)
                    let digest = try #require(platform["digest"] as? String)
                    let outcome = try #require((platform["scan"] as? [String: Any])?["outcome"] as? String)
                    #expect(output.contains("  platform \(name): \(digest) scan: scanned (\(outcome), "), "\(output)")
                }
                let (listed, table) = try await Self.gantry(["import", "list"] + cli, env: h.env)
                #expect(listed == 0, "\(table)")
                let rows = table.split(separator: "\n")
                #expect(rows.count == 2 && rows[0].hasPrefix("IMPORT") && rows[1].hasPrefix(id) && rows[1].contains(" scanned "),
                        "\(table)")
            }
        }
    }

    @Test("the list pages newest first without gaps or repeats (ties on created_at by ID), filters by status, and refuses bad input with problem+json; another tenant's imports are 404")
    func listPagesAndIsolation() async throws {
        try await IngestionHarness.run { h in
            let tenant = try #require(UUID(uuidString: h.tenantID))
            let registry = try #require(UUID(uuidString: h.registryID))
            // Eight jobs: two share a created_at; statuses of every kind the table holds. Not due for a runner
            // (available_at, lease_until ahead), so they keep their status.
            let statuses = ["queued", "copying", "failed", "done", "done", "done", "failed", "queued"]
            var ids: [UUID] = []
            for (index, status) in statuses.enumerated() {
                let id = UUID()
                ids.append(id)
                let scanRequested = status == "done" && index != 3
                let platforms = status == "done"
                    ? #"[{"platform":"linux/amd64","digest":"\#(IngestionHarness.digest(String(format: "%02x", index)))","mediaType":"application/vnd.oci.image.manifest.v1+json","scanned":true}]"#
                    : "[]"
                let seconds = index == 5 ? 4 : index
                try await h.database.withSystemAccess { client in
                    try await client.query("""
                        INSERT INTO ingestion.imports (id, tenant_id, registry_id, source, source_base_url, source_repository,
                          source_reference, target_repository, status, platforms, scan_requested, created_at, finished_at,
                          available_at, lease_until)
                        VALUES (\(id), \(tenant), \(registry), \("example.com/team/app:\(index)"), 'https://example.com',
                                'team/app', \(String(index)), 'team/app', \(status), \(platforms)::jsonb, \(scanRequested),
                                timestamptz '2026-01-01 00:00:00.123456+00' + \(Double(seconds))::float8 * interval '1 second',
                                CASE WHEN \(status) IN ('done', 'failed') THEN now() END,
                                now() + interval '1 hour', now() + interval '1 hour')
                        """)
                }
            }
            // Newest first: by created_at, then ID, descending.
            let expected = zip(ids, statuses.indices.map { $0 == 5 ? 4 : $0 }).sorted {
                ($0.1, $0.0.uuidString.lowercased()) > ($1.1, $1.0.uuidString.lowercased())
            }.map { $0.0.uuidString.lowercased() }

            var pages: [[String]] = []
            var token: String?
            repeat {
                let page = try await Self.list(h, registryID: h.registryID,
                                               query: "limit=3" + (token.map { "&pageToken=\($0)" } ?? ""))
                pages.append(page.items.compactMap { $0["importId"] as? String })
                token = page.next
            } while token != nil && pages.count < 10
            #expect(pages.map(\.count) == [3, 3, 2], "\(pages)")
            #expect(pages.flatMap { $0 } == expected)

            // Filters: the table's own states in SQL; scan states after asking the scanner (not running here).
            let failed = try await Self.list(h, registryID: h.registryID, query: "status=failed")
            #expect(Set(failed.items.compactMap { $0["importId"] as? String }) == Set([ids[2], ids[6]].map { $0.uuidString.lowercased() }))
            // The CLI's "more:" line repeats the registry, tenant, status and limit, and running it gives the next page.
            let cli = ["import", "list", "--registry", h.registryID, "--tenant", h.tenantID, "--status", "failed", "--limit", "1"]
            let (firstStatus, firstPage) = try await Self.gantry(cli, env: h.env)
            #expect(firstStatus == 0, "\(firstPage)")
            let more = try #require(firstPage.split(separator: "\n").last(where: { $0.hasPrefix("more: ") }), "\(firstPage)")
            #expect(more.hasPrefix("more: gantry " + cli.joined(separator: " ") + " --page-token "), "\(more)")
            let (nextStatus, nextPage) = try await Self.gantry(more.dropFirst("more: gantry ".count).split(separator: " ").map(String.init),
                                                               env: h.env)
            #expect(nextStatus == 0 && !nextPage.contains("more: "), "\(nextPage)")
            let shown = [firstPage, nextPage].map { page in failed.items.compactMap { $0["importId"] as? String }.filter { page.contains($0) } }
            #expect(shown.map(\.count) == [1, 1] && Set(shown.joined()).count == 2, "\(firstPage)\n\(nextPage)")
            // An answer the contract does not list (403: a token for another tenant) still shows the problem's detail.
            let (minted, otherToken) = try await Self.gantry(["token", "create", "--tenant", UUID().uuidString.lowercased(),
                                                              "--role", "Security Reader", "--ttl", "5m"], env: h.env)
            #expect(minted == 0, "\(otherToken)")
            let (deniedStatus, denied) = try await Self.gantry(cli, env: h.env,
                                                               extra: ["GANTRY_TOKEN": otherToken.trimmingCharacters(in: .whitespacesAndNewlines)])
            #expect(deniedStatus != 0 && denied.contains("ingestion answered HTTP 403: ") && denied.contains("GANTRY_TOKEN"), "\(denied)")
            let done = try await Self.list(h, registryID: h.registryID, query: "status=done")
            #expect(done.items.compactMap { $0["importId"] as? String } == [ids[3].uuidString.lowercased()])
            let requested = try await Self.list(h, registryID: h.registryID, query: "status=scanRequested&limit=1")
            #expect(requested.items.count == 1 && requested.next != nil, "\(requested.items)")
            let first = try #require(requested.items.first)
            #expect((first["scanStatusError"] as? String ?? "").contains("scanner"), "\(first)")
            let scans = (first["platforms"] as? [[String: Any]])?.compactMap { ($0["scan"] as? [String: Any])?["status"] as? String }
            #expect(scans == ["requested"])
            let rest = try await Self.list(h, registryID: h.registryID, query: "status=scanRequested&limit=1&pageToken=\(requested.next!)")
            #expect(rest.items.count == 1 && rest.items.first?["importId"] as? String != first["importId"] as? String)

            // Bad input: problem+json, nothing else.
            let base = "\(h.ingestion)/v1/tenants/\(h.tenantID)/registries/\(h.registryID)/imports"
            for query in ["limit=0", "limit=101", "pageToken=not-a-token", "pageToken=\(Data("x|y".utf8).base64EncodedString())",
                          "status=finished"] {
                try expectProblem(try await TestHTTP.send(.GET, "\(base)?\(query)"), status: 400)
            }
            try expectProblem(try await TestHTTP.send(.GET, "\(base)/\(UUID().uuidString)"), status: 404)
            try expectProblem(try await TestHTTP.send(
                .GET, "\(h.ingestion)/v1/tenants/\(h.tenantID)/registries/\(UUID().uuidString)/imports"), status: 404)

            // Another tenant: its own registry and import exist, yet tenant A's path never shows them, and B's
            // path never shows A's.
            let other = try await TestHTTP.json(.POST, "\(h.discovery)/v1/tenants", ["name": "import-other"])
            try #require(other.status == 201, "\(other.text)")
            let otherTenant = try #require(try other.object()["id"] as? String)
            let subscription = try await TestHTTP.json(.POST, "\(h.discovery)/v1/tenants/\(otherTenant)/subscriptions",
                                                       ["name": "main", "cloudType": "commercial"])
            try #require(subscription.status == 201, "\(subscription.text)")
            let otherSubscription = try #require(try subscription.object()["id"] as? String)
            let otherRegistryReply = try await TestHTTP.json(
                .POST, "\(h.discovery)/v1/tenants/\(otherTenant)/subscriptions/\(otherSubscription)/registries",
                ["loginServer": "other.registry.local"])
            try #require(otherRegistryReply.status == 201, "\(otherRegistryReply.text)")
            let otherRegistry = try #require(try otherRegistryReply.object()["id"] as? String)
            let otherImport = UUID()
            try await h.database.withSystemAccess { client in
                try await client.query("""
                    INSERT INTO ingestion.imports (id, tenant_id, registry_id, source, source_base_url, source_repository,
                      source_reference, target_repository, available_at)
                    VALUES (\(otherImport), \(UUID(uuidString: otherTenant)!), \(UUID(uuidString: otherRegistry)!),
                            'example.com/b/app:1', 'https://example.com', 'b/app', '1', 'b/app', now() + interval '1 hour')
                    """)
            }
            let otherID = otherImport.uuidString.lowercased()
            try expectProblem(try await TestHTTP.send(
                .GET, "\(h.ingestion)/v1/tenants/\(h.tenantID)/registries/\(otherRegistry)/imports/\(otherID)"), status: 404)
            try expectProblem(try await TestHTTP.send(.GET, "\(base)/\(otherID)"), status: 404)
            try expectProblem(try await TestHTTP.send(
                .GET, "\(h.ingestion)/v1/tenants/\(h.tenantID)/registries/\(otherRegistry)/imports"), status: 404)
            let theirs = try await TestHTTP.send(.GET, "\(h.ingestion)/v1/tenants/\(otherTenant)/registries/\(otherRegistry)/imports")
            try #require(theirs.status == 200, "\(theirs.text)")
            #expect((try theirs.object()["items"] as? [[String: Any]])?.compactMap { $0["importId"] as? String } == [otherID])
            try expectProblem(try await TestHTTP.send(
                .GET, "\(h.ingestion)/v1/tenants/\(otherTenant)/registries/\(h.registryID)/imports/\(ids[0].uuidString)"), status: 404)
        }
    }

    // MARK: Helpers

    /// `GET …/imports?query`: the items and the next page's token.
    static func list(_ h: IngestionHarness, registryID: String, query: String) async throws -> (items: [[String: Any]], next: String?) {
        let reply = try await TestHTTP.send(.GET, "\(h.ingestion)/v1/tenants/\(h.tenantID)/registries/\(registryID)/imports?\(query)")
        try #require(reply.status == 200, "\(reply.text)")
        let object = try reply.object()
        return (try #require(object["items"] as? [[String: Any]]), object["nextPageToken"] as? String)
    }

    static func date(_ text: String) -> Date? {
        (try? Date(text, strategy: .iso8601.year().month().day().time(includingFractionalSeconds: true)))
            ?? (try? Date(text, strategy: .iso8601))
    }

    /// Runs the `gantry` executable with the harness's service URLs and keys; exit status and standard output
    /// followed by standard error.
    static func gantry(_ arguments: [String], env: TestEnvironment, extra: [String: String] = [:]) async throws -> (Int32, String) {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("gantry-import-\(UUID()).txt")
        defer { try? FileManager.default.removeItem(at: output) }
        FileManager.default.createFile(atPath: output.path, contents: nil)
        let handle = try FileHandle(forWritingTo: output)
        defer { try? handle.close() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: gantry)
        process.arguments = arguments
        process.environment = env.environment.merging(["PATH": "/usr/bin:/bin"].merging(extra) { $1 }) { $1 }
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        while process.isRunning { try await Task.sleep(for: .milliseconds(20)) }
        return (process.terminationStatus, try String(contentsOf: output, encoding: .utf8))
    }
}

/// The statuses a poll saw, each once, in order.
actor StatusLog {
    private(set) var statuses: [String] = []
    private(set) var last = ""
    func add(_ status: String, _ reply: String) {
        if statuses.last != status { statuses.append(status) }
        last = reply
    }
}
