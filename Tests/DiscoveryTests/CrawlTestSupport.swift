import AsyncHTTPClient
import Crypto
import Foundation
import GantryTesting
import HTTPTypes
import Hummingbird
import NIOCore
import NIOHTTP1
import Testing

/// A misbehaving "registry" on 127.0.0.1 for the bad-input tests: a real HTTP server answering the
/// distribution API badly in one chosen way.
enum FakeRegistry {
    enum Behaviour: Sendable {
        /// `/v2/` answers a 200 HTML page (a web site or login portal).
        case htmlBase
        /// `/v2/` is fine, `/v2/_catalog` answers HTML.
        case htmlCatalog
        /// Every catalog page links to the same page again.
        case catalogLinkLoop
        /// Every catalog page links to a new page, forever.
        case catalogForever
        /// `/v2/` redirects to the cloud metadata address.
        case redirectToMetadata
        /// `tags/list` of any repository lists t1…t5, `n` per page, with `Link` to the next page (absolute on the
        /// first page, relative after, beside a `prev` link), as the distribution spec's "Listing Tags" describes.
        case pagedTags
        /// A registry with nothing in it: `/v2/_catalog` lists no repository and links no further page.
        case empty
    }

    /// An application serving `behaviour` on `port`, and the number of catalog pages it served.
    static func application(_ behaviour: Behaviour, port: Int, counter: PageCounter) -> some ApplicationProtocol {
        let router = Router()
        router.get("/readyz") { _, _ in HTTPResponse.Status.ok }
        router.get("/v2/") { _, _ -> Response in
            switch behaviour {
            case .htmlBase:
                return html("<html><body>Welcome to our portal</body></html>")
            case .redirectToMetadata:
                return Response(status: .found, headers: [.location: "http://169.254.169.254/latest/meta-data/"])
            default:
                return json("{}")
            }
        }
        router.get("/v2/_catalog") { _, _ -> Response in
            let page = await counter.next()
            switch behaviour {
            case .htmlCatalog:
                return html("<!DOCTYPE html><html><body>Not a catalog</body></html>")
            case .empty:
                return json(#"{"repositories":[]}"#)
            case .catalogLinkLoop:
                var response = json(#"{"repositories":["loop\#(page)"]}"#)
                response.headers[HTTPField.Name("Link")!] = #"</v2/_catalog?last=loop&n=1>; rel="next""#
                return response
            default:
                var response = json(#"{"repositories":["repo\#(page)"]}"#)
                response.headers[HTTPField.Name("Link")!] = #"</v2/_catalog?last=repo\#(page)&n=1>; rel="next""#
                return response
            }
        }
        router.get("/v2/**") { request, _ -> Response in
            guard request.uri.path.hasSuffix("/tags/list") else { return Response(status: .notFound) }
            let name = String(request.uri.path.dropFirst("/v2/".count).dropLast("/tags/list".count))
            guard case .pagedTags = behaviour else { return json(#"{"name":"\#(name)","tags":[]}"#) }
            let all = ["t1", "t2", "t3", "t4", "t5"]
            let n = request.uri.queryParameters.get("n").flatMap { Int($0) } ?? all.count
            let last = request.uri.queryParameters.get("last").map { String($0) }
            let start = last.flatMap { all.firstIndex(of: $0) }.map { $0 + 1 } ?? 0
            let page = Array(all[start..<min(start + n, all.count)])
            let body = try JSONSerialization.data(withJSONObject: ["name": name, "tags": page])
            var response = Response(status: .ok, headers: [.contentType: "application/json"],
                                    body: .init(byteBuffer: ByteBuffer(bytes: Array(body))))
            if start + n < all.count, let lastTag = page.last {
                let next = "/v2/\(name)/tags/list?n=\(n)&last=\(lastTag)"
                let target = last == nil ? "http://127.0.0.1:\(port)\(next)" : next
                response.headers[HTTPField.Name("Link")!] = #"</v2/\#(name)/tags/list?n=\#(n)>; rel="prev", <\#(target)>; rel="next""#
            }
            return response
        }
        return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)))
    }

    static func html(_ text: String) -> Response {
        Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8"],
                 body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    static func json(_ text: String) -> Response {
        Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}

actor PageCounter {
    private(set) var pages = 0
    func next() -> Int {
        pages += 1
        return pages
    }
}

/// Pushes hand-built OCI content (artifacts, encrypted layers) to a registry over the distribution API
/// ("Pushing blobs" POST then PUT; "Pushing Manifests"), as `oras` or `helm push` would.
enum OCIPush {
    static func sha256(_ data: Data) -> String {
        "sha256:" + SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
    }

    /// Uploads a blob; returns its descriptor as JSON.
    static func blob(_ host: String, repository: String, mediaType: String, data: Data) async throws -> [String: Any] {
        let digest = sha256(data)
        var start = HTTPClientRequest(url: "http://\(host)/v2/\(repository)/blobs/uploads/")
        start.method = .POST
        let opened = try await HTTPClient.shared.execute(start, timeout: .seconds(30))
        _ = try await opened.body.collect(upTo: 1 << 20)
        try #require(opened.status == .accepted, "upload start: \(opened.status)")
        let location = try #require(opened.headers.first(name: "Location"))
        let base = location.hasPrefix("http") ? location : "http://\(host)\(location)"
        var put = HTTPClientRequest(url: base + (base.contains("?") ? "&" : "?") + "digest=\(digest)")
        put.method = .PUT
        put.headers.add(name: "Content-Type", value: "application/octet-stream")
        put.body = .bytes(ByteBuffer(bytes: Array(data)))
        let done = try await HTTPClient.shared.execute(put, timeout: .seconds(30))
        _ = try await done.body.collect(upTo: 1 << 20)
        try #require(done.status == .created, "upload: \(done.status)")
        return ["mediaType": mediaType, "digest": digest, "size": data.count]
    }

    /// Pushes an OCI image manifest with the given config and layers under `tag`; returns its digest.
    @discardableResult
    static func manifest(_ host: String, repository: String, tag: String, config: (String, Data),
                         layers: [(String, Data)], artifactType: String? = nil) async throws -> String {
        let configDescriptor = try await blob(host, repository: repository, mediaType: config.0, data: config.1)
        var layerDescriptors: [[String: Any]] = []
        for layer in layers {
            layerDescriptors.append(try await blob(host, repository: repository, mediaType: layer.0, data: layer.1))
        }
        var manifest: [String: Any] = ["schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                                       "config": configDescriptor, "layers": layerDescriptors]
        if let artifactType { manifest["artifactType"] = artifactType }
        let body = try JSONSerialization.data(withJSONObject: manifest, options: [.sortedKeys])
        var put = HTTPClientRequest(url: "http://\(host)/v2/\(repository)/manifests/\(tag)")
        put.method = .PUT
        put.headers.add(name: "Content-Type", value: "application/vnd.oci.image.manifest.v1+json")
        put.body = .bytes(ByteBuffer(bytes: Array(body)))
        let response = try await HTTPClient.shared.execute(put, timeout: .seconds(30))
        let text = String(buffer: try await response.body.collect(upTo: 1 << 20))
        try #require(response.status == .created, "manifest: \(response.status) \(text)")
        return sha256(body)
    }

    /// `DELETE /v2/<name>/manifests/<digest>` ("Deleting Manifests"): removes the manifest and every tag on it.
    static func deleteManifest(_ host: String, repository: String, digest: String) async throws {
        var request = HTTPClientRequest(url: "http://\(host)/v2/\(repository)/manifests/\(digest)")
        request.method = .DELETE
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        _ = try await response.body.collect(upTo: 1 << 20)
        try #require(response.status == .accepted, "delete: \(response.status)")
    }

    /// The digest a tag points to now (`Docker-Content-Digest` of a manifest GET).
    static func digest(_ host: String, repository: String, tag: String) async throws -> String {
        var request = HTTPClientRequest(url: "http://\(host)/v2/\(repository)/manifests/\(tag)")
        request.headers.add(name: "Accept", value: "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json")
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        _ = try await response.body.collect(upTo: 4 << 20)
        return try #require(response.headers.first(name: "Docker-Content-Digest"))
    }
}

extension DiscoveryHarness {
    /// Creates a tenant, a subscription (plan enabled unless told otherwise) and registers `loginServer` over plain HTTP.
    func registered(_ loginServer: String, enablePlan: Bool = true, networkAccess: String = "public",
                    tenantName: String = "acme") async throws -> (tenant: String, subscription: String, registry: String) {
        let tenant = try await createTenant(tenantName)
        let subscription = try await createSubscription(tenantID: tenant)
        if enablePlan {
            let plan = try await TestHTTP.json(.PUT, "\(base)/v1/tenants/\(tenant)/subscriptions/\(subscription)/plan", ["enabled": true])
            try #require(plan.status == 200, "\(plan.text)")
        }
        let reply = try await TestHTTP.json(.POST, registriesURL(tenantID: tenant, subscriptionID: subscription),
                                            ["loginServer": loginServer, "insecure": true, "networkAccess": networkAccess])
        try #require(reply.status == 201, "\(reply.text)")
        return (tenant, subscription, try #require(try reply.object()["id"] as? String))
    }

    func registryURL(_ ids: (tenant: String, subscription: String, registry: String)) -> String {
        "\(base)/v1/tenants/\(ids.tenant)/subscriptions/\(ids.subscription)/registries/\(ids.registry)"
    }

    /// Triggers a crawl and returns the crawl object.
    func crawl(_ ids: (tenant: String, subscription: String, registry: String)) async throws -> [String: Any] {
        let reply = try await TestHTTP.send(.POST, "\(registryURL(ids))/crawls")
        try #require(reply.status == 200, "\(reply.text)")
        return try reply.object()
    }

    func items(_ url: String) async throws -> [[String: Any]] {
        let reply = try await TestHTTP.send(.GET, url)
        try #require(reply.status == 200, "\(reply.text)")
        return try #require(try reply.object()["items"] as? [[String: Any]])
    }
}
