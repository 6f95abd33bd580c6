import Crypto
import Foundation
import GantryRuntime
import HTTPTypes
import Logging
import PostgresNIO

/// A registry as a webhook sender: discovery's facts and the SHA-256 of its webhook secret (nil when
/// none is set).
struct WebhookRegistration: Sendable {
    var registry: RegisteredRegistry
    var secretSHA256: [UInt8]?
}

/// Registry facts by login-server host (webhooks) and by ID (processing, rescans), cached for `ttl` so
/// that a burst of events costs one discovery call per registry rather than one per request; unknown
/// hosts are remembered for `negativeTTL`. Concurrent misses for one key share one lookup. At most
/// `capacity` hosts and IDs each are kept: unauthenticated requests naming random hosts cannot grow it.
///
/// Staleness is bounded by the TTL: a plan switched off, or a secret rotated on another replica, takes
/// effect within it (a secret set on this replica at once).
final class RegistryDirectory: Sendable {
    private let discovery: any DiscoveryPeer
    private let database: PostgresClient
    private let logger: Logger
    private let byHost: ExpiringCache<String, WebhookRegistration?>
    private let byID: ExpiringCache<UUID, WebhookRegistration?>

    init(discovery: any DiscoveryPeer, database: PostgresClient, logger: Logger, ttl: Duration = .seconds(10),
         negativeTTL: Duration = .seconds(2), capacity: Int = 10_000) {
        self.discovery = discovery
        self.database = database
        self.logger = logger
        let lifetime: @Sendable (WebhookRegistration?) -> Duration = { $0 == nil ? negativeTTL : ttl }
        byHost = ExpiringCache(capacity: capacity, lifetime: lifetime)
        byID = ExpiringCache(capacity: capacity, lifetime: lifetime)
    }

    /// The registry registered for `host` with its secret hash; nil when none is.
    /// - Throws: when discovery or the database cannot be reached.
    func registration(host: String) async throws -> WebhookRegistration? {
        try await byHost.value(for: host) { [discovery, database, logger] in
            guard let registry = try await discovery.registry(host: host) else { return nil }
            return WebhookRegistration(registry: registry,
                                       secretSHA256: try await Self.secretHash(registry, database: database, logger: logger))
        }
    }

    /// The registry with this ID; nil when discovery no longer knows it.
    /// - Throws: when discovery or the database cannot be reached.
    func registration(id: UUID) async throws -> WebhookRegistration? {
        try await byID.value(for: id) { [discovery, database, logger] in
            guard let registry = try await discovery.registry(id: id) else { return nil }
            return WebhookRegistration(registry: registry,
                                       secretSHA256: try await Self.secretHash(registry, database: database, logger: logger))
        }
    }

    /// Forgets what is cached about a registry (after its secret changed here).
    func invalidate(registryID: UUID) async {
        await byID.removeAll { id, _ in id == registryID }
        await byHost.removeAll { _, registration in registration?.registry.registryID == registryID }
    }

    /// The registry's secret hash, read as its tenant (discovery's fact): a secret stored under another tenant
    /// is invisible (row-level security), so the registry counts as having none.
    private static func secretHash(_ registry: RegisteredRegistry, database: PostgresClient,
                                   logger: Logger) async throws -> [UInt8]? {
        try await database.withTenant(registry.tenantID, logger: logger) { connection in
            let rows = try await connection.query(
                "SELECT secret_sha256 FROM ingestion.webhook_secrets WHERE registry_id = \(registry.registryID)", logger: logger)
            for try await hex in rows.decode(String.self) { return WebhookSecrets.bytes(hex: hex) }
            return nil
        }
    }
}

/// Webhook secrets: generated, hashed for storage, and checked against what a registry sends.
enum WebhookSecrets {
    /// 32 random bytes from the system CSPRNG (swift-crypto `SymmetricKey`), base64url without padding.
    static func generate() -> String {
        SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }.base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// SHA-256 of the secret: what is stored, so a database dump does not reveal it.
    static func hash(_ secret: String) -> [UInt8] { Array(SHA256.hash(data: Data(secret.utf8))) }

    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    static func bytes(hex: String) -> [UInt8]? {
        guard hex.count == 64 else { return nil }
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            guard let byte = UInt8(hex[index..<next], radix: 16) else { return nil }
            bytes.append(byte)
            index = next
        }
        return bytes
    }

    /// Checks the `Authorization` header a webhook came with: `Bearer <secret>` (distribution's endpoint
    /// `headers`, ACR's custom headers, Harbor's auth header set that way) or the bare secret (Harbor sends
    /// its auth header verbatim). Compared by hash in constant time.
    /// - Parameter allowUnset: accept any request when the registry has no secret (development profile).
    /// - Throws: `ProblemError` 401 saying what is missing or wrong, never the expected value.
    static func verify(_ authorization: String?, registration: WebhookRegistration, allowUnset: Bool) throws {
        guard let expected = registration.secretSHA256 else {
            if allowUnset { return }
            throw ProblemError(.unauthorized,
                               "registry \(registration.registry.loginServer) has no webhook secret; set one with PUT /v1/tenants/{tenantId}/registries/{registryId}/webhook-secret")
        }
        // Swift's own string operations: Foundation's trimming bridges to NSString, a measurable share of a
        // webhook request's CPU.
        var presented = Substring(authorization ?? "").trimmingSpaces
        guard !presented.isEmpty else {
            throw ProblemError(.unauthorized, "the webhook carries no Authorization header (Bearer <webhook secret>)")
        }
        if presented.count > 7, presented.prefix(7).lowercased() == "bearer " {
            presented = presented.dropFirst(7).trimmingSpaces
        }
        let actual = hash(String(presented))
        var difference: UInt8 = 0
        for (a, b) in zip(actual, expected) { difference |= a ^ b }
        guard difference == 0, actual.count == expected.count else {
            throw ProblemError(.unauthorized, "the webhook secret does not match registry \(registration.registry.loginServer)'s")
        }
    }
}

private extension Substring {
    /// Without leading and trailing spaces and tabs (the optional whitespace of RFC 9110, section 5.6.3).
    var trimmingSpaces: Substring {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return "" }
        return self[first...last]
    }
}
