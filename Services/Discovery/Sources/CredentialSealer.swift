import Crypto
import Foundation
import GantryRuntime

/// Seals registry credentials at rest with AES-256-GCM (NIST SP 800-38D) under `GANTRY_SECRET_KEY`.
/// The stored form is base64 of nonce (12 bytes) || ciphertext || tag (16 bytes).
struct CredentialSealer: Sendable {
    private let key: SymmetricKey

    /// - Throws: `ConfigurationError` when the deployment has no secret key.
    init(configuration: GantryConfiguration) throws {
        guard let data = configuration.secretKey else {
            throw ConfigurationError(variable: "GANTRY_SECRET_KEY",
                                     message: "discovery needs it to encrypt registry credentials at rest")
        }
        key = SymmetricKey(data: data)
    }

    struct Credentials: Codable, Sendable, Equatable {
        var username: String
        var password: String
    }

    func seal(_ credentials: Credentials) throws -> String {
        let sealed = try AES.GCM.seal(try JSONEncoder().encode(credentials), using: key)
        guard let combined = sealed.combined else { throw CryptoKitError.incorrectParameterSize }
        return combined.base64EncodedString()
    }

    /// - Throws: when the stored value was not sealed with this key (tampered, or another key).
    func open(_ stored: String) throws -> Credentials {
        guard let data = Data(base64Encoded: stored) else { throw CryptoKitError.incorrectParameterSize }
        let box = try AES.GCM.SealedBox(combined: data)
        return try JSONDecoder().decode(Credentials.self, from: try AES.GCM.open(box, using: key))
    }
}
