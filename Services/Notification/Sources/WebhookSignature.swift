import Crypto
import Foundation

/// The signature on every signed delivery (webhook, and CloudEvents with a secret):
///
/// - `X-Gantry-Timestamp: <Unix time of the attempt, in decimal seconds>`
/// - `X-Gantry-Signature: sha256=<64 lowercase hex>`, the HMAC-SHA256 (RFC 2104) keyed with the channel's
///   secret of `<timestamp>.<body>`: the timestamp's ASCII digits, a full stop, then the exact body bytes.
///
/// Binding the timestamp into the MAC lets receivers refuse replays: a captured delivery re-sent later
/// carries an old timestamp, and changing it breaks the signature. Receivers accept a timestamp within
/// `replayWindow` of their own clock and deduplicate by `X-Gantry-Delivery` inside that window.
public enum WebhookSignature {
    public static let header = "X-Gantry-Signature"
    public static let timestampHeader = "X-Gantry-Timestamp"
    /// How far (either way, in seconds) a receiver accepts a delivery's timestamp from its own clock.
    public static let replayWindow: TimeInterval = 300

    /// What a receiver concludes from a delivery's signature headers.
    public enum Verdict: Equatable, Sendable {
        case valid
        /// The timestamp header is missing or not decimal digits.
        case malformedTimestamp
        /// The timestamp lies outside the replay window: a replay, or a badly wrong clock.
        case outsideReplayWindow
        /// The signature header is malformed or does not match (wrong secret, altered body or timestamp).
        case badSignature
    }

    /// `sha256=<64 lowercase hex>` over `<timestamp>.<body>`.
    public static func sign(timestamp: Int, body: some DataProtocol, secret: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: signedBytes(timestamp: String(timestamp), body: body),
                                                  using: SymmetricKey(data: Data(secret.utf8)))
        return "sha256=" + mac.map { String(format: "%02x", $0) }.joined()
    }

    /// The receiver's check: timestamp within `tolerance` of `now`, then the MAC compared in constant time.
    /// - Parameters:
    ///   - signature: the `X-Gantry-Signature` header.
    ///   - timestamp: the `X-Gantry-Timestamp` header.
    public static func verify(signature: String, timestamp: String, body: some DataProtocol, secret: String,
                              now: Date = Date(), tolerance: TimeInterval = replayWindow) -> Verdict {
        guard !timestamp.isEmpty, timestamp.count <= 12, timestamp.allSatisfy({ $0.isASCII && $0.isNumber }),
              let seconds = Int(timestamp) else { return .malformedTimestamp }
        guard abs(now.timeIntervalSince1970 - Double(seconds)) <= tolerance else { return .outsideReplayWindow }
        guard signature.hasPrefix("sha256="), let mac = Data(hexString: String(signature.dropFirst(7))), mac.count == 32 else {
            return .badSignature
        }
        let valid = HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: signedBytes(timestamp: timestamp, body: body),
                                                           using: SymmetricKey(data: Data(secret.utf8)))
        return valid ? .valid : .badSignature
    }

    private static func signedBytes(timestamp: String, body: some DataProtocol) -> [UInt8] {
        Array(timestamp.utf8) + [UInt8(ascii: ".")] + Array(body)
    }
}

extension Data {
    /// Lowercase hex only (what `sign` produces), so that one MAC has one spelling.
    init?(hexString: String) {
        guard hexString.utf8.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(hexString.utf8.count / 2)
        var high: UInt8?
        for character in hexString.utf8 {
            let nibble: UInt8
            switch character {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = character - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = character - UInt8(ascii: "a") + 10
            default: return nil
            }
            if let value = high {
                bytes.append(value << 4 | nibble)
                high = nil
            } else {
                high = nibble
            }
        }
        self.init(bytes)
    }
}
