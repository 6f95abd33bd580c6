@testable import RegistryClient
import Testing

/// `WWW-Authenticate` parsing on header values as real registries send them.
struct AuthChallengeTests {
    @Test func dockerHubBearer() {
        let challenges = AuthChallenge.parse(
            #"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#)
        #expect(challenges == [AuthChallenge(scheme: "bearer", parameters: [
            "realm": "https://auth.docker.io/token", "service": "registry.docker.io",
            "scope": "repository:library/alpine:pull",
        ])])
    }

    @Test func insufficientScopeWithSeveralScopes() throws {
        // distribution's answer when a token lacks an action; scopes are space-separated.
        let challenge = try #require(AuthChallenge.parse(
            #"Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:org/app:pull repository:org/base:pull",error="insufficient_scope""#).first)
        #expect(challenge.realm == "https://ghcr.io/token")
        #expect(challenge.scope == "repository:org/app:pull repository:org/base:pull")
        #expect(challenge.parameters["error"] == "insufficient_scope")
    }

    @Test func basicFromDistributionHtpasswdAndECR() {
        #expect(AuthChallenge.parse(#"Basic realm="gantry-test""#)
            == [AuthChallenge(scheme: "basic", parameters: ["realm": "gantry-test"])])
        let ecr = AuthChallenge.parse(#"Basic realm="https://123456789012.dkr.ecr.us-east-1.amazonaws.com/",service="ecr.amazonaws.com""#)
        #expect(ecr.first?.scheme == "basic")
        #expect(ecr.first?.service == "ecr.amazonaws.com")
    }

    @Test func quayWithoutScopeAndOddSpacing() {
        let challenges = AuthChallenge.parse(#"  bearer   realm = "https://quay.io/v2/auth" , service="quay.io""#)
        #expect(challenges == [AuthChallenge(scheme: "bearer", parameters: ["realm": "https://quay.io/v2/auth", "service": "quay.io"])])
        #expect(challenges.first?.scope == nil)
    }

    @Test func severalChallengesInOneValue() {
        let challenges = AuthChallenge.parse(#"Bearer realm="https://r.example/token",service="r", Basic realm="r""#)
        #expect(challenges.map(\.scheme) == ["bearer", "basic"])
        #expect(challenges.last?.realm == "r")
    }

    @Test func quotedPairsUnquotedValuesAndGarbage() {
        let escaped = AuthChallenge.parse(#"Bearer realm="https://x/t?a=\"b\"",service=unquoted"#)
        #expect(escaped.first?.realm == #"https://x/t?a="b""#)
        #expect(escaped.first?.service == "unquoted")
        #expect(AuthChallenge.parse("").isEmpty)
        #expect(AuthChallenge.parse(",,, ").isEmpty)
        // An unterminated quote keeps what there is instead of failing.
        #expect(AuthChallenge.parse(#"Bearer realm="https://x/t"#).first?.realm == "https://x/t")
    }
}
