import AsyncHTTPClient
import GantryModel
import Foundation
import NIOCore
import NIOHTTP1

/// One page of a paginated listing: the names on it and the URL of the next page, if any.
public struct ListingPage: Sendable, Hashable {
    /// Repository names (`_catalog`) or tags (`tags/list`), in the registry's order.
    public var names: [String]
    /// The absolute URL of the next page from the `Link: <…>; rel="next"` header (RFC 8288), nil on the last page.
    public var next: String?

    public init(names: [String], next: String?) {
        self.names = names
        self.next = next
    }
}

extension RegistryClient {
    /// `GET /v2/` (distribution spec, "Determining support"): succeeds when the endpoint answers as a
    /// registry (after authentication).
    /// - Throws: `RegistryError.malformed` when it answers an HTML page (a web site, a login portal); what `get` throws.
    public func ping(_ endpoint: RegistryEndpoint) async throws {
        let url = "\(endpoint.base)/v2/"
        let response = try await get(url, endpoint: endpoint, scope: "", accept: ["application/json"],
                                     timeout: limits.requestTimeout)
        let type = response.headers.first(name: "Content-Type")?.lowercased() ?? ""
        await discard(response)
        if type.contains("html") {
            throw RegistryError.malformed("\(url) answered an HTML page (\(type.prefix(100))), not the registry API: is this a registry?")
        }
    }

    /// One page of `GET /v2/_catalog?n=<pageSize>` (distribution spec, "Listing Repositories"); pass the previous
    /// page's `next` as `url` to continue.
    ///
    /// - Parameters:
    ///   - url: nil for the first page; else a `next` URL, which must be on the registry's origin.
    ///   - pageSize: `n`, or nil to let the registry choose.
    /// - Throws: `RegistryError.malformed` for HTML, JSON without `repositories`, or a `next` link to another origin;
    ///   `.tooLarge` beyond `limits.maxManifestBytes`; what `get` throws.
    public func catalogPage(_ endpoint: RegistryEndpoint, url: String? = nil, pageSize: Int? = nil) async throws -> ListingPage {
        struct Catalog: Decodable { var repositories: [String]? }
        let start = url ?? "\(endpoint.base)/v2/_catalog" + (pageSize.map { "?n=\($0)" } ?? "")
        let (body, next) = try await listing(endpoint, url: start, scope: "registry:catalog:*", what: "the catalog")
        guard let repositories = try Self.decode(Catalog.self, from: body, what: "the catalog at \(start)").repositories else {
            throw RegistryError.malformed("the catalog at \(start) has no 'repositories' array")
        }
        return ListingPage(names: repositories, next: next)
    }

    /// One page of `GET /v2/<name>/tags/list?n=<pageSize>` (distribution spec, "Listing Tags").
    /// - Throws: `RegistryError.invalidReference` for a bad name; otherwise as `catalogPage`. A `null` tag list is empty.
    public func tagsPage(_ endpoint: RegistryEndpoint, repository: String, url: String? = nil,
                         pageSize: Int? = nil) async throws -> ListingPage {
        try ReferenceGrammar.validateRepository(repository)
        struct Tags: Decodable { var tags: [String]? }
        let start = url ?? "\(endpoint.base)/v2/\(repository)/tags/list" + (pageSize.map { "?n=\($0)" } ?? "")
        let (body, next) = try await listing(endpoint, url: start, scope: Self.pullScope(repository),
                                             what: "the tag list of \(repository)")
        return ListingPage(names: try Self.decode(Tags.self, from: body, what: "the tag list at \(start)").tags ?? [], next: next)
    }

    /// GETs one listing page and its `next` link.
    func listing(_ endpoint: RegistryEndpoint, url: String, scope: String, what: String) async throws -> ([UInt8], String?) {
        guard URL(string: url).map(RegistryEndpoint.origin(of:)) == endpoint.origin else {
            throw RegistryError.malformed("\(what): the next page \(url.prefix(300)) is not on the registry \(endpoint.base)")
        }
        let response = try await get(url, endpoint: endpoint, scope: scope, accept: ["application/json"],
                                     timeout: limits.requestTimeout)
        let type = response.headers.first(name: "Content-Type")?.lowercased() ?? ""
        if type.contains("html") {
            await discard(response)
            throw RegistryError.malformed("\(what) at \(url) is an HTML page (\(type.prefix(100))), not the registry's JSON listing")
        }
        let body = try await readBody(response, limit: limits.maxManifestBytes, what: what,
                                      limitName: "RegistryLimits.maxManifestBytes")
        let next = Self.nextLink(response.headers["Link"], relativeTo: url)
        if let next, URL(string: next).map(RegistryEndpoint.origin(of:)) != endpoint.origin {
            throw RegistryError.malformed("\(what): the Link header points to \(next.prefix(300)), outside the registry \(endpoint.base)")
        }
        return (body, next)
    }

    /// The `rel="next"` target of `Link` header values (RFC 8288 §3: `<URI-Reference>; rel="next"`, several links
    /// comma-separated), resolved against `base`; nil when there is none.
    public static func nextLink(_ values: [String], relativeTo base: String) -> String? {
        for value in values {
            var rest = Substring(value)
            while let open = rest.firstIndex(of: "<"), let close = rest[open...].firstIndex(of: ">") {
                let target = rest[rest.index(after: open)..<close]
                let paramsEnd = rest[close...].dropFirst().firstIndex(of: "<") ?? rest.endIndex
                let parameters = rest[rest.index(after: close)..<paramsEnd]
                let isNext = parameters.split(separator: ";").contains { parameter in
                    let pair = parameter.split(separator: "=", maxSplits: 1)
                    guard pair.count == 2, pair[0].trimmingCharacters(in: .whitespaces).lowercased() == "rel" else { return false }
                    let relations = pair[1].trimmingCharacters(in: CharacterSet(charactersIn: " \",")).lowercased()
                    return relations.split(separator: " ").contains("next")
                }
                if isNext, let url = URL(string: String(target), relativeTo: URL(string: base))?.absoluteURL {
                    return url.absoluteString
                }
                rest = rest[paramsEnd...]
            }
        }
        return nil
    }
}

extension RegistryClient {
    /// `GET /v2/<name>/manifests/<reference>` accepting whatever the registry holds there, for inventories: unlike
    /// `manifest`, a Docker schema 1 manifest or an unknown media type is returned (its media type says which)
    /// rather than refused, so that it can be listed with its digest and classified.
    ///
    /// - Returns: the body; its media type (`Content-Type`, else the body's `mediaType` or shape, else the declared
    ///   type); the digest from `Docker-Content-Digest` when present and valid for the bytes (schema 1 signed
    ///   manifests hash differently), else the requested digest, else sha256 of the bytes.
    /// - Throws: `.digestMismatch` when a digest reference does not match; `.tooLarge`; what `get` throws.
    public func anyManifest(_ endpoint: RegistryEndpoint, repository: String, reference: String) async throws -> FetchedManifest {
        try ReferenceGrammar.validateRepository(repository)
        let referenceDigest = try ReferenceGrammar.parseReference(reference)
        let url = "\(endpoint.base)/v2/\(repository)/manifests/\(reference)"
        let response = try await get(url, endpoint: endpoint, scope: Self.pullScope(repository),
                                     accept: MediaType.acceptedManifests, timeout: limits.requestTimeout)
        let what = "manifest \(repository):\(reference)"
        let bytes = try await readBody(response, limit: limits.maxManifestBytes, what: what,
                                       limitName: "RegistryLimits.maxManifestBytes")
        let declared = response.headers.first(name: "Content-Type")
        let mediaType = (try? Self.mediaType(contentType: declared, body: bytes, what: what))
            ?? declared?.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            ?? "application/octet-stream"
        if let referenceDigest {
            let actual = try ContentHasher.digest(of: bytes, algorithm: referenceDigest.algorithm)
            if actual == referenceDigest || MediaType.isSchema1(mediaType) {
                return FetchedManifest(bytes: bytes, mediaType: mediaType, digest: referenceDigest)
            }
            throw RegistryError.digestMismatch(expected: referenceDigest, actual: actual)
        }
        if let header = response.headers.first(name: "Docker-Content-Digest"),
           let announced = try? Digest(parsing: header.trimmingCharacters(in: .whitespaces)) {
            let actual = try ContentHasher.digest(of: bytes, algorithm: announced.algorithm)
            // Schema 1 signed manifests are hashed without their signatures: trust the header for them only.
            if actual == announced || MediaType.isSchema1(mediaType) {
                return FetchedManifest(bytes: bytes, mediaType: mediaType, digest: announced)
            }
            throw RegistryError.digestMismatch(expected: announced, actual: actual)
        }
        return FetchedManifest(bytes: bytes, mediaType: mediaType, digest: try ContentHasher.digest(of: bytes))
    }
}
