@testable import Discovery
import AsyncHTTPClient
import Foundation
import GantryModel
import GantryRuntime
import GantryTesting
import NIOHTTP1
import PostgresNIO
import RegistryClient
import Testing

/// Discovery crawls real registries (docker-registry started per test, images pushed with skopeo) and
/// misbehaving HTTP servers.
@Suite("Discovery crawl")
struct DiscoveryCrawlTests {
    @Test("crawl with n=1 pagination: inventory of repositories, tags and digests; a moved tag keeps its earlier digest until it is deleted; onboarding scans once")
    func crawlPaginationAndMovedTag() async throws {
        guard Corpus.isAvailable else { return }
        let registry = try await TestRegistry.start()
        defer { registry.stop() }
        let alpine37 = try Corpus.file("images/alpine-3.7.3.oci.tar")
        let alpine320 = try Corpus.file("images/alpine-3.20.3.oci.tar")
        try Skopeo.copy(ociArchive: alpine37, to: registry.host, repository: "team/app", tag: "1.0")
        try Skopeo.copy(ociArchive: alpine37, to: registry.host, repository: "team/app", tag: "latest")
        try Skopeo.copy(ociArchive: alpine320, to: registry.host, repository: "team/app", tag: "2.0")
        try Skopeo.copy(ociArchive: alpine37, to: registry.host, repository: "base", tag: "3.7")
        try Skopeo.copy(ociArchive: alpine320, to: registry.host, repository: "zeta/tool", tag: "v1")
        let old = try await OCIPush.digest(registry.host, repository: "team/app", tag: "latest")
        let new = try await OCIPush.digest(registry.host, repository: "team/app", tag: "2.0")
        #expect(old != new)

        try await DiscoveryHarness.run(extra: ["GANTRY_DISCOVERY_PAGE_SIZE": "1", "GANTRY_DISCOVERY_ONBOARDING_SCANS": "true"]) { h in
            let ids = try await h.registered(registry.host)
            let first = try await h.crawl(ids)
            #expect(first["status"] as? String == "succeeded", "\(first)")
            #expect(first["repositories"] as? Int == 3)
            #expect(first["tags"] as? Int == 5)
            #expect(first["digests"] as? Int == 4) // the two alpine digests in team/app, one in base, one in zeta/tool
            // n=1: 3 catalog pages following Link, then one tag page per repository (docker-registry 2.8 ignores n
            // on tags/list; tag pagination is tested against a paginating server below).
            #expect(first["pages"] as? Int == 6)
            let log = registry.output
            let catalogURLs = try NSRegularExpression(pattern: #"/v2/_catalog\?[^ "\\]*"#)
                .matches(in: log, range: NSRange(log.startIndex..., in: log))
                .compactMap { Range($0.range, in: log).map { String(log[$0]) } }
            #expect(Set(catalogURLs).count == 3, "three distinct catalog pages requested: \(Set(catalogURLs))")
            #expect(first["onboardingScans"] as? Int == 4)
            #expect(try await h.count("discovery.outbox") == 4)

            let repositories = try await h.items("\(h.registryURL(ids))/repositories")
            #expect(repositories.compactMap { $0["name"] as? String } == ["base", "team/app", "zeta/tool"])
            #expect(repositories.allSatisfy { $0["removedAt"] == nil })

            // The tag moves: latest now points to the 3.20 image.
            try Skopeo.copy(ociArchive: alpine320, to: registry.host, repository: "team/app", tag: "latest")
            let second = try await h.crawl(ids)
            #expect(second["status"] as? String == "succeeded", "\(second)")
            #expect(second["onboardingScans"] as? Int == 0)
            #expect(try await h.count("discovery.outbox") == 4)
            var latest = try await h.items("\(h.registryURL(ids))/tags?repository=team/app").filter { $0["tag"] as? String == "latest" }
            #expect(latest.count == 2)
            #expect(latest.first?["digest"] as? String == new)
            #expect(latest.first?["current"] as? Bool == true)
            #expect(latest.last?["digest"] as? String == old)
            #expect(latest.last?["current"] as? Bool == false)
            #expect(latest.last?["supersededAt"] != nil)
            #expect(latest.last?["removedAt"] == nil, "the earlier digest still exists (tag 1.0), so it stays visible")

            // The old digest is deleted from the registry: its history entries and the tag 1.0 are marked removed.
            try await OCIPush.deleteManifest(registry.host, repository: "team/app", digest: old)
            let third = try await h.crawl(ids)
            #expect(third["status"] as? String == "succeeded", "\(third)")
            let tags = try await h.items("\(h.registryURL(ids))/tags?repository=team/app")
            latest = tags.filter { $0["tag"] as? String == "latest" }
            #expect(latest.last?["digest"] as? String == old)
            #expect(latest.last?["removedAt"] != nil)
            #expect(latest.first?["removedAt"] == nil)
            let one = try #require(tags.first { $0["tag"] as? String == "1.0" })
            #expect(one["removedAt"] != nil)
            #expect(one["current"] as? Bool == false)
            let digests = try await h.items("\(h.registryURL(ids))/digests?repository=team/app")
            #expect(digests.count == 2)
            #expect(digests.first { $0["digest"] as? String == old }?["removedAt"] != nil)
            #expect(digests.first { $0["digest"] as? String == new }?["removedAt"] == nil)
            #expect(digests.allSatisfy { $0["classification"] as? String == "supported" })

            let crawls = try await h.items("\(h.registryURL(ids))/crawls")
            #expect(crawls.count == 3)
            #expect(crawls.allSatisfy { $0["status"] as? String == "succeeded" })
        }
    }

    @Test("supportability: Windows, a Helm chart, an encrypted layer and a multi-arch index are classified from their manifests")
    func supportability() async throws {
        guard Corpus.isAvailable else { return }
        let registry = try await TestRegistry.start()
        defer { registry.stop() }
        try Skopeo.copy(ociArchive: try Corpus.file("images/windows-nanoserver-like.oci.tar"), to: registry.host,
                        repository: "win", tag: "ltsc")
        try Skopeo.copy(ociArchive: try Corpus.file("images/alpine-3.17.10-multiarch.oci.tar"), to: registry.host,
                        repository: "multi", tag: "3.17", all: true)
        try Skopeo.copy(ociArchive: try Corpus.file("images/scratch-static.oci.tar"), to: registry.host,
                        repository: "static", tag: "1")
        try await OCIPush.manifest(registry.host, repository: "charts/web", tag: "0.1.0",
                                   config: ("application/vnd.cncf.helm.config.v1+json", Data(#"{"name":"web","version":"0.1.0"}"#.utf8)),
                                   layers: [("application/vnd.cncf.helm.chart.content.v1.tar+gzip", Data("chart".utf8))])
        let imageConfig = Data(#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:0000000000000000000000000000000000000000000000000000000000000000"]}}"#.utf8)
        try await OCIPush.manifest(registry.host, repository: "secret", tag: "v1",
                                   config: ("application/vnd.oci.image.config.v1+json", imageConfig),
                                   layers: [("application/vnd.oci.image.layer.v1.tar+gzip+encrypted", Data("ciphertext".utf8))])

        try await DiscoveryHarness.run { h in
            let ids = try await h.registered(registry.host)
            let crawl = try await h.crawl(ids)
            #expect(crawl["status"] as? String == "succeeded", "\(crawl)")
            func classification(_ repository: String) async throws -> (String?, String) {
                let items = try await h.items("\(h.registryURL(ids))/digests?repository=\(repository)")
                try #require(items.count == 1, "\(repository): \(items)")
                return (items[0]["classification"] as? String, items[0]["reason"] as? String ?? "")
            }
            let windows = try await classification("win")
            #expect(windows.0 == "windows", "\(windows)")
            let chart = try await classification("charts/web")
            #expect(chart.0 == "notAnImage", "\(chart)")
            #expect(chart.1.contains("application/vnd.cncf.helm.config.v1+json"))
            let encrypted = try await classification("secret")
            #expect(encrypted.0 == "unsupportedManifest", "\(encrypted)")
            #expect(encrypted.1.contains("encrypted"))
            let multi = try await classification("multi")
            #expect(multi.0 == "supported", "\(multi)")
            #expect(multi.1.contains("linux/amd64"))

            // Scratch is only known after the layers are read: the scanner reports it, and later crawls keep it.
            #expect(try await classification("static").0 == "supported")
            let digest = try await OCIPush.digest(registry.host, repository: "static", tag: "1")
            let token = try await h.env.tokens().token(for: "discovery")
            let report = "\(h.base)/internal/v1/registries/\(ids.registry)/classifications"
            let headers = ["Authorization": "Bearer \(token)", "Content-Type": "application/json"]
            let recorded = try await TestHTTP.json(.POST, report, ["repository": "static", "digest": digest,
                                                                   "classification": "noPackageDatabase",
                                                                   "reason": "no package database (scratch)"], headers: headers)
            #expect(recorded.status == 204, "\(recorded.text)")
            _ = try await h.crawl(ids)
            let scratch = try await classification("static")
            #expect(scratch.0 == "noPackageDatabase", "\(scratch)")
            #expect(scratch.1 == "no package database (scratch)")
            try expectProblem(try await TestHTTP.json(.POST, "\(h.base)/internal/v1/registries/\(UUID().uuidString)/classifications",
                                                      ["repository": "static", "digest": digest, "classification": "windows",
                                                       "reason": "x"], headers: headers), status: 404)
            try expectProblem(try await TestHTTP.json(.POST, report, ["repository": "static", "digest": "sha256:nope",
                                                                      "classification": "windows", "reason": "x"],
                                                      headers: headers), status: 400)
            try expectProblem(try await TestHTTP.json(.POST, report, ["repository": "static", "digest": digest,
                                                                      "classification": "windows", "reason": "x"]), status: 401)
        }
    }

    @Test("tag lists follow Link rel=next (RFC 8288), relative or absolute, among other links, until the last page")
    func tagPagination() async throws {
        let port = try FreePort.next()
        try await withRunningServices([FakeRegistry.application(.pagedTags, port: port, counter: PageCounter())], readyPorts: [port]) {
            let client = RegistryClient(httpClient: .shared, logger: .init(label: "test"), addressGuard: AddressGuard(allowLoopback: true))
            let endpoint = RegistryEndpoint(baseURL: URL(string: "http://127.0.0.1:\(port)")!, credentials: nil)
            var tags: [String] = []
            var url: String?
            var pages = 0
            repeat {
                let page = try await client.tagsPage(endpoint, repository: "team/app", url: url, pageSize: 2)
                tags += page.names
                url = page.next
                pages += 1
            } while url != nil && pages < 10
            #expect(tags == ["t1", "t2", "t3", "t4", "t5"])
            #expect(pages == 3)
        }
        #expect(RegistryClient.nextLink([#"<https://r.example/v2/_catalog?n=2&last=b>; rel="next""#], relativeTo: "https://r.example/v2/_catalog")
                == "https://r.example/v2/_catalog?n=2&last=b")
        #expect(RegistryClient.nextLink([#"</v2/x?last=a>; rel="prev", </v2/x?last=c>; rel="next""#], relativeTo: "http://h:1/v2/x")
                == "http://h:1/v2/x?last=c")
        #expect(RegistryClient.nextLink([#"</v2/x?last=a>; rel="prev""#], relativeTo: "http://h:1/v2/x") == nil)
        #expect(RegistryClient.nextLink([], relativeTo: "http://h:1/v2/x") == nil)
    }

    @Test("a schema 1 manifest is unsupported without fetching anything")
    func schema1() async throws {
        let client = RegistryClient(httpClient: .shared, logger: .init(label: "test"))
        let endpoint = RegistryEndpoint(baseURL: URL(string: "http://192.0.2.1:9")!, credentials: nil)
        let manifest = FetchedManifest(bytes: Array(#"{"schemaVersion":1}"#.utf8), mediaType: MediaType.dockerSchema1Signed,
                                       digest: try Digest(parsing: "sha256:" + String(repeating: "a", count: 64)))
        let (classification, reason) = try await Supportability(client: client).classify(endpoint, repository: "x", manifest: manifest)
        #expect(classification == .unsupportedManifest)
        #expect(reason.contains("schema 1"))
    }

    @Test("a registry answering HTML to /v2/ or /v2/_catalog fails the crawl with a clear error and stores nothing")
    func htmlRegistry() async throws {
        for behaviour in [FakeRegistry.Behaviour.htmlBase, .htmlCatalog] {
            let port = try FreePort.next()
            let counter = PageCounter()
            try await DiscoveryHarness.run { h in
                try await withRunningServices([FakeRegistry.application(behaviour, port: port, counter: counter)], readyPorts: [port]) {
                    let ids = try await h.registered("127.0.0.1:\(port)")
                    let crawl = try await h.crawl(ids)
                    #expect(crawl["status"] as? String == "failed")
                    let error = try #require(crawl["error"] as? String)
                    #expect(error.contains("HTML"), "\(error)")
                    #expect(try await h.count("discovery.repositories") == 0)
                    #expect(try await h.count("discovery.tag_history") == 0)
                }
            }
        }
    }

    @Test("a _catalog whose Link points back, or that never ends, fails after a bounded number of pages")
    func endlessCatalog() async throws {
        for (behaviour, expected) in [(FakeRegistry.Behaviour.catalogLinkLoop, "points back"), (.catalogForever, "did not end after 5 pages")] {
            let port = try FreePort.next()
            let counter = PageCounter()
            try await DiscoveryHarness.run(extra: ["GANTRY_DISCOVERY_MAX_PAGES": "5"]) { h in
                try await withRunningServices([FakeRegistry.application(behaviour, port: port, counter: counter)], readyPorts: [port]) {
                    let ids = try await h.registered("127.0.0.1:\(port)")
                    let crawl = try await h.crawl(ids)
                    #expect(crawl["status"] as? String == "failed")
                    let error = try #require(crawl["error"] as? String)
                    #expect(error.contains(expected), "\(error)")
                    #expect(await counter.pages <= 5)
                    #expect(try await h.count("discovery.repositories") == 0)
                }
            }
        }
    }

    @Test("a registry redirecting to the metadata address is refused at the redirect hop")
    func redirectToMetadata() async throws {
        let port = try FreePort.next()
        try await DiscoveryHarness.run { h in
            try await withRunningServices([FakeRegistry.application(.redirectToMetadata, port: port, counter: PageCounter())],
                                          readyPorts: [port]) {
                let ids = try await h.registered("127.0.0.1:\(port)")
                let crawl = try await h.crawl(ids)
                #expect(crawl["status"] as? String == "failed")
                let error = try #require(crawl["error"] as? String)
                #expect(error.contains("169.254.169.254") && error.contains("link-local"), "\(error)")
            }
        }
    }

    @Test("privateNoAccess registries are not applicable: listed with the reason, never crawled; a disabled plan skips the crawl")
    func notApplicableAndDisabled() async throws {
        guard Corpus.isAvailable else { return }
        let registry = try await TestRegistry.start()
        defer { registry.stop() }
        try Skopeo.copy(ociArchive: try Corpus.file("images/alpine-3.7.3.oci.tar"), to: registry.host, repository: "app", tag: "1")
        try await DiscoveryHarness.run { h in
            let ids = try await h.registered(registry.host, networkAccess: "privateNoAccess")
            let listed = try await h.items(h.registriesURL(tenantID: ids.tenant, subscriptionID: ids.subscription))
            #expect(listed.first?["applicable"] as? Bool == false)
            #expect(listed.first?["networkAccess"] as? String == "privateNoAccess")
            #expect((listed.first?["notApplicableReason"] as? String)?.contains("never") == true)
            let token = try await h.env.tokens().token(for: "discovery")
            let access = try await h.lookup(registry.host, token: token).object()
            #expect(access["applicable"] as? Bool == false)
            #expect(access["planEnabled"] as? Bool == true)
            let crawl = try await h.crawl(ids)
            #expect(crawl["status"] as? String == "skipped")
            #expect(try await h.count("discovery.repositories") == 0)

            // A public registry of a disabled plan: lookup says so, the crawl is skipped; enabling resumes.
            let other = try await TestRegistry.start()
            defer { other.stop() }
            try Skopeo.copy(ociArchive: try Corpus.file("images/alpine-3.7.3.oci.tar"), to: other.host, repository: "app", tag: "1")
            let tenant = try await h.createTenant("second")
            let subscription = try await h.createSubscription(tenantID: tenant)
            let created = try await TestHTTP.json(.POST, h.registriesURL(tenantID: tenant, subscriptionID: subscription),
                                                  ["loginServer": other.host, "insecure": true])
            let registryID = try #require(try created.object()["id"] as? String)
            let disabledIDs = (tenant: tenant, subscription: subscription, registry: registryID)
            #expect(try await h.crawl(disabledIDs)["status"] as? String == "skipped")
            #expect(try await h.lookup(other.host, token: token).object()["planEnabled"] as? Bool == false)
            let plan = "\(h.base)/v1/tenants/\(tenant)/subscriptions/\(subscription)/plan"
            #expect(try await TestHTTP.json(.PUT, plan, ["enabled": true]).status == 200)
            #expect(try await h.crawl(disabledIDs)["status"] as? String == "succeeded")
            #expect(try await h.lookup(other.host, token: token).object()["applicable"] as? Bool == true)
            #expect(try await h.count("discovery.repositories") == 1)
        }
    }

    @Test("crawl routes: unknown or foreign registry 404, malformed IDs and repository names 400")
    func crawlRouteErrors() async throws {
        try await DiscoveryHarness.run { h in
            let ids = try await h.registered("127.0.0.1:1")
            let unknown = (tenant: ids.tenant, subscription: ids.subscription, registry: UUID().uuidString.lowercased())
            try expectProblem(try await TestHTTP.send(.POST, "\(h.registryURL(unknown))/crawls"), status: 404)
            try expectProblem(try await TestHTTP.send(.GET, "\(h.registryURL(unknown))/repositories"), status: 404)
            let other = try await h.createTenant("intruder")
            let foreign = (tenant: other, subscription: ids.subscription, registry: ids.registry)
            try expectProblem(try await TestHTTP.send(.GET, "\(h.registryURL(foreign))/crawls"), status: 404)
            try expectProblem(try await TestHTTP.send(.GET, "\(h.base)/v1/tenants/\(ids.tenant)/subscriptions/\(ids.subscription)/registries/nope/crawls"), status: 400)
            try expectProblem(try await TestHTTP.send(.GET, "\(h.registryURL(ids))/tags?repository=Bad..Name"), status: 400)
            try expectProblem(try await TestHTTP.send(.GET, "\(h.registryURL(ids))/crawls?limit=0"), status: 400)
            // A registry that refuses connections: the crawl is recorded as failed, with the reason.
            let crawl = try await h.crawl(ids)
            #expect(crawl["status"] as? String == "failed")
            #expect((crawl["error"] as? String)?.isEmpty == false)
        }
    }

    @Test("a registry with basic auth is crawled with its sealed credentials; a wrong password fails the crawl")
    func crawlWithCredentials() async throws {
        guard Corpus.isAvailable else { return }
        let registry = try await TestRegistry.start(basicAuth: (user: "robot", password: "s3cret-pw"))
        defer { registry.stop() }
        try Skopeo.copy(ociArchive: try Corpus.file("images/alpine-3.7.3.oci.tar"), to: registry.host, repository: "app", tag: "1",
                        credentials: ("robot", "s3cret-pw"))
        try await DiscoveryHarness.run { h in
            let tenant = try await h.createTenant()
            let subscription = try await h.createSubscription(tenantID: tenant)
            _ = try await TestHTTP.json(.PUT, "\(h.base)/v1/tenants/\(tenant)/subscriptions/\(subscription)/plan", ["enabled": true])
            let good = try await TestHTTP.json(.POST, h.registriesURL(tenantID: tenant, subscriptionID: subscription),
                                               ["loginServer": registry.host, "insecure": true,
                                                "credentials": ["username": "robot", "password": "s3cret-pw"]])
            let ids = (tenant: tenant, subscription: subscription, registry: try #require(try good.object()["id"] as? String))
            let crawl = try await h.crawl(ids)
            #expect(crawl["status"] as? String == "succeeded", "\(crawl)")
            #expect(crawl["tags"] as? Int == 1)

            let other = try await h.createSubscription(tenantID: tenant, name: "other")
            _ = try await TestHTTP.json(.PUT, "\(h.base)/v1/tenants/\(tenant)/subscriptions/\(other)/plan", ["enabled": true])
            let bad = try await TestHTTP.json(.POST, h.registriesURL(tenantID: tenant, subscriptionID: other),
                                              ["loginServer": "localhost:\(registry.port)", "insecure": true,
                                               "credentials": ["username": "robot", "password": "wrong"]])
            let badIDs = (tenant: tenant, subscription: other, registry: try #require(try bad.object()["id"] as? String))
            let refused = try await h.crawl(badIDs)
            #expect(refused["status"] as? String == "failed")
            #expect((refused["error"] as? String)?.contains("refused access") == true, "\(refused)")
        }
    }

    @Test("the background crawler crawls a registry when its plan is enabled")
    func backgroundCrawlOnEnable() async throws {
        guard Corpus.isAvailable else { return }
        let registry = try await TestRegistry.start()
        defer { registry.stop() }
        try Skopeo.copy(ociArchive: try Corpus.file("images/alpine-3.7.3.oci.tar"), to: registry.host, repository: "app", tag: "1")
        try await DiscoveryHarness.run(extra: ["GANTRY_DISCOVERY_CRAWL_INTERVAL_SECONDS": "3600",
                                               "GANTRY_DISCOVERY_CRAWL_POLL_MILLISECONDS": "100"]) { h in
            let ids = try await h.registered(registry.host, enablePlan: false)
            try await Task.sleep(for: .milliseconds(500))
            #expect(try await h.count("discovery.crawls") == 0, "no crawl while the plan is disabled")
            let plan = "\(h.base)/v1/tenants/\(ids.tenant)/subscriptions/\(ids.subscription)/plan"
            #expect(try await TestHTTP.json(.PUT, plan, ["enabled": true]).status == 200)
            let repositories = try await eventually("the crawl after enablement") { () -> [[String: Any]]? in
                let items = try await h.items("\(h.registryURL(ids))/repositories")
                return items.isEmpty ? nil : items
            }
            #expect(repositories.first?["name"] as? String == "app")
            let crawls = try await h.items("\(h.registryURL(ids))/crawls")
            #expect(crawls.count == 1, "one crawl, not one per poll: \(crawls)")
        }
    }
}
