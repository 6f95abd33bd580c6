import Foundation
import GantryRuntime
import HTTPTypes
import JWTKit
import Testing

@Suite struct ServiceTokenTests {
    static let key = "a-service-key-of-at-least-32-characters-0123"

    /// The claims a forger or a stale caller would send, signed with the real HS256 key.
    struct CraftedClaims: JWTPayload {
        var iss: IssuerClaim
        var aud: AudienceClaim
        var iat: IssuedAtClaim
        var exp: ExpirationClaim
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    static func crafted(audience: String, issuedAt: Date, expires: Date, key: String = key) async throws -> String {
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: key), digestAlgorithm: .sha256)
        return try await keys.sign(CraftedClaims(iss: .init(value: "scanner"), aud: .init(value: [audience]),
                                                 iat: .init(value: issuedAt), exp: .init(value: expires)))
    }

    @Test func roundTrip() async throws {
        let tokens = await ServiceTokens(key: Self.key, issuer: "scanner")
        let token = try await tokens.token(for: "billing")
        let claims = try await tokens.verify(token, audience: "billing")
        #expect(claims.iss.value == "scanner")
        #expect(claims.aud.value == ["billing"])
        let lifetime = claims.exp.value.timeIntervalSince(claims.iat.value)
        #expect(abs(lifetime - ServiceTokens.lifetime) < 1)
        // A verifier holding the same key but another name accepts it too.
        let other = await ServiceTokens(key: Self.key, issuer: "billing")
        #expect(try await other.verify(token, audience: "billing").iss.value == "scanner")
    }

    @Test func wrongAudienceRejected() async throws {
        let tokens = await ServiceTokens(key: Self.key, issuer: "scanner")
        let token = try await tokens.token(for: "billing")
        let error = await #expect(throws: ProblemError.self) { try await tokens.verify(token, audience: "notification") }
        #expect(error?.status == .unauthorized)
    }

    @Test func wrongKeyRejected() async throws {
        let forger = await ServiceTokens(key: String(repeating: "x", count: 40), issuer: "scanner")
        let tokens = await ServiceTokens(key: Self.key, issuer: "billing")
        let token = try await forger.token(for: "billing")
        await #expect(throws: ProblemError.self) { try await tokens.verify(token, audience: "billing") }
    }

    @Test func expiredRejected() async throws {
        let tokens = await ServiceTokens(key: Self.key, issuer: "billing")
        let now = Date()
        let expired = try await Self.crafted(audience: "billing", issuedAt: now.addingTimeInterval(-120),
                                             expires: now.addingTimeInterval(-60))
        await #expect(throws: ProblemError.self) { try await tokens.verify(expired, audience: "billing") }
        // The same crafting with a future expiry is accepted, so the rejection above is the expiry's.
        let fresh = try await Self.crafted(audience: "billing", issuedAt: now, expires: now.addingTimeInterval(30))
        #expect(try await tokens.verify(fresh, audience: "billing").iss.value == "scanner")
    }

    @Test(arguments: ["", "garbage", "a.b.c",
                      // alg "none", no signature
                      "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJpc3MiOiJ4IiwiYXVkIjpbImJpbGxpbmciXSwiaWF0Ijo0MTAyNDQ0ODAwLCJleHAiOjQxMDI0NDQ4MDB9."])
    func malformedRejected(_ token: String) async throws {
        let tokens = await ServiceTokens(key: Self.key, issuer: "billing")
        await #expect(throws: ProblemError.self) { try await tokens.verify(token, audience: "billing") }
    }
}
