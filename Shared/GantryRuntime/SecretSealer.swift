import Crypto
import Foundation

/// Seals secrets a service must use again later (webhook signing secrets, HMAC keys) at rest, with
/// AES-256-GCM (NIST SP 800-38D) under the deployment's `GANTRY_SECRET_KEY`.
///
/// Stored form: `sealed:v1:` + base64 of nonce (12 bytes) || ciphertext || tag (16 bytes). The `context`
/// (for example `notification.channel:<id>`) is the authenticated data, so a sealed value copied onto
/// another row does not open. Values stored before sealing existed (no prefix) open as themselves, and
/// `needsSealing` finds them for a re-seal pass.
public struct SecretSealer: Sendable {
    public static let prefix = "sealed:v1:"
    private let key: SymmetricKey

    /// - Throws: `ConfigurationError` naming `GANTRY_SECRET_KEY` when the deployment has none.
    public init(configuration: GantryConfiguration) throws {
        guard let data = configuration.secretKey else {
            throw ConfigurationError(variable: "GANTRY_SECRET_KEY",
                                     message: "is required to keep secrets encrypted at rest (base64 of 32 random bytes)")
        }
        key = SymmetricKey(data: data)
    }

    /// The sealed form of `clear`, bound to `context`.
    public func seal(_ clear: String, context: String) throws -> String {
        let box = try AES.GCM.seal(Data(clear.utf8), using: key, authenticating: Data(context.utf8))
        guard let combined = box.combined else { throw CryptoKitError.incorrectParameterSize }
        return Self.prefix + combined.base64EncodedString()
    }

    /// The clear text of a stored value: sealed values are opened and verified, legacy clear values returned.
    /// - Throws: `ProblemError` 500 when a sealed value does not open (another key, another row, tampering).
    public func open(_ stored: String, context: String) throws -> String {
        guard stored.hasPrefix(Self.prefix) else { return stored }
        guard let data = Data(base64Encoded: String(stored.dropFirst(Self.prefix.count))),
              let box = try? AES.GCM.SealedBox(combined: data),
              let clear = try? AES.GCM.open(box, using: key, authenticating: Data(context.utf8)) else {
            throw ProblemError.internal("a stored secret (\(context)) does not open with GANTRY_SECRET_KEY")
        }
        return String(decoding: clear, as: UTF8.self)
    }

    /// Whether a stored value is still in clear (written before sealing existed).
    public static func needsSealing(_ stored: String) -> Bool { !stored.hasPrefix(prefix) }
}
