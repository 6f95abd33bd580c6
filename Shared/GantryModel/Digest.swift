import Foundation

/// A content digest as defined by the OCI image spec, "Digests" section:
/// `algorithm ":" encoded`, for example `sha256:9b99…` (64 lowercase hex characters for sha256).
///
/// Only `sha256` and `sha512` are accepted, as registries and Gantry verify content with them.
public struct Digest: Hashable, Sendable, Codable, CustomStringConvertible, Comparable {
    /// The algorithm part, `sha256` or `sha512`.
    public let algorithm: String
    /// The lowercase hex encoding of the hash.
    public let encoded: String

    /// Errors from parsing a digest string.
    public enum ParseError: Error, CustomStringConvertible, Equatable {
        case malformed(String)
        public var description: String {
            switch self {
            case .malformed(let value):
                "'\(value.prefix(200))' is not a digest of the form sha256:<64 lowercase hex> or sha512:<128 lowercase hex>"
            }
        }
    }

    /// Parses `algorithm:encoded`.
    /// - Throws: `ParseError.malformed` for an unknown algorithm, wrong length or non-hex characters.
    public init(parsing string: String) throws {
        let parts = string.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { throw ParseError.malformed(string) }
        let algorithm = String(parts[0])
        let encoded = String(parts[1])
        let expectedLength: Int
        switch algorithm {
        case "sha256": expectedLength = 64
        case "sha512": expectedLength = 128
        default: throw ParseError.malformed(string)
        }
        guard encoded.utf8.count == expectedLength,
              encoded.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) })
        else { throw ParseError.malformed(string) }
        self.algorithm = algorithm
        self.encoded = encoded
    }

    /// Builds a sha256 digest from raw hash bytes (32 bytes).
    public init(sha256 bytes: some Sequence<UInt8>) {
        self.algorithm = "sha256"
        self.encoded = bytes.map { String(format: "%02x", $0) }.joined()
    }

    public var description: String { "\(algorithm):\(encoded)" }

    public static func < (lhs: Digest, rhs: Digest) -> Bool { lhs.description < rhs.description }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        try self.init(parsing: try container.decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
