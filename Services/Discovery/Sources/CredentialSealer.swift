import Crypto
import Foundation
import GantryRuntime

/// Seals registry credentials at rest with AES-256-GCM (NIST SP 800-38D) under a ring of keys, for rotation
/// without downtime: the newest key seals, every configured key opens, and `resealCredentials` moves rows to
/// the newest key before an old one is dropped.
///
/// Keys come from `GANTRY_DISCOVERY_SECRET_KEYS` (`id:base64,id:base64…`, newest first, each 32 bytes) and
/// `GANTRY_SECRET_KEY` (key ID `default`, the oldest). The stored form is base64 of nonce (12 bytes) ||
/// ciphertext || tag (16 bytes) beside its key ID; the registry ID is the authenticated data, so a sealed value
/// copied onto another registry's row does not open.
struct CredentialSealer: Sendable {
    struct Key: Sendable {
        var id: String
        var key: SymmetricKey
    }

    /// Newest first.
    let keys: [Key]

    /// The key that seals.
    var currentKeyID: String { keys[0].id }

    /// - Throws: `ConfigurationError` when no key is configured, or a key is malformed or repeated.
    init(configuration: GantryConfiguration) throws {
        let variable = "GANTRY_DISCOVERY_SECRET_KEYS"
        var keys: [Key] = []
        for entry in (configuration.environment[variable] ?? "").split(separator: ",") {
            let parts = entry.trimmingCharacters(in: .whitespaces).split(separator: ":", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty, parts[0].count <= 64,
                  let data = Data(base64Encoded: parts[1]), data.count == 32 else {
                throw ConfigurationError(variable: variable,
                                         message: "each entry must be 'keyID:base64 of 32 random bytes', newest first, comma-separated")
            }
            guard !keys.contains(where: { $0.id == parts[0] }) else {
                throw ConfigurationError(variable: variable, message: "key ID '\(parts[0])' appears twice")
            }
            keys.append(Key(id: parts[0], key: SymmetricKey(data: data)))
        }
        if let data = configuration.secretKey, !keys.contains(where: { $0.id == "default" }) {
            keys.append(Key(id: "default", key: SymmetricKey(data: data)))
        }
        guard !keys.isEmpty else {
            throw ConfigurationError(variable: "GANTRY_SECRET_KEY",
                                     message: "discovery needs it (or GANTRY_DISCOVERY_SECRET_KEYS) to encrypt registry credentials at rest")
        }
        self.keys = keys
    }

    /// The clear credentials; `kind` is nil in rows sealed before token credentials existed (basic).
    struct Credentials: Codable, Sendable, Equatable {
        var kind: String?
        var username: String
        var password: String
    }

    /// Seals under the newest key. Returns the key ID and the sealed value.
    func seal(_ credentials: Credentials, registryID: UUID) throws -> (keyID: String, sealed: String) {
        let sealed = try AES.GCM.seal(try JSONEncoder().encode(credentials), using: keys[0].key,
                                      authenticating: Self.associatedData(registryID))
        guard let combined = sealed.combined else { throw CryptoKitError.incorrectParameterSize }
        return (keys[0].id, combined.base64EncodedString())
    }

    /// - Throws: `ProblemError` 500 naming the key when it is not configured; CryptoKit errors when the value
    ///   was tampered with or belongs to another row.
    func open(_ stored: String, keyID: String?, registryID: UUID) throws -> Credentials {
        let keyID = keyID ?? "default"
        guard let key = keys.first(where: { $0.id == keyID }) else {
            throw ProblemError.internal("the credentials of registry \(registryID) are sealed with key '\(keyID)', which is not configured")
        }
        guard let data = Data(base64Encoded: stored) else { throw CryptoKitError.incorrectParameterSize }
        let box = try AES.GCM.SealedBox(combined: data)
        let clear: Data
        do {
            clear = try AES.GCM.open(box, using: key.key, authenticating: Self.associatedData(registryID))
        } catch where keyID == "default" {
            // Rows sealed by the first release had no authenticated data.
            clear = try AES.GCM.open(box, using: key.key)
        }
        return try JSONDecoder().decode(Credentials.self, from: clear)
    }

    static func associatedData(_ registryID: UUID) -> Data {
        Data("gantry.discovery.registry:\(registryID.uuidString.lowercased())".utf8)
    }
}
