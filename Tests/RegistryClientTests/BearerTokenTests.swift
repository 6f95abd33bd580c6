import Foundation
import GantryTesting
import RegistryClient
import Testing

/// The Distribution "Token Authentication Specification" flow against a real registry
/// (`auth.token`): the registry challenges with `Bearer realm=…,service=…,scope=…`, the client gets a
/// token from the realm and retries. The token endpoint is a static file server answering a JWT that
/// the test signs (RS256, `x5c` = a certificate the registry trusts) with the `openssl` CLI.
@Suite(.enabled(if: RegistryTestSupport.liveTestsEnabled, "needs the corpus, docker-registry, skopeo, openssl and python3"))
struct BearerTokenTests {
    static let service = "gantry-test-registry"
    static let issuer = "gantry-test-issuer"

    @Test func tokenIsFetchedCachedAndScoped() async throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("gantry-token-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work.appendingPathComponent("realm"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        let key = work.appendingPathComponent("key.pem")
        let certificate = work.appendingPathComponent("cert.pem")
        try ProcessRunner.run("/usr/bin/openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key.path,
                                                   "-out", certificate.path, "-subj", "/CN=gantry-test-token-issuer", "-days", "1"])
        let jwt = try signedToken(key: key, certificate: certificate, repository: "secure/alpine")
        // `access_token` (the OAuth 2 name) rather than `token`, to exercise the alias.
        let body = try JSONSerialization.data(withJSONObject: ["access_token": jwt, "expires_in": 300])
        try body.write(to: work.appendingPathComponent("realm/token"))

        let tokenServer = try await StaticFileServer.start(serving: work.appendingPathComponent("realm"))
        defer { tokenServer.stop() }
        let realm = tokenServer.baseURL.appendingPathComponent("token")
        let registry = try await TestRegistry.start(
            tokenAuth: .init(realm: realm, service: Self.service, issuer: Self.issuer, rootCertBundle: certificate))
        defer { registry.stop() }
        try Skopeo.copy(ociArchive: try Corpus.file("images/alpine-3.7.3.oci.tar"), to: registry.host,
                        repository: "secure/alpine", tag: "1")

        let endpoint = RegistryTestSupport.endpoint(registry)
        try await RegistryTestSupport.withClient { client in
            let image = try await client.resolveImage(endpoint, repository: "secure/alpine", reference: "1")
            let config = try await client.config(endpoint, image: image)
            #expect(config.architecture == "amd64")
            let layer = try #require(image.manifest.layers.first)
            let bytes = try await client.blob(endpoint, repository: "secure/alpine", descriptor: layer)
            #expect(Int64(bytes.count) == layer.size)

            // Four registry requests, one token: the cache keeps it for the scope.
            let pullTokenRequests = tokenServer.requests.filter {
                $0.hasPrefix("GET /token?") && $0.contains("scope=repository:secure/alpine:pull") && !$0.contains("push")
            }
            #expect(pullTokenRequests.count == 1, "token requests: \(tokenServer.requests)")
            #expect(pullTokenRequests.first?.contains("service=\(Self.service)") == true)

            // The token grants secure/alpine only: the registry refuses another repository even with it.
            let error = await #expect(throws: RegistryError.self) {
                try await client.manifest(endpoint, repository: "other/alpine", reference: "1")
            }
            guard case .unauthorized = error else {
                Issue.record("expected unauthorized, got \(String(describing: error))")
                return
            }
        }
    }

    /// A JWT the registry accepts (distribution `registry/auth/token`): RS256, `x5c` holding the
    /// certificate, `iss`/`aud` as configured, and `access` for `repository` (pull and push).
    private func signedToken(key: URL, certificate: URL, repository: String) throws -> String {
        let pem = try String(contentsOf: certificate, encoding: .utf8)
        let der = pem.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
        let now = Int(Date().timeIntervalSince1970)
        let header: [String: Any] = ["alg": "RS256", "typ": "JWT", "x5c": [der]]
        let claims: [String: Any] = [
            "iss": Self.issuer, "sub": "gantry", "aud": Self.service, "exp": now + 3600, "nbf": now - 60, "iat": now - 60,
            "jti": UUID().uuidString,
            "access": [["type": "repository", "name": repository, "actions": ["pull", "push"]]],
        ]
        let signingInput = try base64URL(JSONSerialization.data(withJSONObject: header))
            + "." + base64URL(JSONSerialization.data(withJSONObject: claims))
        let input = key.deletingLastPathComponent().appendingPathComponent("signing-input")
        let signature = key.deletingLastPathComponent().appendingPathComponent("signature")
        try Data(signingInput.utf8).write(to: input)
        // RS256 is RSASSA-PKCS1-v1_5 over SHA-256, exactly what `openssl dgst -sign` writes with an RSA key.
        try ProcessRunner.run("/usr/bin/openssl", ["dgst", "-sha256", "-sign", key.path, "-out", signature.path, input.path])
        return signingInput + "." + base64URL(try Data(contentsOf: signature))
    }

    private func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
