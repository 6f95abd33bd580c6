import AsyncHTTPClient
import Discovery
import Foundation
import GantryRuntime
import GantryTesting
import Hummingbird
import JWTKit
import Logging
import NIOCore
import NIOHTTP1
import PostgresNIO
import ServiceLifecycle
import Synchronization
import Testing

/// User tokens on a running discovery service: bad input (issue 6, "Bad input"), the split between user and
/// service tokens, and production OIDC with a JWKS served over real HTTP.
@Suite struct UserAuthTests {
    /// Runs discovery alone (with `extra` variables) for `body`.
    static func withDiscovery(extra: [String: String] = [:],
                              _ body: @Sendable (TestEnvironment) async throws -> Void) async throws {
        let database = try await TestDatabase.create()
        do {
            let env = try TestEnvironment(database: database, extra: extra)
            let app = try await buildDiscoveryApplication(configuration: env.configuration(.discovery))
            try await withRunningServices([app], readyPorts: [env.ports[.discovery]!]) { try await body(env) }
        } catch {
            await database.drop()
            throw error
        }
        await database.drop()
    }

    /// Creates a tenant as the platform operator and returns its ID.
    static func createTenant(_ env: TestEnvironment, token: String? = nil) async throws -> String {
        let operatorToken = if let token { token } else { try await TestUserTokens.token([:], platform: [.platformOperator]) }
        let reply = try await TestHTTP.json(.POST, env.url(.discovery).absoluteString + "/v1/tenants",
                                            ["name": "auth-\(UUID().uuidString.prefix(8))"],
                                            headers: ["Content-Type": "application/json", "Authorization": "Bearer \(operatorToken)"])
        try #require(reply.status == 201, "\(reply.status) \(reply.text)")
        return try #require((try reply.json() as? [String: Any])?["id"] as? String)
    }

    static func get(_ url: String, authorization: String?) async throws -> TestHTTP.Reply {
        try await TestHTTP.send(.GET, url, headers: authorization.map { ["Authorization": $0] } ?? [:], authorize: false)
    }

    static func expect401(_ reply: TestHTTP.Reply, _ what: String, invalidToken: Bool = true,
                          sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(reply.status == 401, "\(what): \(reply.status) \(reply.text)", sourceLocation: sourceLocation)
        #expect(reply.header("Content-Type") == "application/problem+json", "\(what)", sourceLocation: sourceLocation)
        let challenge = reply.header("WWW-Authenticate") ?? ""
        #expect(challenge.hasPrefix("Bearer "), "\(what): WWW-Authenticate '\(challenge)'", sourceLocation: sourceLocation)
        if invalidToken {
            #expect(challenge.contains(#"error="invalid_token""#), "\(what): '\(challenge)'", sourceLocation: sourceLocation)
        }
    }

    @Test("no, malformed, foreign-key, expired, misaddressed or wrongly issued tokens are 401 with WWW-Authenticate; another tenant's is 403")
    func badTokens() async throws {
        try await Self.withDiscovery { env in
            let tenant = try await Self.createTenant(env)
            let url = env.url(.discovery).absoluteString + "/v1/tenants/\(tenant)/subscriptions/\(UUID())/registries"
            let signer = try await TestUserTokens.signer()
            let now = Date()
            func claims(issuer: String = DevelopmentTokens.issuer, audience: String = DevelopmentTokens.audience,
                        expiresIn: TimeInterval = 600) -> UserTokenClaims {
                UserTokenClaims(subject: "mallory", issuer: issuer, audience: audience, issuedAt: now.addingTimeInterval(-1200),
                                expiresAt: now.addingTimeInterval(expiresIn), tenantRoles: [tenant: [.owner]])
            }

            // The valid token reaches the handler (the subscription does not exist: 404).
            let valid = try await signer.sign(claims())
            let reached = try await Self.get(url, authorization: "Bearer \(valid)")
            #expect(reached.status == 404, "\(reached.status) \(reached.text)")
            #expect(try await Self.get(url, authorization: "bearer \(valid)").status == 404, "the scheme is case-insensitive")

            Self.expect401(try await Self.get(url, authorization: nil), "no token", invalidToken: false)
            Self.expect401(try await Self.get(url, authorization: "Basic dXNlcjpwYXNz"), "basic credentials", invalidToken: false)
            Self.expect401(try await Self.get(url, authorization: "Bearer not.a.jwt"), "malformed")
            Self.expect401(try await Self.get(url, authorization: "Bearer \(valid.dropLast(4))AAAA"), "tampered signature")
            let foreign = try await DevelopmentTokens(pem: DevelopmentTokens.generateKeyPEM())
            Self.expect401(try await Self.get(url, authorization: "Bearer \(try await foreign.sign(claims()))"), "another key")
            let expired = try await signer.sign(claims(expiresIn: -60))
            Self.expect401(try await Self.get(url, authorization: "Bearer \(expired)"), "expired")
            let misaddressed = try await signer.sign(claims(audience: "some-other-api"))
            Self.expect401(try await Self.get(url, authorization: "Bearer \(misaddressed)"), "wrong audience")
            let wrongIssuer = try await signer.sign(claims(issuer: "https://issuer.example.test"))
            Self.expect401(try await Self.get(url, authorization: "Bearer \(wrongIssuer)"), "untrusted issuer")
            // A service token is not a user token.
            let service = try await env.tokens(issuer: "scanner").token(for: "discovery")
            Self.expect401(try await Self.get(url, authorization: "Bearer \(service)"), "service token on a public route")

            // Another tenant's Owner: 403, and nothing is created.
            let other = try await Self.createTenant(env)
            let otherOwner = try await TestUserTokens.token([other: [.owner]])
            let denied = try await TestHTTP.json(.POST, env.url(.discovery).absoluteString + "/v1/tenants/\(tenant)/subscriptions",
                                                 ["name": "stolen", "cloudType": "commercial"],
                                                 headers: ["Content-Type": "application/json", "Authorization": "Bearer \(otherOwner)"])
            #expect(denied.status == 403, "\(denied.text)")
            #expect(denied.header("Content-Type") == "application/problem+json")
            let count = try await env.database.withClient { client in
                // System access: discovery's tables have row-level security (a query without a tenant sees nothing).
                try await client.withSystemAccess(logger: Logger(label: "test-db")) { connection in
                    var total = 0
                    for try await (value) in try await connection.query("SELECT count(*)::int FROM discovery.subscriptions",
                                                                        logger: Logger(label: "test-db")).decode(Int.self) {
                        total = value
                    }
                    return total
                }
            }
            #expect(count == 0)
            // A role that is not enough: 403 naming the roles that are.
            let reader = try await TestUserTokens.token([tenant: [.securityReader]])
            let readerPost = try await TestHTTP.json(.POST, env.url(.discovery).absoluteString + "/v1/tenants/\(tenant)/subscriptions",
                                                     ["name": "x", "cloudType": "commercial"],
                                                     headers: ["Content-Type": "application/json", "Authorization": "Bearer \(reader)"])
            #expect(readerPost.status == 403 && readerPost.text.contains("Owner"), "\(readerPost.text)")
            // An unknown tenant the token names: 404 from the handler, as before.
            let ghost = UUID().uuidString.lowercased()
            let ghostOwner = try await TestUserTokens.token([ghost: [.owner]])
            let unknown = try await TestHTTP.json(.POST, env.url(.discovery).absoluteString + "/v1/tenants/\(ghost)/subscriptions",
                                                  ["name": "x", "cloudType": "commercial"],
                                                  headers: ["Content-Type": "application/json", "Authorization": "Bearer \(ghostOwner)"])
            #expect(unknown.status == 404, "\(unknown.text)")
            // A path no table row covers is denied, not passed through.
            let owner = try await TestUserTokens.token([tenant: [.owner]], platform: [.platformOperator])
            let uncovered = try await Self.get(env.url(.discovery).absoluteString + "/v1/tenants/\(tenant)/secrets",
                                               authorization: "Bearer \(owner)")
            #expect(uncovered.status == 403, "\(uncovered.text)")
            // The probes need no token.
            #expect(try await Self.get(env.url(.discovery).absoluteString + "/healthz", authorization: nil).status == 200)
        }
    }

    @Test("service tokens only on /internal/ routes, user tokens never there")
    func internalRoutesTakeServiceTokensOnly() async throws {
        try await Self.withDiscovery { env in
            let url = env.url(.discovery).absoluteString + "/internal/v1/registries/lookup?loginServer=nowhere.example.com"
            let user = try await TestUserTokens.token([UUID().uuidString: [.owner]], platform: [.platformOperator])
            let refused = try await Self.get(url, authorization: "Bearer \(user)")
            #expect(refused.status == 401, "\(refused.text)")
            let service = try await env.tokens(issuer: "ingestion").token(for: "discovery")
            let accepted = try await Self.get(url, authorization: "Bearer \(service)")
            #expect(accepted.status != 401 && accepted.status != 403, "\(accepted.status) \(accepted.text)")
            let publicRoute = env.url(.discovery).absoluteString + "/v1/tenants"
            let serviceOnPublic = try await TestHTTP.json(.POST, publicRoute, ["name": "x"], headers: [
                "Content-Type": "application/json", "Authorization": "Bearer \(service)"])
            Self.expect401(serviceOnPublic, "service token on POST /v1/tenants")
        }
    }

    @Test("production OIDC: tokens verified with the issuer's JWKS over HTTP, refreshed when a new key appears")
    func oidcWithJWKS() async throws {
        let first = ES256PrivateKey()
        let second = ES256PrivateKey()
        let rogue = ES256PrivateKey()
        let jwks = JWKSServer(keys: [("k1", first)])
        let jwksPort = try FreePort.next()
        let issuer = "https://login.example.test/gantry"
        let audience = "api://gantry-test"
        let extra = ["GANTRY_OIDC_ISSUER": issuer, "GANTRY_OIDC_AUDIENCE": audience,
                     "GANTRY_OIDC_JWKS_URL": "http://127.0.0.1:\(jwksPort)/.well-known/jwks.json", "GANTRY_OIDC_JWKS": ""]
        try await withRunningServices([jwks.application(port: jwksPort)], readyPorts: [jwksPort]) {
            try await Self.withDiscovery(extra: extra) { env in
                func sign(_ key: ES256PrivateKey, kid: String, issuer claimedIssuer: String? = nil, audience claimedAudience: String? = nil,
                          expires: TimeInterval = 600, tenants: [String: [TenantRole]] = [:],
                          platform: [PlatformRole] = [.platformOperator]) async throws -> String {
                    let keys = JWTKeyCollection()
                    await keys.add(ecdsa: key, kid: JWKIdentifier(string: kid))
                    let now = Date()
                    return try await keys.sign(UserTokenClaims(subject: "oidc-user", issuer: claimedIssuer ?? issuer,
                                                               audience: claimedAudience ?? audience,
                                                               issuedAt: now, expiresAt: now.addingTimeInterval(expires),
                                                               tenantRoles: tenants, platformRoles: platform),
                                               kid: JWKIdentifier(string: kid))
                }
                let tenant = try await Self.createTenant(env, token: try await sign(first, kid: "k1"))
                #expect(jwks.fetches == 1)
                let url = env.url(.discovery).absoluteString + "/v1/tenants/\(tenant)/subscriptions/\(UUID())/registries"
                let owner = try await sign(first, kid: "k1", tenants: [tenant: [.owner]], platform: [])
                #expect(try await Self.get(url, authorization: "Bearer \(owner)").status == 404)

                let forged = try await sign(rogue, kid: "k1", tenants: [tenant: [.owner]])
                Self.expect401(try await Self.get(url, authorization: "Bearer \(forged)"), "signed by a key not in the JWKS")
                Self.expect401(try await Self.get(url, authorization: "Bearer \(try await sign(first, kid: "k1", issuer: "https://evil.test"))"),
                               "wrong issuer")
                Self.expect401(try await Self.get(url, authorization: "Bearer \(try await sign(first, kid: "k1", audience: "other"))"),
                               "wrong audience")
                Self.expect401(try await Self.get(url, authorization: "Bearer \(try await sign(first, kid: "k1", expires: -30))"),
                               "expired")
                // Development tokens are still accepted beside OIDC in the development profile.
                let development = try await TestUserTokens.signer().token(subject: "dev", tenantRoles: [tenant: [.owner]])
                #expect(try await Self.get(url, authorization: "Bearer \(development)").status == 404)

                // Key rotation: a token naming a key the cache lacks makes it refetch (rate-limited), and then passes.
                let rotated = try await sign(second, kid: "k2", tenants: [tenant: [.securityReader]], platform: [])
                Self.expect401(try await Self.get(url, authorization: "Bearer \(rotated)"), "a key the issuer does not publish yet")
                jwks.publish([("k1", first), ("k2", second)])
                try await Task.sleep(for: .milliseconds(5200))
                let afterRotation = try await Self.get(url, authorization: "Bearer \(rotated)")
                #expect(afterRotation.status == 404, "\(afterRotation.status) \(afterRotation.text)")
                #expect(jwks.fetches >= 2)
            }
        }
    }
}

/// The user-authentication settings refuse what would weaken them.
@Suite struct UserAuthSettingsTests {
    static func settings(_ extra: [String: String]) throws -> UserAuthSettings {
        var environment = ["GANTRY_SERVICE_KEY": String(repeating: "k", count: 40), "GANTRY_PROFILE": "production"]
        environment.merge(extra) { $1 }
        return try UserAuthSettings(configuration: GantryConfiguration(service: .billing, environment: environment))
    }

    @Test("production refuses the development key, half an OIDC configuration, a plain-HTTP JWKS URL and a bad pinned JWKS")
    func refusals() throws {
        let cases: [(String, [String: String])] = [
            ("GANTRY_DEV_TOKEN_KEY_FILE", ["GANTRY_DEV_TOKEN_KEY_FILE": TestUserTokens.keyFile]),
            ("GANTRY_OIDC_JWKS_URL", ["GANTRY_OIDC_ISSUER": "https://issuer.test"]),
            ("GANTRY_OIDC_ISSUER", ["GANTRY_OIDC_JWKS_URL": "https://issuer.test/keys"]),
            ("GANTRY_OIDC_JWKS_URL", ["GANTRY_OIDC_ISSUER": "https://issuer.test", "GANTRY_OIDC_JWKS_URL": "http://issuer.test/keys"]),
            ("GANTRY_OIDC_JWKS", ["GANTRY_OIDC_ISSUER": "https://issuer.test", "GANTRY_OIDC_JWKS": "{\"keys\": 5}"]),
            ("GANTRY_OIDC_JWKS", ["GANTRY_OIDC_ISSUER": "https://issuer.test", "GANTRY_OIDC_JWKS_URL": "https://issuer.test/keys",
                                  "GANTRY_OIDC_JWKS": TestUserTokens.jwksDocument]),
        ]
        for (variable, extra) in cases {
            let error = #expect(throws: ConfigurationError.self, "\(extra)") { try Self.settings(extra) }
            #expect(error?.variable == variable, "\(extra): \(String(describing: error))")
        }
        let development = try Self.settings(["GANTRY_PROFILE": "development", "GANTRY_DEV_TOKEN_KEY_FILE": TestUserTokens.keyFile])
        #expect(development.developmentKeyPEM?.contains("PRIVATE KEY") == true)
        let production = try Self.settings(["GANTRY_OIDC_ISSUER": "https://issuer.test", "GANTRY_OIDC_JWKS_URL": "https://issuer.test/keys"])
        #expect(production.oidc?.audience == "gantry")
    }
}

/// A JWKS endpoint (RFC 7517 §5) on a real Hummingbird server, counting fetches.
final class JWKSServer: Sendable {
    private let state: Mutex<(document: String, fetches: Int)>

    init(keys: [(String, ES256PrivateKey)]) {
        state = Mutex((Self.document(keys), 0))
    }

    var fetches: Int { state.withLock { $0.fetches } }

    func publish(_ keys: [(String, ES256PrivateKey)]) {
        let document = Self.document(keys)
        state.withLock { $0.document = document }
    }

    static func document(_ keys: [(String, ES256PrivateKey)]) -> String {
        let set = JWKS(keys: keys.map { kid, key in
            let parameters = key.publicKey.parameters!
            return JWK.ecdsa(.es256, identifier: JWKIdentifier(string: kid), x: parameters.x, y: parameters.y, curve: .p256)
        })
        return String(decoding: try! JSONEncoder().encode(set), as: UTF8.self)
    }

    func application(port: Int) -> some Service {
        let router = Router()
        router.get("/readyz") { _, _ in "ok" }
        router.get("/.well-known/jwks.json") { [self] _, _ -> Response in
            let document = state.withLock { state -> String in
                state.fetches += 1
                return state.document
            }
            return Response(status: .ok, headers: [.contentType: "application/json"],
                            body: .init(byteBuffer: ByteBuffer(string: document)))
        }
        return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)))
    }
}
