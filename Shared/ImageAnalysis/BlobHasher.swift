import Crypto
import Foundation
import GantryModel

/// Incremental hashing for the digest algorithms `GantryModel.Digest` accepts (OCI image spec, "Digests":
/// `sha256`, `sha512`), with swift-crypto (BoringSSL on Linux, which uses the SHA extensions where the
/// CPU has them).
public struct BlobHasher: Sendable {
    private enum State: Sendable {
        case sha256(SHA256)
        case sha512(SHA512)
    }

    private var state: State

    /// A hasher for `algorithm`: `sha512`, else `sha256` (the only other algorithm a `Digest` can name).
    public init(algorithm: String = "sha256") {
        state = algorithm == "sha512" ? .sha512(SHA512()) : .sha256(SHA256())
    }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        switch state {
        case .sha256(var hasher):
            hasher.update(bufferPointer: bytes)
            state = .sha256(hasher)
        case .sha512(var hasher):
            hasher.update(bufferPointer: bytes)
            state = .sha512(hasher)
        }
    }

    /// The digest of everything hashed so far.
    public func finalize() -> GantryModel.Digest {
        switch state {
        case .sha256(let hasher):
            return GantryModel.Digest(sha256: hasher.finalize())
        case .sha512(let hasher):
            let hex = hasher.finalize().map { String(format: "%02x", $0) }.joined()
            // 128 lowercase hex digits after "sha512:" always parse; the fallback is unreachable.
            return (try? GantryModel.Digest(parsing: "sha512:" + hex)) ?? GantryModel.Digest(sha256: [])
        }
    }

    /// The digest of `bytes` under `algorithm`.
    public static func digest(of bytes: some ContiguousBytes, algorithm: String = "sha256") -> GantryModel.Digest {
        var hasher = BlobHasher(algorithm: algorithm)
        bytes.withUnsafeBytes { hasher.update($0) }
        return hasher.finalize()
    }

    /// The digest of the file at `url`, read in 1 MiB blocks (memory stays bounded whatever its size).
    /// - Throws: the `FileHandle` error when the file cannot be opened or read.
    public static func digest(ofFileAt url: URL, algorithm: String = "sha256") throws -> GantryModel.Digest {
        let handle = try FileHandle(forReadingFrom: url)
        defer { try? handle.close() }
        var hasher = BlobHasher(algorithm: algorithm)
        while let block = try handle.read(upToCount: 1 << 20), !block.isEmpty {
            block.withUnsafeBytes { hasher.update($0) }
        }
        return hasher.finalize()
    }
}
