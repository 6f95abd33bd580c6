import Crypto
import Foundation

/// The signature on every webhook delivery: `X-Gantry-Signature: sha256=<hex HMAC-SHA256(secret, body)>`
/// (RFC 2104 HMAC with SHA-256), so receivers can verify the body came from Gantry unaltered.
public enum WebhookSignature {
    public static let header = "X-Gantry-Signature"

    /// `sha256=<64 lowercase hex>` over `body`.
    public static func sign(body: some DataProtocol, secret: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Array(body), using: SymmetricKey(data: Data(secret.utf8)))
        return "sha256=" + mac.map { String(format: "%02x", $0) }.joined()
    }

    /// Constant-time check of a received signature header.
    public static func verify(signature: String, body: some DataProtocol, secret: String) -> Bool {
        guard signature.hasPrefix("sha256="), let mac = Data(hexString: String(signature.dropFirst(7))) else { return false }
        return HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: Array(body),
                                                       using: SymmetricKey(data: Data(secret.utf8)))
    }
}

extension Data {
    init?(hexString: String) {
        guard hexString.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        var index = hexString.startIndex
        while index < hexString.endIndex {
            let next = hexString.index(index, offsetBy: 2)
            guard let byte = UInt8(hexString[index..<next], radix: 16) else { return nil }
            bytes.append(byte)
            index = next
        }
        self.init(bytes)
    }
}
