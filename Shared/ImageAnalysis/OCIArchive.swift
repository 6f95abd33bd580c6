import Foundation
import GantryModel

/// An image archive unpacked into a private scratch directory: the tar that `skopeo copy …
/// oci-archive:FILE` writes (OCI image spec, "Image Layout": `oci-layout`, `index.json`,
/// `blobs/<alg>/<hex>`), or the one `docker save` / `skopeo copy … docker-archive:FILE` writes
/// (`manifest.json`, the config, one tar file per layer). Compressed archives (`.tar.gz`) are read too.
///
/// The archive is read once, in 1 MiB blocks, with libarchive; each regular file is written to its own
/// scratch file while it is hashed (swift-crypto). Memory stays bounded whatever the archive's size;
/// disk use is the archive's unpacked size, until the `OCIArchive` (every copy of it) is gone or
/// `removeScratch()` is called. A file named after a digest (`blobs/sha256/<hex>`) is hashed with that
/// algorithm and is only handed out when its bytes match the name.
///
/// For offline scans and tests; a registry scan gets the same manifests and blobs from
/// `RegistryClient` instead. Manifests may use OCI or Docker v2 schema 2 media types (same shape).
public struct OCIArchive: Sendable {
    /// Why an archive, or a file in it, could not be used.
    public enum Error: Swift.Error, CustomStringConvertible, Equatable, Sendable {
        case unreadable(LayerReadError)
        case missing(String)
        case malformedJSON(String)
        case noMatchingPlatform(String)
        /// The file named after `expected` (`blobs/<alg>/<hex>`) holds bytes that hash to `actual`.
        case digestMismatch(expected: Digest, actual: Digest)
        /// More files or bytes than `Limits` allow; the string names the limit.
        case tooLarge(String)
        /// The scratch directory or a file in it could not be written.
        case scratch(String)

        public var description: String {
            switch self {
            case .unreadable(let error): "OCI archive unreadable: \(error)"
            case .missing(let path): "OCI archive has no \(path)"
            case .malformedJSON(let detail): "OCI archive JSON is malformed: \(detail)"
            case .noMatchingPlatform(let platform): "OCI archive has no manifest for \(platform)"
            case .digestMismatch(let expected, let actual):
                "blob \(expected) does not match its digest: its bytes hash to \(actual)"
            case .tooLarge(let detail): "archive is too large: \(detail)"
            case .scratch(let detail): "cannot unpack the archive: \(detail)"
            }
        }
    }

    /// Bounds on what is unpacked; an archive is untrusted input (a `.tar.gz` can expand a thousandfold).
    public struct Limits: Sendable, Hashable {
        /// The largest single file, in bytes (default 8 GiB, `RegistryLimits.maxBlobBytes`' default).
        public var maxFileBytes: Int64
        /// The most regular files kept (default 10 000; an image archive holds a few per layer).
        public var maxFiles: Int
        /// The most bytes unpacked in all (default 32 GiB).
        public var maxTotalBytes: Int64

        public init(maxFileBytes: Int64 = 8 << 30, maxFiles: Int = 10_000, maxTotalBytes: Int64 = 32 << 30) {
            self.maxFileBytes = maxFileBytes
            self.maxFiles = maxFiles
            self.maxTotalBytes = maxTotalBytes
        }
    }

    /// One regular file of the archive, unpacked.
    public struct Member: Sendable, Hashable {
        /// The normalised path inside the archive (`index.json`, `blobs/sha256/…`, `<hex>/layer.tar`).
        public var path: String
        /// The scratch copy; valid while the `OCIArchive` that made it exists.
        public var file: URL
        /// Size in bytes.
        public var size: Int64
        /// The bytes' digest: with the algorithm `path` names for `blobs/<alg>/<hex>`, else sha256.
        public var digest: Digest
        /// The digest `path` names (`blobs/<alg>/<hex>`), if it names one.
        public var namedDigest: Digest?

        /// True unless the path names a digest that the bytes do not have.
        public var isIntact: Bool { namedDigest.map { $0 == digest } ?? true }
    }

    /// Every regular file of the archive by normalised path; a later entry for a path replaces an earlier one.
    public let members: [String: Member]
    private let scratch: ScratchDirectory

    /// Unpacks the archive at `url`, reading it once in 1 MiB blocks.
    /// - Throws: `.unreadable` for a file that is not a (compressed) tar or breaks off; `.tooLarge` past
    ///   `limits`; `.scratch` when the scratch directory cannot be written.
    public init(fileAt url: URL, limits: Limits = .init()) throws(Error) {
        let path = url.path
        (scratch, members) = try Self.unpack(limits: limits) { () throws(LayerReadError) in try ArchiveStream(path: path) }
    }

    /// Unpacks an archive held in memory (tests, small inputs); otherwise as `init(fileAt:limits:)`.
    /// - Parameter maxFileBytes: the largest file accepted, in bytes (default 4 GiB).
    public init(_ bytes: some ContiguousBytes, maxFileBytes: Int = 4 << 30) throws(Error) {
        let limits = Limits(maxFileBytes: Int64(maxFileBytes))
        let result = bytes.withUnsafeBytes { buffer in
            Result { () throws(Error) -> (ScratchDirectory, [String: Member]) in
                try Self.unpack(limits: limits) { () throws(LayerReadError) in try ArchiveStream(buffer) }
            }
        }
        (scratch, members) = try result.get()
    }

    /// The scratch directory's location (0700, removed with the archive).
    public var scratchDirectory: URL { scratch.url }

    /// Deletes the unpacked files now rather than when the last copy of the archive goes away; every
    /// `Member.file` is invalid afterwards.
    public func removeScratch() { scratch.remove() }

    /// The bytes of the file at `path`, for small documents (`index.json`, manifests, configs).
    /// - Parameters:
    ///   - limit: the largest file read, in bytes (default 16 MiB).
    ///   - checkingName: refuse a file whose name gives a digest its bytes do not have (default true;
    ///     false for formats where names are only names, such as `docker save`'s `manifest.json` paths).
    /// - Returns: nil when the archive has no such file.
    /// - Throws: `.tooLarge` beyond `limit`, `.digestMismatch` for a blob whose bytes do not match its
    ///   name, `.scratch` when the copy cannot be read.
    public func contents(of path: String, limit: Int = 16 << 20, checkingName: Bool = true) throws(Error) -> [UInt8]? {
        guard let member = members[path] else { return nil }
        if checkingName { try Self.checkIntact(member) }
        guard member.size <= Int64(limit) else {
            throw .tooLarge("\(path) is \(member.size) bytes; documents are read up to \(ByteCount.describe(Int64(limit)))")
        }
        do { return [UInt8](try Data(contentsOf: member.file)) } catch {
            throw .scratch("\(member.file.path): \(error.localizedDescription)")
        }
    }

    /// The blob with `digest` in memory, or nil when it is missing or its bytes do not match `digest`.
    /// For layers prefer `blobFile(_:)`, which never loads them.
    public func blob(_ digest: Digest) -> [UInt8]? {
        guard let member = members[Self.blobPath(digest)], member.isIntact else { return nil }
        return try? Data(contentsOf: member.file).withUnsafeBytes { [UInt8]($0) }
    }

    /// The unpacked file of the blob with `digest`, checked against it.
    /// - Throws: `.missing` when the archive has no such blob, `.digestMismatch` when its bytes differ.
    public func blobFile(_ digest: Digest) throws(Error) -> URL {
        guard let member = members[Self.blobPath(digest)] else { throw .missing("blob \(digest)") }
        try Self.checkIntact(member)
        return member.file
    }

    /// The layer digests, bottom first, of the image for `os`/`architecture`, following nested
    /// image indexes (OCI image spec, "Image Index"). A manifest without a platform matches any.
    public func layerDigests(os: String = "linux", architecture: String = "amd64") throws(Error) -> [Digest] {
        guard let indexBytes = try contents(of: "index.json") else { throw .missing("index.json") }
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
            guard let next = try contents(of: Self.blobPath(digest)) else { throw .missing("blob \(digest)") }
            document = try decode(next)
        }
        throw .malformedJSON("image indexes nested too deeply")
    }

    /// `blobs/<algorithm>/<encoded>` (OCI image spec, "Image Layout", "Blobs").
    public static func blobPath(_ digest: Digest) -> String { "blobs/\(digest.algorithm)/\(digest.encoded)" }

    // MARK: - Unpacking

    private static func checkIntact(_ member: Member) throws(Error) {
        if let named = member.namedDigest, named != member.digest {
            throw .digestMismatch(expected: named, actual: member.digest)
        }
    }

    /// The digest a path names: `blobs/<alg>/<hex>` with a valid digest, else nil.
    private static func namedDigest(_ path: String) -> Digest? {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "blobs" else { return nil }
        return try? Digest(parsing: "\(parts[1]):\(parts[2])")
    }

    /// One pass over the archive `open` opens: every regular file to its own scratch file (named by its
    /// position, so no archive name ever becomes a path on disk), hashed on the way.
    private static func unpack(limits: Limits, open: () throws(LayerReadError) -> ArchiveStream)
        throws(Error) -> (ScratchDirectory, [String: Member]) {
        let scratch: ScratchDirectory
        do { scratch = try ScratchDirectory(prefix: "gantry-archive-") } catch {
            throw .scratch(error.localizedDescription)
        }
        var members: [String: Member] = [:]
        var files = 0
        var total: Int64 = 0
        do {
            let stream = try open()
            while let header = try stream.next() {
                guard let raw = header.rawPath, case .path(let path) = ArchivePath.normalise(raw) else { continue }
                if let rawTarget = header.hardlinkTarget {
                    // `tar` stores a second name for the same bytes as a hard link to the first.
                    if case .path(let target) = ArchivePath.normalise(rawTarget), var member = members[target] {
                        member.path = path
                        member.namedDigest = namedDigest(path)
                        members[path] = member
                    }
                    continue
                }
                guard header.fileType == ArchiveStream.regularFile else { continue }
                files += 1
                guard files <= limits.maxFiles else {
                    throw Error.tooLarge("more than \(limits.maxFiles) files (OCIArchive.Limits.maxFiles)")
                }
                let named = namedDigest(path)
                let file = scratch.file(String(files))
                let remaining = limits.maxTotalBytes - total
                let (size, digest) = try copyEntry(stream, path: path, to: file, algorithm: named?.algorithm ?? "sha256",
                                                   limit: min(limits.maxFileBytes, remaining))
                total += size
                members[path] = Member(path: path, file: file, size: size, digest: digest, namedDigest: named)
            }
        } catch let error as Error {
            scratch.remove()
            throw error
        } catch let error as LayerReadError {
            scratch.remove()
            if case .fileTooLarge(let path, _, _) = error {
                throw .tooLarge("\(path) exceeds OCIArchive.Limits (\(ByteCount.describe(limits.maxFileBytes)) per file, "
                    + "\(ByteCount.describe(limits.maxTotalBytes)) in all)")
            }
            throw .unreadable(error)
        } catch {
            scratch.remove()
            throw .scratch(String(describing: error))
        }
        return (scratch, members)
    }

    /// Copies the current entry's data to `file` (created 0600 inside the 0700 scratch directory) while hashing it.
    private static func copyEntry(_ stream: ArchiveStream, path: String, to file: URL, algorithm: String,
                                  limit: Int64) throws -> (Int64, Digest) {
        let descriptor = open(file.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw Error.scratch("\(file.path): \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        var hasher = BlobHasher(algorithm: algorithm)
        var writeFailure: Int32 = 0
        let size: Int64
        do {
            size = try stream.streamData(path: path, limit: limit) { (block) throws(LayerReadError) in
                hasher.update(block)
                guard let base = block.baseAddress else { return }
                var offset = 0
                while offset < block.count {
                    let written = write(descriptor, base + offset, block.count - offset)
                    if written >= 0 {
                        offset += written
                    } else if errno != EINTR {
                        writeFailure = errno
                        // Stops the copy; reported as a scratch failure below.
                        throw .libarchive("write failed")
                    }
                }
            }
        } catch {
            if writeFailure != 0 { throw Error.scratch("\(file.path): \(String(cString: strerror(writeFailure)))") }
            throw error
        }
        return (size, hasher.finalize())
    }

    // MARK: - JSON

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
