import AsyncHTTPClient
import Crypto
import Foundation
import JWTKit
import Logging
import NIOCore
import NIOHTTP1

/// The roles a user holds within one tenant, named as the seed names Azure's built-in roles (docs/ROLES.md).
public enum TenantRole: String, Sendable, CaseIterable, Codable, Hashable {
    case owner = "Owner"
    case contributor = "Contributor"
    case securityAdmin = "Security Admin"
    case securityReader = "Security Reader"
}

/// Deployment-wide roles (not tied to a tenant): the platform operator creates tenants and runs the
/// feed, rescan and re-evaluation routes (docs/ROLES.md).
public enum PlatformRole: String, Sendable, CaseIterable, Codable, Hashable {
    case platformOperator = "Platform Operator"
}

/// Claims of a user's bearer token (RFC 7519 §4.1 registered claims plus Gantry's role claims):
/// `gantry_roles` maps a tenant UUID (lower case) to role names, e.g. `{"<uuid>": ["Owner"]}`;
/// `gantry_platform_roles` lists deployment-wide roles, e.g. `["Platform Operator"]`. Unknown role names are ignored.
public struct UserTokenClaims: JWTPayload, Equatable {
    public var sub: SubjectClaim
    public var iss: IssuerClaim
    public var aud: AudienceClaim
    public var exp: ExpirationClaim
    public var iat: IssuedAtClaim
    public var gantryRoles: [String: [String]]?
    public var gantryPlatformRoles: [String]?

    enum CodingKeys: String, CodingKey {
        case sub, iss, aud, exp, iat
        case gantryRoles = "gantry_roles"
        case gantryPlatformRoles = "gantry_platform_roles"
    }

    public init(subject: String, issuer: String, audience: String, issuedAt: Date, expiresAt: Date,
                tenantRoles: [String: [TenantRole]] = [:], platformRoles: [PlatformRole] = []) {
        sub = .init(value: subject)
        iss = .init(value: issuer)
        aud = .init(value: [audience])
        iat = .init(value: issuedAt)
        exp = .init(value: expiresAt)
        gantryRoles = Dictionary(uniqueKeysWithValues: tenantRoles.map { ($0.key.lowercased(), $0.value.map(\.rawValue)) })
        gantryPlatformRoles = platformRoles.map(\.rawValue)
    }

    public func verify(using algorithm: some JWTAlgorithm) async throws {
        try exp.verifyNotExpired()
    }
}

/// The caller of a public route, from a verified user token. Handlers read it as `AuthenticatedUser.current`
/// (for example to record who changed something in an audit log).
public struct AuthenticatedUser: Sendable, Equatable {
    /// The token's `sub`.
    public let subject: String
    /// The token's `iss`.
    public let issuer: String
    /// Roles per tenant; keys are tenant IDs in lower case.
    public let tenantRoles: [String: Set<TenantRole>]
    public let platformRoles: Set<PlatformRole>

    /// The user of the request being handled, nil outside a public route.
    @TaskLocal public static var current: AuthenticatedUser?

    init(claims: UserTokenClaims) {
        subject = claims.sub.value
        issuer = claims.iss.value
        var roles: [String: Set<TenantRole>] = [:]
        for (tenant, names) in claims.gantryRoles ?? [:] {
            roles[tenant.lowercased(), default: []].formUnion(names.compactMap(TenantRole.init(rawValue:)))
        }
        tenantRoles = roles
        platformRoles = Set((claims.gantryPlatformRoles ?? []).compactMap(PlatformRole.init(rawValue:)))
    }

    /// The roles held in `tenant` (compared case-insensitively, as UUID text).
    public func roles(in tenant: String) -> Set<TenantRole> { tenantRoles[tenant.lowercased()] ?? [] }
}

/// How user tokens are verified, from the `GANTRY_*` environment (README, "Configuration"):
///
/// | variable | meaning |
/// |---|---|
/// | `GANTRY_OIDC_ISSUER` | production: the OIDC issuer; a token's `iss` must equal it |
/// | `GANTRY_OIDC_JWKS_URL` | production: the issuer's JWKS (`jwks_uri`), fetched and cached; https unless development |
/// | `GANTRY_OIDC_JWKS` | instead of the URL: the JWKS document itself, pinned keys (no network; rotate by redeploying) |
/// | `GANTRY_OIDC_AUDIENCE` | the `aud` a token must carry (default `gantry`) |
/// | `GANTRY_DEV_TOKEN_KEY_FILE` | development profile only: PEM of the ES256 key `gantry token create` signs with |
///
/// With neither configured every public route answers 401 (fail closed).
public struct UserAuthSettings: Sendable {
    public struct OIDC: Sendable {
        public var issuer: String
        public var audience: String
        /// Where the keys come from: fetched from a URL, or pinned in the configuration.
        public var keys: KeySource
    }

    public enum KeySource: Sendable {
        case url(URL)
        case pinned(JWKS)
    }

    public var oidc: OIDC?
    /// PEM text of the development signing key (ES256), read from `GANTRY_DEV_TOKEN_KEY_FILE`.
    public var developmentKeyPEM: String?

    /// - Throws: `ConfigurationError` for half an OIDC configuration, a JWKS URL that is not https (http only in
    ///   development), a development key in the production profile, or an unreadable key file.
    public init(configuration: GantryConfiguration) throws {
        let environment = configuration.environment
        let issuer = environment["GANTRY_OIDC_ISSUER"].flatMap { $0.isEmpty ? nil : $0 }
        let jwksURL = environment["GANTRY_OIDC_JWKS_URL"].flatMap { $0.isEmpty ? nil : $0 }
        let pinned = environment["GANTRY_OIDC_JWKS"].flatMap { $0.isEmpty ? nil : $0 }
        let audience = environment["GANTRY_OIDC_AUDIENCE"] ?? DevelopmentTokens.audience
        switch (issuer, jwksURL, pinned) {
        case (nil, nil, nil):
            oidc = nil
        case let (issuer?, jwks?, nil):
            let schemes = configuration.profile == .development ? ["https", "http"] : ["https"]
            guard let url = URL(string: jwks), let scheme = url.scheme?.lowercased(), schemes.contains(scheme), url.host != nil else {
                throw ConfigurationError(variable: "GANTRY_OIDC_JWKS_URL",
                                         message: "'\(jwks)' is not an \(schemes.joined(separator: " or ")) URL")
            }
            oidc = OIDC(issuer: issuer, audience: audience, keys: .url(url))
        case let (issuer?, nil, document?):
            do {
                oidc = OIDC(issuer: issuer, audience: audience, keys: .pinned(try JSONDecoder().decode(JWKS.self, from: Data(document.utf8))))
            } catch {
                throw ConfigurationError(variable: "GANTRY_OIDC_JWKS", message: "is not a JWKS document (RFC 7517 §5): \(error)")
            }
        case (nil, _, _):
            throw ConfigurationError(variable: "GANTRY_OIDC_ISSUER", message: "must be set with GANTRY_OIDC_JWKS_URL or GANTRY_OIDC_JWKS")
        case (_, nil, nil):
            throw ConfigurationError(variable: "GANTRY_OIDC_JWKS_URL", message: "must be set (or GANTRY_OIDC_JWKS) when GANTRY_OIDC_ISSUER is")
        case (_, _?, _?):
            throw ConfigurationError(variable: "GANTRY_OIDC_JWKS", message: "give GANTRY_OIDC_JWKS_URL or GANTRY_OIDC_JWKS, not both")
        }
        if let file = environment["GANTRY_DEV_TOKEN_KEY_FILE"], !file.isEmpty {
            guard configuration.profile == .development else {
                throw ConfigurationError(variable: "GANTRY_DEV_TOKEN_KEY_FILE",
                                         message: "development tokens are refused in the production profile; configure GANTRY_OIDC_*")
            }
            do {
                developmentKeyPEM = try String(contentsOfFile: file, encoding: .utf8)
            } catch {
                throw ConfigurationError(variable: "GANTRY_DEV_TOKEN_KEY_FILE", message: "cannot read '\(file)': \(error)")
            }
        } else {
            developmentKeyPEM = nil
        }
    }
}

/// Why a user token was refused (always answered 401 with `WWW-Authenticate: Bearer error="invalid_token"`).
public struct UserTokenError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// Verifies user tokens: development tokens (ES256, `iss` `gantry-development`) with the development key, and
/// OIDC tokens by `iss` with the issuer's JWKS. Checks signature, `exp`, `iss` and `aud` (RFC 7519 §4.1).
public final class UserAuthenticator: Sendable {
    private let development: JWTKeyCollection?
    private let oidc: (settings: UserAuthSettings.OIDC, keys: JWKSCache)?

    /// Whether any way of verifying user tokens is configured.
    public var isConfigured: Bool { development != nil || oidc != nil }

    /// - Throws: `ConfigurationError` when the development key is not an ES256 (P-256) private key PEM.
    public init(settings: UserAuthSettings, httpClient: HTTPClient = .shared, logger: Logger) async throws {
        if let pem = settings.developmentKeyPEM {
            let key: ES256PrivateKey
            do { key = try ES256PrivateKey(pem: pem) } catch {
                throw ConfigurationError(variable: "GANTRY_DEV_TOKEN_KEY_FILE", message: "not an ES256 (P-256) private key PEM: \(error)")
            }
            let keys = JWTKeyCollection()
            await keys.add(ecdsa: key.publicKey, kid: DevelopmentTokens.developmentKeyID)
            development = keys
        } else {
            development = nil
        }
        if let settings = settings.oidc {
            let cache = switch settings.keys {
            case .url(let url): JWKSCache(url: url, httpClient: httpClient, logger: logger)
            case .pinned(let jwks): JWKSCache(pinned: jwks, logger: logger)
            }
            await cache.loadPinned()
            oidc = (settings, cache)
        } else {
            oidc = nil
        }
    }

    /// Verifies `token` and returns its user.
    /// - Throws: `UserTokenError` for a malformed token, a bad signature, an unknown issuer or key,
    ///   an expired token, or a wrong audience.
    public func authenticate(_ token: String) async throws -> AuthenticatedUser {
        let header: JWTHeader
        let unverified: UserTokenClaims
        do {
            (header, unverified, _) = try DefaultJWTParser().parse(Data(token.utf8), as: UserTokenClaims.self)
        } catch {
            throw UserTokenError("the bearer token is not a well-formed JWT with sub, iss, aud, exp and iat")
        }
        let claims: UserTokenClaims
        let audience: String
        if let development, unverified.iss.value == DevelopmentTokens.issuer {
            claims = try await verify(token, with: development)
            audience = DevelopmentTokens.audience
        } else if let (settings, cache) = oidc, unverified.iss.value == settings.issuer {
            guard let kid = header.kid else { throw UserTokenError("the token names no signing key (kid)") }
            guard let keys = try await cache.keys(containing: JWKIdentifier(string: kid)) else {
                throw UserTokenError("the token's signing key '\(kid)' is not in the issuer's JWKS")
            }
            claims = try await verify(token, with: keys)
            audience = settings.audience
        } else {
            throw UserTokenError("the token's issuer is not trusted by this deployment")
        }
        do {
            try claims.aud.verifyIntendedAudience(includes: audience)
        } catch {
            throw UserTokenError("the token is not addressed to audience '\(audience)'")
        }
        return AuthenticatedUser(claims: claims)
    }

    private func verify(_ token: String, with keys: JWTKeyCollection) async throws -> UserTokenClaims {
        do {
            return try await keys.verify(token, as: UserTokenClaims.self)
        } catch let error as JWTError where error.errorType == .claimVerificationFailure {
            throw UserTokenError("the token has expired")
        } catch {
            throw UserTokenError("the token's signature does not verify")
        }
    }
}

/// The issuer's JSON Web Key Set (RFC 7517 §5), fetched on first use and again when a token names a key
/// it does not hold (key rotation), at most once every `minimumRefresh`; stale after `maximumAge`.
actor JWKSCache {
    let url: URL?
    let pinned: JWKS?
    let httpClient: HTTPClient
    let logger: Logger
    let minimumRefresh: Duration
    let maximumAge: Duration
    private var keys = JWTKeyCollection()
    private var identifiers: Set<JWKIdentifier> = []
    private var fetchedAt: ContinuousClock.Instant?

    init(url: URL, httpClient: HTTPClient, logger: Logger,
         minimumRefresh: Duration = .seconds(5), maximumAge: Duration = .seconds(3600)) {
        self.url = url
        self.pinned = nil
        self.httpClient = httpClient
        self.logger = logger
        self.minimumRefresh = minimumRefresh
        self.maximumAge = maximumAge
    }

    /// Keys given in the configuration: never fetched.
    init(pinned: JWKS, logger: Logger) {
        self.url = nil
        self.pinned = pinned
        self.httpClient = .shared
        self.logger = logger
        self.minimumRefresh = .zero
        self.maximumAge = .zero
    }

    func loadPinned() async {
        if let pinned { await install(pinned) }
    }

    /// The key collection when it holds `kid` (refreshing once if it does not), else nil.
    func keys(containing kid: JWKIdentifier) async throws -> JWTKeyCollection? {
        guard url != nil else { return identifiers.contains(kid) ? keys : nil }
        let now = ContinuousClock.now
        let stale = fetchedAt.map { now - $0 > maximumAge } ?? true
        let mayRefresh = fetchedAt.map { now - $0 >= minimumRefresh } ?? true
        if (stale || !identifiers.contains(kid)) && mayRefresh {
            await refresh()
        }
        return identifiers.contains(kid) ? keys : nil
    }

    private func refresh() async {
        guard let url else { return }
        fetchedAt = .now
        do {
            var request = HTTPClientRequest(url: url.absoluteString)
            request.headers.add(name: "Accept", value: "application/json")
            let response = try await httpClient.execute(request, timeout: .seconds(10))
            guard response.status == .ok else { throw UserTokenError("HTTP \(response.status.code)") }
            let body = try await response.body.collect(upTo: 1 << 20)
            await install(try JSONDecoder().decode(JWKS.self, from: Data(body.readableBytesView)))
        } catch {
            // Keep the keys we have: a transient outage of the issuer must not log everyone out.
            logger.error("fetching the OIDC JWKS failed", metadata: ["url": "\(url)", "error": "\(error)"])
        }
    }

    /// Replaces the keys with those of `jwks` that can verify (keys without `kid` are skipped).
    private func install(_ jwks: JWKS) async {
        let fresh = JWTKeyCollection()
        var kids: Set<JWKIdentifier> = []
        for key in jwks.keys {
            guard let kid = key.keyIdentifier else { continue }
            do {
                try await fresh.add(jwk: key)
                kids.insert(kid)
            } catch {
                logger.warning("skipping a JWKS key that cannot verify", metadata: ["kid": "\(kid.string)", "error": "\(error)"])
            }
        }
        keys = fresh
        identifiers = kids
    }
}

/// Development user tokens: ES256 signed with the key in `GANTRY_DEV_TOKEN_KEY_FILE` (development profile only),
/// `iss` `gantry-development`, `aud` `gantry`. `gantry token create` and the tests sign with it.
public struct DevelopmentTokens: Sendable {
    public static let issuer = "gantry-development"
    /// The default audience of user tokens (also the OIDC default).
    public static let audience = "gantry"
    static let developmentKeyID = JWKIdentifier(string: "gantry-development")
    private let keys: JWTKeyCollection
    private let keyID: JWKIdentifier
    /// The `iss` of the tokens `token(subject:…)` makes.
    public let issuer: String
    /// The public key as a JWK (RFC 7517) with `kid`, for a JWKS that verifies these tokens.
    public let publicJWK: JWK

    /// - Parameter pem: an ES256 (P-256) private key, PKCS#8 or SEC1 PEM.
    /// - Parameter issuer, keyID: `iss` and `kid` of the tokens (the defaults make development tokens).
    /// - Throws: when `pem` is not such a key.
    public init(pem: String, issuer: String = DevelopmentTokens.issuer, keyID: String = "gantry-development") async throws {
        let key = try ES256PrivateKey(pem: pem)
        let kid = JWKIdentifier(string: keyID)
        let keys = JWTKeyCollection()
        await keys.add(ecdsa: key, kid: kid)
        self.keys = keys
        self.keyID = kid
        self.issuer = issuer
        let parameters = key.publicKey.parameters
        publicJWK = JWK.ecdsa(.es256, identifier: kid, x: parameters?.x, y: parameters?.y, curve: .p256)
    }

    /// The JWKS document (RFC 7517 §5) holding the public key of `pem` under `keyID`, e.g. for `GANTRY_OIDC_JWKS`.
    /// - Throws: when `pem` is not an ES256 private key.
    public static func jwksDocument(pem: String, keyID: String) throws -> String {
        let parameters = try ES256PrivateKey(pem: pem).publicKey.parameters
        let jwk = JWK.ecdsa(.es256, identifier: JWKIdentifier(string: keyID), x: parameters?.x, y: parameters?.y, curve: .p256)
        return String(decoding: try JSONEncoder().encode(JWKS(keys: [jwk])), as: UTF8.self)
    }

    /// A new ES256 private key as PKCS#8 PEM.
    public static func generateKeyPEM() -> String { P256.Signing.PrivateKey().pemRepresentation }

    /// A token for `subject` valid for `lifetime` seconds from now.
    public func token(subject: String, tenantRoles: [String: [TenantRole]], platformRoles: [PlatformRole] = [],
                      lifetime: TimeInterval = 3600) async throws -> String {
        let now = Date()
        return try await sign(UserTokenClaims(subject: subject, issuer: issuer, audience: Self.audience, issuedAt: now,
                                              expiresAt: now.addingTimeInterval(lifetime), tenantRoles: tenantRoles,
                                              platformRoles: platformRoles))
    }

    /// Signs arbitrary claims (tests use it for expired or misaddressed tokens).
    public func sign(_ claims: UserTokenClaims) async throws -> String {
        try await keys.sign(claims, kid: keyID)
    }
}
