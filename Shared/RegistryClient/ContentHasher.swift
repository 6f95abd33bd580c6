import Crypto
import GantryModel

/// Incremental hashing for the algorithms `Digest` allows (OCI image spec, "Digests": sha256, sha512).
struct ContentHasher {
    private enum State {
        case sha256(SHA256)
        case sha512(SHA512)
    }

    private var state: State

    /// A hasher for `algorithm` (`sha256` or `sha512`, as `Digest` guarantees).
    init(algorithm: String) {
        state = algorithm == "sha512" ? .sha512(SHA512()) : .sha256(SHA256())
    }

    mutating func update(_ bytes: UnsafeRawBufferPointer) {
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
    /// - Throws: `Digest.ParseError` only if hex encoding were broken (it cannot be); never a wrong digest.
    func finalize() throws -> GantryModel.Digest {
        switch state {
        case .sha256(let hasher):
            return GantryModel.Digest(sha256: hasher.finalize())
        case .sha512(let hasher):
            let hex = hasher.finalize().map { byte in
                let digits = Array("0123456789abcdef".utf8)
                return String(decoding: [digits[Int(byte >> 4)], digits[Int(byte & 0x0f)]], as: UTF8.self)
            }.joined()
            return try GantryModel.Digest(parsing: "sha512:" + hex)
        }
    }

    /// The digest of `bytes` under `algorithm`.
    static func digest(of bytes: [UInt8], algorithm: String = "sha256") throws -> GantryModel.Digest {
        var hasher = ContentHasher(algorithm: algorithm)
        bytes.withUnsafeBytes { hasher.update($0) }
        return try hasher.finalize()
    }
}
