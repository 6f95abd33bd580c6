import Foundation
import GantryModel

/// An OCI image-layout archive held in memory: the tar that `skopeo copy … oci-archive:FILE`
/// writes (OCI image spec, "Image Layout": `oci-layout`, `index.json`, `blobs/<alg>/<hex>`).
///
/// For offline scans and tests; a registry scan gets the same manifests and blobs from
/// `RegistryClient` instead. Manifests may use OCI or Docker v2 schema 2 media types (same shape).
public struct OCIArchive: Sendable {
    /// Why an archive could not be used.
    public enum Error: Swift.Error, CustomStringConvertible, Equatable, Sendable {
        case unreadable(LayerReadError)
        case missing(String)
        case malformedJSON(String)
        case noMatchingPlatform(String)

        public var description: String {
            switch self {
            case .unreadable(let error): "OCI archive unreadable: \(error)"
            case .missing(let path): "OCI archive has no \(path)"
            case .malformedJSON(let detail): "OCI archive JSON is malformed: \(detail)"
            case .noMatchingPlatform(let platform): "OCI archive has no manifest for \(platform)"
            }
        }
    }

    /// Every regular file of the archive by normalised path (`index.json`, `blobs/sha256/…`).
    public let files: [String: [UInt8]]

    /// Reads every file of the archive into memory.
    /// - Parameter maxFileBytes: the largest file accepted, in bytes (default 4 GiB).
    /// - Throws: `OCIArchive.Error.unreadable` wrapping the `LayerReadError`.
    public init(_ bytes: some ContiguousBytes, maxFileBytes: Int = 4 << 30) throws(Error) {
        let result = bytes.withUnsafeBytes { buffer in
            Result { () throws(LayerReadError) -> [String: [UInt8]] in
                let stream = try ArchiveStream(buffer)
                var files: [String: [UInt8]] = [:]
                while let header = try stream.next() {
                    guard header.fileType == ArchiveStream.regularFile, let raw = header.rawPath,
                          case .path(let path) = ArchivePath.normalise(raw)
                    else { continue }
                    files[path] = try stream.readData(path: path, declaredSize: header.size, limit: maxFileBytes)
                }
                return files
            }
        }
        do { files = try result.get() } catch { throw .unreadable(error) }
    }

    /// The blob with `digest`, or nil.
    public func blob(_ digest: Digest) -> [UInt8]? {
        files["blobs/\(digest.algorithm)/\(digest.encoded)"]
    }

    /// The layer digests, bottom first, of the image for `os`/`architecture`, following nested
    /// image indexes (OCI image spec, "Image Index"). A manifest without a platform matches any.
    public func layerDigests(os: String = "linux", architecture: String = "amd64") throws(Error) -> [Digest] {
        guard let indexBytes = files["index.json"] else { throw .missing("index.json") }
        var document = try decode(indexBytes)
        for _ in 0..<8 {
            if let layers = document.layers {
                return try layers.map { (descriptor) throws(Error) -> Digest in try parseDigest(descriptor.digest) }
            }
            guard let manifests = document.manifests else { throw .malformedJSON("neither manifests nor layers") }
            guard let chosen = manifests.first(where: {
                $0.platform == nil || ($0.platform?.os == os && $0.platform?.architecture == architecture)
            }) else { throw .noMatchingPlatform("\(os)/\(architecture)") }
            let digest = try parseDigest(chosen.digest)
            guard let next = blob(digest) else { throw .missing("blob \(digest)") }
            document = try decode(next)
        }
        throw .malformedJSON("image indexes nested too deeply")
    }

    private struct Descriptor: Decodable {
        struct Platform: Decodable {
            var os: String?
            var architecture: String?
        }
        var digest: String
        var platform: Platform?
    }

    private struct Document: Decodable {
        var manifests: [Descriptor]?
        var layers: [Descriptor]?
    }

    private func decode(_ bytes: [UInt8]) throws(Error) -> Document {
        do { return try JSONDecoder().decode(Document.self, from: Data(bytes)) } catch {
            throw .malformedJSON(String(describing: error).prefix(300).description)
        }
    }

    private func parseDigest(_ text: String) throws(Error) -> Digest {
        do { return try Digest(parsing: text) } catch { throw .malformedJSON("bad digest '\(text.prefix(100))'") }
    }
}
