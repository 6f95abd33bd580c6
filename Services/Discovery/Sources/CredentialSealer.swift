import Crypto
import Foundation
import GantryRuntime

/// Seals registry credentials at rest with GantryRuntime's `SecretSealer` (AES-256-GCM, NIST SP 800-38D) under its
/// key ring, for rotation without downtime: the newest key seals, every configured key opens, and
/// `resealCredentials` moves rows to the newest key before an old one is dropped.
///
/// Keys come from `GANTRY_DISCOVERY_SECRET_KEYS` (`id:base64,id:base64…`, newest first, each 32 bytes) and
/// `GANTRY_SECRET_KEY` (key ID `default`, the oldest). The stored form is base64 of nonce (12 bytes) ||
/// ciphertext || tag (16 bytes) beside its key ID; the registry ID is the authenticated data, so a sealed value
/// copied onto another registry's row does not open.
struct CredentialSealer: Sendable {
    static let keyRingVariable = "GANTRY_DISCOVERY_SECRET_KEYS"

    let sealer: SecretSealer

    /// The key that seals.
    var currentKeyID: String { sealer.currentKeyID }

    /// - Throws: `ConfigurationError` when no key is configured, or a key is malformed or repeated.
    init(configuration: GantryConfiguration) throws {
        do {
            sealer = try SecretSealer(configuration: configuration, keyRingVariable: Self.keyRingVariable)
        } catch let error as ConfigurationError where error.variable == "GANTRY_SECRET_KEY" {
            throw ConfigurationError(variable: "GANTRY_SECRET_KEY",
                                     message: "discovery needs it (or \(Self.keyRingVariable)) to encrypt registry credentials at rest")
        }
    }

    /// The clear credentials; `kind` is nil in rows sealed before token credentials existed (basic).
    struct Credentials: Codable, Sendable, Equatable {
        var kind: String?
        var username: String
        var password: String
    }

    /// Seals under the newest key. Returns the key ID and the sealed value.
    func seal(_ credentials: Credentials, registryID: UUID) throws -> (keyID: String, sealed: String) {
        let (keyID, combined) = try sealer.sealBytes(try JSONEncoder().encode(credentials),
                                                     authenticating: Self.associatedData(registryID))
        return (keyID, combined.base64EncodedString())
    }

    /// - Throws: `ProblemError` 500 naming the key when it is not configured; CryptoKit errors when the value
    ///   was tampered with or belongs to another row.
    func open(_ stored: String, keyID: String?, registryID: UUID) throws -> Credentials {
        let keyID = keyID ?? SecretSealer.defaultKeyID
        guard sealer.keys.contains(where: { $0.id == keyID }) else {
            throw ProblemError.internal("the credentials of registry \(registryID.uuidString.lowercased()) are sealed with key '\(keyID)', which is not configured")
        }
        guard let data = Data(base64Encoded: stored) else { throw CryptoKitError.incorrectParameterSize }
        let clear: Data
        do {
            clear = try sealer.openBytes(data, keyID: keyID, authenticating: Self.associatedData(registryID))
        } catch where keyID == SecretSealer.defaultKeyID {
            // Rows sealed by the first release had no authenticated data (the same as empty, in GCM).
            clear = try sealer.openBytes(data, keyID: keyID, authenticating: Data())
        }
        return try JSONDecoder().decode(Credentials.self, from: clear)
    }

    static func associatedData(_ registryID: UUID) -> Data {
        Data("gantry.discovery.registry:\(registryID.uuidString.lowercased())".utf8)
    }
}
