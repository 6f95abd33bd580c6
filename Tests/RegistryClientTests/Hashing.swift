import Crypto

/// sha256 of test bytes, independent of the client's own hashing.
func sha256(_ bytes: [UInt8]) -> [UInt8] {
    Array(SHA256.hash(data: bytes))
}
