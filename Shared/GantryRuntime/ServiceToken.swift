import Foundation
import HTTPTypes
import Hummingbird
import JWTKit

/// Claims of a service-to-service token (ARCHITECTURE.md, "How the services talk"):
/// `iss` the calling service, `aud` the called service, `exp` 60 s after `iat`. RFC 7519, section 4.1.
public struct ServiceTokenClaims: JWTPayload, Equatable {
    public var iss: IssuerClaim
    public var aud: AudienceClaim
    public var iat: IssuedAtClaim
    public var exp: ExpirationClaim

    public func verify(using algorithm: some JWTAlgorithm) async throws {
        try exp.verifyNotExpired()
    }
}

/// Signs and verifies service tokens with the deployment's HMAC-SHA256 key (`GANTRY_SERVICE_KEY`).
public struct ServiceTokens: Sendable {
    private let keys: JWTKeyCollection
    /// The name this process signs as (`iss`).
    public let issuer: String
    /// Lifetime of a token, in seconds.
    public static let lifetime: TimeInterval = 60

    public init(key: String, issuer: String) async {
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: key), digestAlgorithm: .sha256)
        self.keys = keys
        self.issuer = issuer
    }

    /// A token for calling `audience`, valid for 60 seconds.
    public func token(for audience: String) async throws -> String {
        let now = Date()
        return try await keys.sign(ServiceTokenClaims(
            iss: .init(value: issuer), aud: .init(value: [audience]), iat: .init(value: now),
            exp: .init(value: now.addingTimeInterval(Self.lifetime))))
    }

    /// Verifies a token addressed to `audience`.
    /// - Throws: `ProblemError` 401 when the signature, expiry or audience is wrong.
    public func verify(_ token: String, audience: String) async throws -> ServiceTokenClaims {
        do {
            let claims = try await keys.verify(token, as: ServiceTokenClaims.self)
            try claims.aud.verifyIntendedAudience(includes: audience)
            return claims
        } catch {
            throw ProblemError(.unauthorized, "the service token is invalid, expired or not addressed to \(audience)")
        }
    }
}

/// Requires a valid service token (`Authorization: Bearer <JWT>` addressed to this service) on every
/// route under `/internal/`; other routes pass through.
public struct ServiceAuthMiddleware<Context: RequestContext>: RouterMiddleware {
    let tokens: ServiceTokens
    let audience: String

    public init(tokens: ServiceTokens, audience: String) {
        self.tokens = tokens
        self.audience = audience
    }

    public func handle(_ request: Request, context: Context,
                       next: (Request, Context) async throws -> Response) async throws -> Response {
        // Judge the path as the router matches it: it ignores empty segments, so `//internal/x` is `/internal/x`.
        let firstSegment = request.uri.path.split(separator: "/", omittingEmptySubsequences: true).first
        guard firstSegment?.lowercased() == "internal" else { return try await next(request, context) }
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer ") else {
            return Self.unauthorized(request.uri.path, "internal routes require a service token (Authorization: Bearer …)",
                                     error: nil)
        }
        do {
            _ = try await tokens.verify(String(header.dropFirst("Bearer ".count)), audience: audience)
        } catch let problem as ProblemError {
            return Self.unauthorized(request.uri.path, problem.detail, error: "invalid_token")
        }
        return try await next(request, context)
    }

    /// 401 problem+json with the challenge RFC 6750 §3 asks for.
    static func unauthorized(_ path: String, _ detail: String, error: String?) -> Response {
        ProblemMiddleware<Context>.challenge(status: .unauthorized, detail: detail, instance: path, realm: "gantry-internal",
                                            error: error)
    }
}
