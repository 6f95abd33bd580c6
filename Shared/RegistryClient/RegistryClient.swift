import AsyncHTTPClient
import Foundation
import GantryModel
import Logging
import NIOCore
import NIOHTTP1

/// A pull client for the OCI Distribution Specification v1.1 (the Docker Registry HTTP API V2):
/// manifests, indexes, blobs and image configs, with every byte checked against its digest.
///
/// Authentication follows the registry's 401 challenge: anonymous first, then HTTP Basic
/// (RFC 7617) or a bearer token (Distribution "Token Authentication Specification"), cached per
/// registry, repository scope and user. Sizes are bounded by `RegistryLimits`.
///
/// Give it an `HTTPClient` configured with `redirectConfiguration: .disallow`: the client then
/// follows redirects itself and keeps registry credentials away from other hosts (AsyncHTTPClient's
/// own redirect handling forwards the `Authorization` header).
///
/// Services reaching tenant-supplied registries use `init(pinnedClients:)`: every request then connects to an
/// address the SSRF guard approved for that very request (DNS rebinding defence, see `PinnedHTTPClients`).
public final class RegistryClient: Sendable {
    let httpClient: HTTPClient?
    let pinnedClients: PinnedHTTPClients?
    /// The bounds this client enforces.
    public let limits: RegistryLimits
    let logger: Logger
    let authorizations = AuthorizationCache()
    /// When set, every request URL (start, each redirect hop, token realm) is checked before it is sent.
    public let addressGuard: AddressGuard?

    /// - Parameters:
    ///   - httpClient: shared, owned and shut down by the caller.
    ///   - limits: size, retry and timeout bounds.
    ///   - logger: requests at `debug`, retries at `info`.
    ///   - addressGuard: the SSRF guard; a refused URL throws `AddressRefusal` before any byte is sent. The
    ///     connection resolves the name again (not pinned): use `init(pinnedClients:)` for untrusted hosts.
    public init(httpClient: HTTPClient, limits: RegistryLimits = .init(), logger: Logger, addressGuard: AddressGuard? = nil) {
        self.httpClient = httpClient
        self.pinnedClients = nil
        self.limits = limits
        self.logger = logger
        self.addressGuard = addressGuard
    }

    /// A client whose every request (start, redirect hop, token realm) is checked by `pinnedClients.addressGuard`
    /// and sent over a connection to exactly the address the guard approved.
    /// - Parameter pinnedClients: owned and shut down by the caller; configured with `redirectConfiguration: .disallow`.
    public init(pinnedClients: PinnedHTTPClients, limits: RegistryLimits = .init(), logger: Logger) {
        self.httpClient = nil
        self.pinnedClients = pinnedClients
        self.limits = limits
        self.logger = logger
        self.addressGuard = pinnedClients.addressGuard
    }

    /// The client to send a request to `url` with, after the SSRF guard (when set) approved it.
    /// - Throws: `AddressRefusal`; `PinnedHTTPClients.ShutDown`.
    func connection(for url: String) throws -> HTTPClient {
        if let pinnedClients { return try pinnedClients.client(for: url) }
        try addressGuard?.check(url)
        // One of the two is always set by the initialisers.
        return httpClient ?? HTTPClient.shared
    }

    /// Fetches a manifest or index: `GET /v2/<name>/manifests/<reference>` (distribution spec,
    /// "Pulling manifests") with `Accept` listing OCI manifest and index, Docker schema 2 manifest and
    /// manifest list, and Docker schema 1 (only so that it can be rejected by name).
    ///
    /// - Parameters:
    ///   - repository: the name, for example `library/alpine`.
    ///   - reference: a tag (`3.7`) or a digest (`sha256:…`).
    /// - Returns: the body byte for byte, its media type and digest.
    /// - Throws: `RegistryError.invalidReference` for a bad name or reference; `.unsupportedMediaType`
    ///   for schema 1 or a non-manifest; `.digestMismatch` when the bytes do not hash to the digest
    ///   reference or to `Docker-Content-Digest`; `.tooLarge` beyond `limits.maxManifestBytes`;
    ///   `.notFound`, `.unauthorized`, `.http`, `.transport` from the exchange.
    public func manifest(_ endpoint: RegistryEndpoint, repository: String, reference: String) async throws -> FetchedManifest {
        try ReferenceGrammar.validateRepository(repository)
        let referenceDigest = try ReferenceGrammar.parseReference(reference)
        let url = "\(endpoint.base)/v2/\(repository)/manifests/\(reference)"
        logger.debug("fetching manifest", metadata: ["url": "\(url)"])
        let response = try await get(url, endpoint: endpoint, scope: Self.pullScope(repository),
                                     accept: MediaType.acceptedManifests, timeout: limits.requestTimeout)
        let what = "manifest \(repository):\(reference)"
        let bytes = try await readBody(response, limit: limits.maxManifestBytes, what: what,
                                       limitName: "RegistryLimits.maxManifestBytes")
        let mediaType = try Self.mediaType(contentType: response.headers.first(name: "Content-Type"), body: bytes, what: what)
        if MediaType.isSchema1(mediaType) {
            throw RegistryError.unsupportedMediaType(
                "\(what) is a Docker schema 1 manifest (\(mediaType)), deprecated and not supported; push the image again with a current client to convert it")
        }
        guard MediaType.isImageManifest(mediaType) || MediaType.isIndex(mediaType) else {
            throw RegistryError.unsupportedMediaType("\(what) has media type '\(mediaType.prefix(200))', which is neither an image manifest nor an index")
        }
        if let referenceDigest {
            let actual = try ContentHasher.digest(of: bytes, algorithm: referenceDigest.algorithm)
            guard actual == referenceDigest else { throw RegistryError.digestMismatch(expected: referenceDigest, actual: actual) }
        }
        if let header = response.headers.first(name: "Docker-Content-Digest") {
            let announced: Digest
            do {
                announced = try Digest(parsing: header.trimmingCharacters(in: .whitespaces))
            } catch {
                throw RegistryError.malformed("Docker-Content-Digest '\(header.prefix(200))' for \(what) is not a digest")
            }
            let actual = try ContentHasher.digest(of: bytes, algorithm: announced.algorithm)
            guard actual == announced else { throw RegistryError.digestMismatch(expected: announced, actual: actual) }
        }
        let digest = try referenceDigest ?? ContentHasher.digest(of: bytes)
        return FetchedManifest(bytes: bytes, mediaType: mediaType, digest: digest)
    }

    /// Resolves a reference to one platform's image manifest (image-spec `image-index.md`): when the
    /// reference names an index or manifest list, picks the entry for `platform` (never an
    /// attestation entry) and fetches that manifest by digest.
    ///
    /// - Parameter platform: defaults to `linux/amd64`; a variant is matched only when given.
    /// - Returns: the parsed manifest, the digest that was asked for, and the chosen manifest's digest.
    /// - Throws: everything `manifest` throws; `.platformNotFound`; `.tooLarge` beyond
    ///   `limits.maxLayers`; `.unsupportedMediaType` for a nested index or an artifact whose config is
    ///   not an image configuration; `.malformed` for JSON that is not a manifest or index.
    public func resolveImage(_ endpoint: RegistryEndpoint, repository: String, reference: String,
                             platform: Platform = .linuxAMD64) async throws -> ResolvedImage {
        let top = try await manifest(endpoint, repository: repository, reference: reference)
        var chosen = top
        var chosenPlatform: Platform?
        if top.isIndex {
            let index = try Self.decode(ImageIndex.self, from: top.bytes, what: "index \(repository)@\(top.digest)")
            let entry = try index.manifest(for: platform)
            guard MediaType.isImageManifest(entry.mediaType) else {
                throw RegistryError.unsupportedMediaType(
                    "the \(platform) entry of index \(repository)@\(top.digest) is '\(entry.mediaType.prefix(200))', not an image manifest")
            }
            guard entry.size <= Int64(limits.maxManifestBytes) else {
                throw RegistryError.tooLarge(what: "manifest \(repository)@\(entry.digest) (RegistryLimits.maxManifestBytes)",
                                             actual: entry.size, limit: Int64(limits.maxManifestBytes), unit: "bytes")
            }
            chosen = try await manifest(endpoint, repository: repository, reference: entry.digest.description)
            guard !chosen.isIndex else {
                throw RegistryError.unsupportedMediaType("index \(repository)@\(top.digest) points to another index for \(platform)")
            }
            chosenPlatform = entry.platform
        }
        let manifest = try Self.imageManifest(from: chosen.bytes, what: "manifest \(repository)@\(chosen.digest)",
                                              limits: limits)
        return ResolvedImage(repository: repository, requestedDigest: top.digest, requestedMediaType: top.mediaType,
                             manifestDigest: chosen.digest, manifestMediaType: chosen.mediaType, manifest: manifest,
                             platform: chosenPlatform)
    }

    /// Fetches a blob into memory: `GET /v2/<name>/blobs/<digest>` (distribution spec, "Pulling
    /// blobs"), following redirects, hashing while streaming.
    ///
    /// - Returns: exactly `descriptor.size` bytes whose digest is `descriptor.digest`.
    /// - Throws: `RegistryError.tooLarge` when the descriptor exceeds `limits.maxBlobBytes` or the
    ///   registry sends more than `descriptor.size`; `.digestMismatch(expected:actual:)` when the
    ///   content hashes differently; `.malformed` when it ends short; `.notFound` and others from
    ///   the exchange.
    public func blob(_ endpoint: RegistryEndpoint, repository: String, descriptor: Descriptor) async throws -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Int(min(max(descriptor.size, 0), 64 << 20)))
        try await streamBlob(endpoint, repository: repository, descriptor: descriptor) { buffer in
            bytes.append(contentsOf: buffer.readableBytesView)
        }
        return bytes
    }

    /// Fetches a blob into a file (created or truncated), for layers too large to hold in memory;
    /// the same checks as `blob`. The file is removed when any check fails.
    public func downloadBlob(_ endpoint: RegistryEndpoint, repository: String, descriptor: Descriptor,
                             to file: URL) async throws {
        guard FileManager.default.createFile(atPath: file.path, contents: nil) else {
            throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: file.path])
        }
        let handle = try FileHandle(forWritingTo: file)
        do {
            try await streamBlob(endpoint, repository: repository, descriptor: descriptor) { buffer in
                try buffer.withUnsafeReadableBytes { try handle.write(contentsOf: $0) }
            }
            try handle.close()
        } catch {
            try? handle.close()
            try? FileManager.default.removeItem(at: file)
            throw error
        }
    }

    /// Fetches and parses an image configuration blob (image-spec `config.md`).
    /// - Throws: `.unsupportedMediaType` when the descriptor is not an image config; `.tooLarge`
    ///   beyond `limits.maxManifestBytes`; `.malformed` for JSON without os, architecture and
    ///   rootfs; everything `blob` throws.
    public func config(_ endpoint: RegistryEndpoint, repository: String, descriptor: Descriptor) async throws -> ImageConfig {
        guard MediaType.isImageConfig(descriptor.mediaType) else {
            throw RegistryError.unsupportedMediaType("config \(descriptor.digest) has media type '\(descriptor.mediaType.prefix(200))', not an image configuration")
        }
        // Configs are JSON documents like manifests; the manifest bound keeps a hostile one small.
        guard descriptor.size <= Int64(limits.maxManifestBytes) else {
            throw RegistryError.tooLarge(what: "config \(repository)@\(descriptor.digest) (RegistryLimits.maxManifestBytes)",
                                         actual: descriptor.size, limit: Int64(limits.maxManifestBytes), unit: "bytes")
        }
        let bytes = try await blob(endpoint, repository: repository, descriptor: descriptor)
        return try Self.decode(ImageConfig.self, from: bytes, what: "config \(repository)@\(descriptor.digest)")
    }

    /// The configuration of a resolved image.
    public func config(_ endpoint: RegistryEndpoint, image: ResolvedImage) async throws -> ImageConfig {
        try await config(endpoint, repository: image.repository, descriptor: image.manifest.config)
    }

    /// Streams a blob through `sink`, enforcing size and digest.
    func streamBlob(_ endpoint: RegistryEndpoint, repository: String, descriptor: Descriptor,
                    sink: (ByteBuffer) async throws -> Void) async throws {
        try ReferenceGrammar.validateRepository(repository)
        let what = "blob \(repository)@\(descriptor.digest)"
        guard descriptor.size >= 0 else { throw RegistryError.malformed("\(what) has a negative size in its descriptor") }
        guard descriptor.size <= limits.maxBlobBytes else {
            throw RegistryError.tooLarge(what: "\(what) (RegistryLimits.maxBlobBytes)", actual: descriptor.size,
                                         limit: limits.maxBlobBytes, unit: "bytes")
        }
        let url = "\(endpoint.base)/v2/\(repository)/blobs/\(descriptor.digest)"
        logger.debug("fetching blob", metadata: ["url": "\(url)", "size": "\(descriptor.size)"])
        let response = try await get(url, endpoint: endpoint, scope: Self.pullScope(repository), accept: [],
                                     timeout: limits.blobTimeout)
        let sizeWhat = "\(what), whose descriptor says \(descriptor.size) bytes,"
        if let length = response.headers.first(name: "Content-Length").flatMap(Int64.init), length > descriptor.size {
            throw RegistryError.tooLarge(what: sizeWhat, actual: length, limit: descriptor.size, unit: "bytes")
        }
        var hasher = ContentHasher(algorithm: descriptor.digest.algorithm)
        var received: Int64 = 0
        for try await buffer in response.body {
            received += Int64(buffer.readableBytes)
            guard received <= descriptor.size else {
                throw RegistryError.tooLarge(what: sizeWhat, actual: received, limit: descriptor.size, unit: "bytes")
            }
            buffer.withUnsafeReadableBytes { hasher.update($0) }
            try await sink(buffer)
        }
        guard received == descriptor.size else {
            throw RegistryError.malformed("\(what) ended after \(received) bytes; its descriptor says \(descriptor.size)")
        }
        let actual = try hasher.finalize()
        guard actual == descriptor.digest else {
            throw RegistryError.digestMismatch(expected: descriptor.digest, actual: actual)
        }
    }

    /// Parses an image manifest and checks it is a container image within `limits`.
    ///
    /// The config media type is checked before the full decode, so an artifact (Helm chart,
    /// signature, SBOM …) is reported as such even when its descriptors would not parse as an image's.
    /// - Throws: `.unsupportedMediaType` for an artifact; `.malformed` for invalid JSON or a
    ///   schemaVersion other than 2; `.tooLarge` beyond `limits.maxLayers`.
    static func imageManifest(from bytes: [UInt8], what: String, limits: RegistryLimits) throws -> ImageManifest {
        struct Shape: Decodable {
            struct Config: Decodable { var mediaType: String? }
            var config: Config?
            var artifactType: String?
        }
        let shape = try decode(Shape.self, from: bytes, what: what)
        if let configType = shape.config?.mediaType, !MediaType.isImageConfig(configType) {
            throw RegistryError.unsupportedMediaType(
                "\(what) is an artifact, not a container image: config media type '\(configType.prefix(200))'"
                    + (shape.artifactType.map { ", artifactType '\($0.prefix(200))'" } ?? ""))
        }
        let manifest = try decode(ImageManifest.self, from: bytes, what: what)
        guard manifest.schemaVersion == 2 else {
            throw RegistryError.malformed("\(what) has schemaVersion \(manifest.schemaVersion), expected 2")
        }
        guard manifest.layers.count <= limits.maxLayers else {
            throw RegistryError.tooLarge(what: "\(what) (RegistryLimits.maxLayers)", actual: Int64(manifest.layers.count),
                                         limit: Int64(limits.maxLayers), unit: "layers")
        }
        return manifest
    }

    /// `repository:<name>:pull`, the scope a pull needs (Token Authentication Specification, "Scope").
    static func pullScope(_ repository: String) -> String { "repository:\(repository):pull" }

    /// The manifest media type: `Content-Type` without parameters, or for a missing or generic one
    /// (`application/json`, `text/plain`, `application/octet-stream`) the body's `mediaType`, else its
    /// shape (`manifests` → OCI index; `config` and `layers` → OCI manifest; `schemaVersion` 1 → schema 1).
    static func mediaType(contentType: String?, body: [UInt8], what: String) throws -> String {
        let declared = contentType?.split(separator: ";").first.map {
            $0.trimmingCharacters(in: .whitespaces).lowercased()
        } ?? ""
        let generic: Set<String> = ["", "application/json", "text/plain", "application/octet-stream"]
        if !generic.contains(declared) { return declared }
        struct Shape: Decodable {
            var schemaVersion: Int?
            var mediaType: String?
            var manifests: [IgnoredValue]?
            var config: IgnoredValue?
            var layers: [IgnoredValue]?
        }
        struct IgnoredValue: Decodable {
            init(from decoder: any Decoder) throws {}
        }
        let shape = try decode(Shape.self, from: body, what: what)
        if let mediaType = shape.mediaType { return mediaType }
        if shape.schemaVersion == 1 { return MediaType.dockerSchema1 }
        if shape.manifests != nil { return MediaType.ociIndex }
        if shape.config != nil, shape.layers != nil { return MediaType.ociManifest }
        throw RegistryError.unsupportedMediaType("\(what) was served as '\(declared)' and its body is neither a manifest nor an index")
    }

    /// Decodes JSON, turning a decoding failure into `RegistryError.malformed` naming `what` and the field.
    static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8], what: String) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(bytes))
        } catch let error as DecodingError {
            let (path, detail): ([any CodingKey], String) = switch error {
            case .dataCorrupted(let context): (context.codingPath, context.debugDescription)
            case .keyNotFound(let key, let context): (context.codingPath + [key], "missing")
            case .typeMismatch(_, let context): (context.codingPath, context.debugDescription)
            case .valueNotFound(_, let context): (context.codingPath, context.debugDescription)
            @unknown default: ([], String(describing: error))
            }
            let field = path.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
            throw RegistryError.malformed("\(what) is not a valid \(T.self): \(field.isEmpty ? "" : "\(field): ")\(detail)")
        } catch {
            // Field types with their own parsing (Digest) throw their own errors from inside decoding.
            throw RegistryError.malformed("\(what) is not a valid \(T.self): \(error)")
        }
    }
}
