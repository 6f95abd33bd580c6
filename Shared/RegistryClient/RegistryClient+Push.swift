import AsyncHTTPClient
import Foundation
import GantryModel
import Logging
import NIOCore
import NIOHTTP1

/// The push side of the OCI Distribution Specification v1.1 ("Pushing blobs", "Mounting a blob from
/// another repository", "Pushing Manifests"), with the same authorization (a 401 challenge answered with
/// Basic or a bearer token for `repository:<name>:pull,push`), retry and size rules as the pull side.
extension RegistryClient {
    /// How a blob reached the target repository.
    public enum BlobTransfer: String, Sendable {
        /// The target already had it (`HEAD` answered 200); nothing was sent.
        case skipped
        /// Mounted from another repository of the same registry; nothing was sent.
        case mounted
        /// Its bytes were streamed from the source and uploaded.
        case copied
    }

    /// `HEAD /v2/<name>/blobs/<digest>` ("Checking if content exists in the registry").
    /// - Returns: the blob's size in bytes (from `Content-Length`, -1 when absent) when it exists, nil on 404.
    /// - Throws: `RegistryError.unauthorized`, `.http`, `.transport`, `.invalidReference`.
    public func blobSize(_ endpoint: RegistryEndpoint, repository: String, digest: Digest) async throws -> Int64? {
        try ReferenceGrammar.validateRepository(repository)
        let url = "\(endpoint.base)/v2/\(repository)/blobs/\(digest)"
        do {
            let response = try await send(.HEAD, url, endpoint: endpoint, scope: Self.pushScope(repository),
                                          headers: [:], body: nil, expect: [200])
            return response.headers.first(name: "Content-Length").flatMap(Int64.init) ?? -1
        } catch RegistryError.notFound {
            return nil
        }
    }

    /// Mounts a blob from another repository of the same registry: `POST /v2/<name>/blobs/uploads/?mount=
    /// <digest>&from=<other>` ("Mounting a blob from another repository").
    /// - Returns: true when mounted (201); false when the registry declined and opened an upload instead
    ///   (202, which is cancelled here so that it does not linger; the caller then copies the bytes).
    /// - Throws: `RegistryError.unauthorized`, `.http`, `.transport`, `.invalidReference`.
    public func mountBlob(_ endpoint: RegistryEndpoint, repository: String, digest: Digest,
                          from source: String) async throws -> Bool {
        try ReferenceGrammar.validateRepository(repository)
        try ReferenceGrammar.validateRepository(source)
        let url = "\(endpoint.base)/v2/\(repository)/blobs/uploads/?mount=\(digest)&from=\(source)"
        // The token must allow pulling from the source repository too.
        let scope = Self.pushScope(repository) + " " + Self.pullScope(source)
        let response = try await send(.POST, url, endpoint: endpoint, scope: scope, headers: ["Content-Length": "0"],
                                      body: .bytes([]), expect: [201, 202])
        await discard(response)
        if response.status.code == 201 { return true }
        if let location = response.headers.first(name: "Location"), let upload = Self.resolve(location, against: url) {
            _ = try? await send(.DELETE, upload, endpoint: endpoint, scope: scope, headers: [:], body: nil,
                                expect: [200, 202, 204, 404])
        }
        return false
    }

    /// Streams a blob from one registry into another without holding it in memory: `GET` from the
    /// source, then a monolithic upload to the target (`POST /v2/<name>/blobs/uploads/`, then `PUT
    /// <location>?digest=<digest>` with `Content-Length` = the descriptor's size, distribution spec
    /// "Pushing a blob monolithically"). The target registry checks the digest of what it received
    /// (answering `DIGEST_INVALID` otherwise) and the declared length bounds what is sent.
    ///
    /// - Returns: the number of bytes uploaded (`descriptor.size`).
    /// - Throws: `RegistryError.tooLarge` beyond `limits.maxBlobBytes` or when the source announces more
    ///   than the descriptor; `.notFound` when the source lacks the blob; `.http` when the target refuses
    ///   it (a digest mismatch included); `.unauthorized`, `.transport` from either exchange.
    @discardableResult
    public func copyBlob(from source: RegistryEndpoint, repository sourceRepository: String,
                         to target: RegistryEndpoint, repository targetRepository: String,
                         descriptor: Descriptor) async throws -> Int64 {
        try ReferenceGrammar.validateRepository(sourceRepository)
        try ReferenceGrammar.validateRepository(targetRepository)
        let what = "blob \(sourceRepository)@\(descriptor.digest)"
        guard descriptor.size >= 0 else { throw RegistryError.malformed("\(what) has a negative size in its descriptor") }
        guard descriptor.size <= limits.maxBlobBytes else {
            throw RegistryError.tooLarge(what: "\(what) (RegistryLimits.maxBlobBytes)", actual: descriptor.size,
                                         limit: limits.maxBlobBytes, unit: "bytes")
        }
        // The upload session first: its 401 (if any) is answered before a one-shot body is on the wire.
        let start = "\(target.base)/v2/\(targetRepository)/blobs/uploads/"
        let opened = try await send(.POST, start, endpoint: target, scope: Self.pushScope(targetRepository),
                                    headers: ["Content-Length": "0"], body: .bytes([]), expect: [202])
        await discard(opened)
        guard let location = opened.headers.first(name: "Location"), let upload = Self.resolve(location, against: start) else {
            throw RegistryError.malformed("the upload session at \(start) came without a usable Location header")
        }
        let sourceURL = "\(source.base)/v2/\(sourceRepository)/blobs/\(descriptor.digest)"
        let response = try await get(sourceURL, endpoint: source, scope: Self.pullScope(sourceRepository), accept: [],
                                     timeout: limits.blobTimeout)
        if let length = response.headers.first(name: "Content-Length").flatMap(Int64.init), length != descriptor.size {
            throw RegistryError.malformed("\(what) is served with Content-Length \(length); its descriptor says \(descriptor.size)")
        }
        let separator = upload.contains("?") ? "&" : "?"
        let put = "\(upload)\(separator)digest=\(descriptor.digest)"
        logger.debug("uploading blob", metadata: ["url": "\(put)", "size": "\(descriptor.size)"])
        let done = try await send(.PUT, put, endpoint: target, scope: Self.pushScope(targetRepository),
                                  headers: ["Content-Type": "application/octet-stream"],
                                  body: .stream(.stream(response.body, length: .known(descriptor.size))),
                                  expect: [201], timeout: limits.blobTimeout)
        await discard(done)
        return descriptor.size
    }

    /// Brings one blob into `targetRepository` the cheapest way: nothing when it is there already, a mount
    /// when source and target are the same registry, else a streamed copy.
    /// - Returns: what was done and the bytes sent (0 unless copied).
    /// - Throws: what `blobSize`, `mountBlob` and `copyBlob` throw.
    public func transferBlob(from source: RegistryEndpoint, repository sourceRepository: String,
                             to target: RegistryEndpoint, repository targetRepository: String,
                             descriptor: Descriptor) async throws -> (BlobTransfer, Int64) {
        if try await blobSize(target, repository: targetRepository, digest: descriptor.digest) != nil {
            return (.skipped, 0)
        }
        if source.origin == target.origin,
           try await mountBlob(target, repository: targetRepository, digest: descriptor.digest, from: sourceRepository) {
            return (.mounted, 0)
        }
        let bytes = try await copyBlob(from: source, repository: sourceRepository, to: target, repository: targetRepository,
                                       descriptor: descriptor)
        return (.copied, bytes)
    }

    /// `PUT /v2/<name>/manifests/<reference>` with the exact bytes and media type ("Pushing Manifests"), so
    /// the digest is preserved. Push an index's manifests (by digest) before the index.
    /// - Returns: the digest of `manifest.bytes`.
    /// - Throws: `RegistryError.digestMismatch` when the registry's `Docker-Content-Digest` differs;
    ///   `.http` when it refuses the manifest (for example `MANIFEST_BLOB_UNKNOWN`); `.invalidReference`,
    ///   `.unauthorized`, `.transport`.
    @discardableResult
    public func putManifest(_ endpoint: RegistryEndpoint, repository: String, reference: String,
                            manifest: FetchedManifest) async throws -> Digest {
        try ReferenceGrammar.validateRepository(repository)
        _ = try ReferenceGrammar.parseReference(reference)
        let url = "\(endpoint.base)/v2/\(repository)/manifests/\(reference)"
        let response = try await send(.PUT, url, endpoint: endpoint, scope: Self.pushScope(repository),
                                      headers: ["Content-Type": manifest.mediaType], body: .bytes(manifest.bytes),
                                      expect: [201])
        await discard(response)
        let actual = try ContentHasher.digest(of: manifest.bytes, algorithm: manifest.digest.algorithm)
        if let header = response.headers.first(name: "Docker-Content-Digest"),
           let announced = try? Digest(parsing: header.trimmingCharacters(in: .whitespaces)), announced != actual {
            throw RegistryError.digestMismatch(expected: actual, actual: announced)
        }
        return actual
    }

    /// `repository:<name>:pull,push` (Token Authentication Specification, "Scope").
    static func pushScope(_ repository: String) -> String { "repository:\(repository):pull,push" }

    /// A request body: bytes can be sent again (after a 401 or a busy answer); a stream only once.
    enum PushBody {
        case bytes([UInt8])
        case stream(HTTPClientRequest.Body)
    }

    /// One push-side exchange with the registry's authorization and retry rules (see `get`): a 401 from the
    /// registry is answered once from its challenge, 429/502/503/504 and broken connections are retried with
    /// backoff while the body can be sent again. Redirects are not followed (registries do not redirect
    /// uploads or manifest puts).
    /// - Returns: the response with its body unread when its status is in `expect`.
    /// - Throws: `.notFound` on 404 (unless expected), `.unauthorized` on 401/403, `.http` otherwise.
    func send(_ method: HTTPMethod, _ url: String, endpoint: RegistryEndpoint, scope: String, headers: [String: String],
              body: PushBody?, expect: Set<Int>, timeout: Duration? = nil) async throws -> HTTPClientResponse {
        let cacheKey = AuthorizationCache.key(origin: endpoint.origin, scope: scope, username: endpoint.credentials?.username)
        var authorization = await authorizations.value(for: cacheKey)
        var authorized = false
        var attempt = 0
        var streamSent = false
        while true {
            var request = HTTPClientRequest(url: url)
            request.method = method
            for (name, value) in headers { request.headers.replaceOrAdd(name: name, value: value) }
            if let authorization { request.headers.add(name: "Authorization", value: authorization) }
            switch body {
            case .bytes(let bytes)?:
                request.body = .bytes(ByteBuffer(bytes: bytes))
                request.headers.replaceOrAdd(name: "Content-Length", value: "\(bytes.count)")
            case .stream(let stream)?:
                guard !streamSent else {
                    throw RegistryError.http(status: 0, url: url, bodyExcerpt: "a streamed upload cannot be sent twice")
                }
                streamSent = true
                request.body = stream
            case nil:
                break
            }
            let replayable: Bool = if case .stream = body { false } else { true }
            // SSRF guard (when set) and, with pinned clients, a connection to the approved address only.
            let client = try connection(for: url)
            let response: HTTPClientResponse
            do {
                response = try await client.execute(request, timeout: Self.timeAmount(timeout ?? limits.requestTimeout),
                                                    logger: logger)
            } catch let error as HTTPClientError
                        where replayable && [.remoteConnectionClosed, .readTimeout, .writeTimeout].contains(error)
                            && attempt < limits.maxRetries {
                let delay = backoff(attempt: attempt, retryAfter: nil)
                logger.info("registry connection failed, retrying", metadata: ["url": "\(url)", "error": "\(error)"])
                try await Task.sleep(for: delay)
                attempt += 1
                continue
            } catch is CancellationError {
                throw CancellationError()
            } catch let error as RegistryError {
                throw error
            } catch {
                throw RegistryError.classifyTransport(url: url, error: error)
            }
            let status = Int(response.status.code)
            if expect.contains(status) { return response }
            switch status {
            case 401 where !authorized && replayable:
                await discard(response)
                if authorization != nil { await authorizations.remove(cacheKey) }
                authorization = try await authorize(challenges: response.headers["WWW-Authenticate"], endpoint: endpoint,
                                                    scope: scope, url: url, cacheKey: cacheKey)
                authorized = true
            case 401, 403:
                let excerpt = await bodyExcerpt(response)
                throw RegistryError.unauthorized(
                    url: url, detail: "HTTP \(status) " + (endpoint.credentials == nil ? "without credentials" : "with the configured credentials")
                        + (excerpt.isEmpty ? "" : ": \(excerpt)"))
            case _ where [429, 502, 503, 504].contains(status) && replayable && attempt < limits.maxRetries:
                await discard(response)
                let delay = backoff(attempt: attempt, retryAfter: response.headers.first(name: "Retry-After"))
                logger.info("registry busy, retrying", metadata: ["url": "\(url)", "status": "\(status)", "delay": "\(delay)"])
                try await Task.sleep(for: delay)
                attempt += 1
            case 404:
                throw RegistryError.notFound(url: url, detail: method == .HEAD ? "" : await bodyExcerpt(response))
            default:
                throw RegistryError.http(status: status, url: url, bodyExcerpt: method == .HEAD ? "" : await bodyExcerpt(response))
            }
        }
    }

    /// An upload `Location` (absolute, or relative to the registry as distribution sends it) as an absolute URL.
    static func resolve(_ location: String, against url: String) -> String? {
        guard let resolved = URL(string: location, relativeTo: URL(string: url))?.absoluteURL,
              resolved.scheme == "http" || resolved.scheme == "https" else { return nil }
        return resolved.absoluteString
    }
}
