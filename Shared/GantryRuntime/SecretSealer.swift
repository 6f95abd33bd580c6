import Crypto
import Foundation

/// The one sealer for secrets a service must use again later (registry and import credentials, webhook signing
/// secrets, chat webhook URLs), at rest: AES-256-GCM (NIST SP 800-38D) with a fresh 96-bit nonce per value, under
/// a ring of 32-byte keys for rotation without downtime — the newest key seals, every configured key opens, and a
/// re-seal pass moves values to the newest key before an old one is dropped.
///
/// Keys: `GANTRY_SECRET_KEY` is key ID `default` (the oldest); a service with a key ring variable (for example
/// `GANTRY_DISCOVERY_SECRET_KEYS`, `id:base64,id:base64…`, newest first) puts those keys before it.
///
/// Two forms: the byte core (`sealBytes`/`openBytes`: nonce (12 bytes) || ciphertext || tag (16 bytes), the key ID
/// kept beside it by the caller) and the text form (`seal`/`open`): `sealed:v1:` + base64 under key `default`, or
/// `sealed:v2:<keyID>:` + base64 under another key. The authenticated data (`context`, for example
/// `notification.channel:<id>`) binds a value to its row, so a sealed value copied onto another row does not open.
/// Text values stored before sealing existed (no prefix) open as themselves; `needsSealing` finds them.
public struct SecretSealer: Sendable {
    /// Prefix of the text form under key `default`.
    public static let prefix = "sealed:v1:"
    /// Prefix of the text form under a named key: `sealed:v2:<keyID>:<base64>`.
    public static let keyedPrefix = "sealed:v2:"
    /// The ID of `GANTRY_SECRET_KEY` in a key ring.
    public static let defaultKeyID = "default"

    /// One key of the ring.
    public struct Key: Sendable {
        /// 1 to 64 characters, no `:` or `,`.
        public var id: String
        public var key: SymmetricKey

        public init(id: String, key: SymmetricKey) {
            self.id = id
            self.key = key
        }
    }

    /// Newest first; never empty.
    public let keys: [Key]

    /// The key that seals.
    public var currentKeyID: String { keys[0].id }

    /// A sealer with `GANTRY_SECRET_KEY` only.
    /// - Throws: `ConfigurationError` naming `GANTRY_SECRET_KEY` when the deployment has none.
    public init(configuration: GantryConfiguration) throws {
        try self.init(configuration: configuration, keyRingVariable: nil)
    }

    /// A sealer with the keys of `keyRingVariable` (`id:base64 of 32 bytes`, comma-separated, newest first) followed by
    /// `GANTRY_SECRET_KEY` as `default` (unless the ring names `default` itself).
    /// - Throws: `ConfigurationError` when an entry is malformed or an ID repeats, or when no key is configured at all.
    public init(configuration: GantryConfiguration, keyRingVariable: String?) throws {
        var keys: [Key] = []
        if let variable = keyRingVariable {
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
        }
        if let data = configuration.secretKey, !keys.contains(where: { $0.id == Self.defaultKeyID }) {
            keys.append(Key(id: Self.defaultKeyID, key: SymmetricKey(data: data)))
        }
        guard !keys.isEmpty else {
            throw ConfigurationError(variable: "GANTRY_SECRET_KEY",
                                     message: "is required to keep secrets encrypted at rest (base64 of 32 random bytes)"
                                         + (keyRingVariable.map { " (or \($0))" } ?? ""))
        }
        self.keys = keys
    }

    /// A sealer with exactly these keys, newest first.
    /// - Precondition: `keys` is not empty.
    public init(keys: [Key]) {
        precondition(!keys.isEmpty, "a sealer needs at least one key")
        self.keys = keys
    }

    // MARK: Bytes

    /// Seals `clear` under the newest key, bound to `authenticating`.
    /// - Returns: the key ID and nonce (12 bytes) || ciphertext || tag (16 bytes).
    public func sealBytes(_ clear: Data, authenticating: Data) throws -> (keyID: String, combined: Data) {
        let box = try AES.GCM.seal(clear, using: keys[0].key, authenticating: authenticating)
        guard let combined = box.combined else { throw CryptoKitError.incorrectParameterSize }
        return (keys[0].id, combined)
    }

    /// Opens what `sealBytes` returned.
    /// - Throws: `ProblemError` 500 naming the key when it is not configured; CryptoKit errors when the value was
    ///   tampered with, sealed with other authenticated data (another row) or under another key with the same ID.
    public func openBytes(_ combined: Data, keyID: String, authenticating: Data) throws -> Data {
        guard let key = keys.first(where: { $0.id == keyID }) else {
            throw ProblemError.internal("a stored secret is sealed with key '\(keyID.prefix(64))', which is not configured")
        }
        return try AES.GCM.open(try AES.GCM.SealedBox(combined: combined), using: key.key, authenticating: authenticating)
    }

    // MARK: Text

    /// The text form of `clear` sealed under the newest key, bound to `context`.
    public func seal(_ clear: String, context: String) throws -> String {
        let (keyID, combined) = try sealBytes(Data(clear.utf8), authenticating: Data(context.utf8))
        let prefix = keyID == Self.defaultKeyID ? Self.prefix : Self.keyedPrefix + keyID + ":"
        return prefix + combined.base64EncodedString()
    }

    /// The clear text of a stored value: sealed values are opened and verified, legacy clear values returned.
    /// - Throws: `ProblemError` 500 when a sealed value does not open (unknown key, another row, tampering).
    public func open(_ stored: String, context: String) throws -> String {
        guard let (keyID, encoded) = Self.parse(stored) else { return stored }
        guard let data = Data(base64Encoded: String(encoded)),
              let clear = try? openBytes(data, keyID: keyID, authenticating: Data(context.utf8)) else {
            throw ProblemError.internal("a stored secret (\(context)) does not open with key '\(keyID.prefix(64))'")
        }
        return String(decoding: clear, as: UTF8.self)
    }

    /// Whether a stored value is still in clear (written before sealing existed).
    public static func needsSealing(_ stored: String) -> Bool { parse(stored) == nil }

    /// Whether a stored text value is in clear or sealed under a key other than the newest (a re-seal pass moves it).
    public func needsResealing(_ stored: String) -> Bool { Self.parse(stored)?.keyID != currentKeyID }

    /// The key ID and base64 of a sealed text value; nil for a clear one.
    static func parse(_ stored: String) -> (keyID: String, encoded: Substring)? {
        if stored.hasPrefix(prefix) { return (defaultKeyID, stored.dropFirst(prefix.count)) }
        guard stored.hasPrefix(keyedPrefix) else { return nil }
        let rest = stored.dropFirst(keyedPrefix.count)
        guard let colon = rest.firstIndex(of: ":") else { return nil }
        return (String(rest[..<colon]), rest[rest.index(after: colon)...])
    }
}
