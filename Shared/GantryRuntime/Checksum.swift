import Foundation
import Crypto

/// SHA-256 helpers (FIPS 180-4) over swift-crypto.
public enum Checksum {
    /// Lowercase hex SHA-256 of `bytes`.
    public static func sha256Hex(_ bytes: some Sequence<UInt8>) -> String {
        SHA256.hash(data: Array(bytes)).map { String(format: "%02x", $0) }.joined()
    }
}
