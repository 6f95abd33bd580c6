import GantryTesting
import RegistryClient
import Testing

/// A registry behind `auth.htpasswd` (HTTP Basic, RFC 7617).
@Suite(.enabled(if: RegistryTestSupport.liveTestsEnabled, "needs the corpus, docker-registry and skopeo"))
struct BasicAuthTests {
    @Test func credentialsAreRequiredAndUsed() async throws {
        let user = (user: "gantry", password: "s3cret-\(Int.random(in: 1000...9999))")
        let registry = try await RegistryTestSupport.registry(pushing: [("alpine-3.7.3", "private/alpine", "1", false)],
                                                              basicAuth: user)
        defer { registry.stop() }
        try await RegistryTestSupport.withClient { client in
            let anonymous = await #expect(throws: RegistryError.self) {
                try await client.manifest(RegistryTestSupport.endpoint(registry), repository: "private/alpine", reference: "1")
            }
            guard case .unauthorized(_, let detail) = anonymous else {
                Issue.record("expected unauthorized, got \(String(describing: anonymous))")
                return
            }
            #expect(detail.contains("no credentials"))

            let wrong = RegistryTestSupport.endpoint(registry, credentials: .init(username: user.user, password: "wrong"))
            let refused = await #expect(throws: RegistryError.self) {
                try await client.manifest(wrong, repository: "private/alpine", reference: "1")
            }
            guard case .unauthorized = refused else {
                Issue.record("expected unauthorized, got \(String(describing: refused))")
                return
            }

            let endpoint = RegistryTestSupport.endpoint(registry, credentials: .init(username: user.user, password: user.password))
            let image = try await client.resolveImage(endpoint, repository: "private/alpine", reference: "1")
            let config = try await client.config(endpoint, image: image)
            #expect(config.os == "linux")
            let layer = try #require(image.manifest.layers.first)
            let bytes = try await client.blob(endpoint, repository: "private/alpine", descriptor: layer)
            #expect(Int64(bytes.count) == layer.size)
        }
    }
}
