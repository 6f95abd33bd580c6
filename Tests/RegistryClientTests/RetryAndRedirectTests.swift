import Foundation
import GantryModel
import GantryTesting
import RegistryClient
import Testing

/// Retries and redirects against a real registry (`docker-registry`) behind a scripted front
/// (`ScriptedRegistryFront`): 429 and 503 answers with and without `Retry-After` before the registry's
/// own answer, and blob GETs redirected (307) to a blob store on another port, which refuses requests
/// that carry registry credentials (as S3 does for pre-signed URLs).
@Suite(.enabled(if: RegistryTestSupport.liveTestsEnabled, "needs the corpus, docker-registry, skopeo and python3"))
struct RetryAndRedirectTests {
    /// Quick backoff so the tests stay short; the doubling is still measurable.
    static let limits = RegistryLimits(maxRetries: 3, initialBackoff: .milliseconds(200), maxBackoff: .seconds(5))

    @Test("429 and 503, with and without Retry-After, are retried with backoff until the registry answers")
    func busyRegistryIsRetried() async throws {
        let registry = try await RegistryTestSupport.registry(pushing: [("alpine-3.7.3", "alpine", "3.7.3", false)])
        defer { registry.stop() }
        let front = try await ScriptedRegistryFront.start(for: registry, rules: [
            .init(match: "/manifests/", answers: [.init(429), .init(503)]),
            .init(match: "/blobs/", answers: [.init(429, retryAfter: "1"), .init(503, retryAfter: "0")]),
        ])
        defer { front.stop() }
        let endpoint = RegistryEndpoint(baseURL: front.baseURL, credentials: nil)
        try await RegistryTestSupport.withClient(limits: Self.limits) { client in
            let image = try await client.resolveImage(endpoint, repository: "alpine", reference: "3.7.3")
            let layer = try #require(image.manifest.layers.first)
            let bytes = try await client.blob(endpoint, repository: "alpine", descriptor: layer)
            #expect(Digest(sha256: sha256(bytes)) == layer.digest)
        }
        let manifests = front.requests.filter { $0.path.contains("/manifests/") }
        #expect(manifests.map(\.status) == [429, 503, 200])
        // No Retry-After: initialBackoff, then twice that.
        if manifests.count == 3 {
            #expect(manifests[1].time - manifests[0].time >= 0.19)
            #expect(manifests[2].time - manifests[1].time >= 0.39)
        }
        let blobs = front.requests.filter { $0.path.contains("/blobs/") }
        #expect(blobs.map(\.status) == [429, 503, 200])
        if blobs.count == 3 {
            #expect(blobs[1].time - blobs[0].time >= 0.95, "Retry-After: 1 was honoured")
        }
    }

    @Test("retries are bounded: after maxRetries the error names the status and the retries made")
    func retriesAreBoundedAndFailClearly() async throws {
        let registry = try await RegistryTestSupport.registry(pushing: [("alpine-3.7.3", "alpine", "3.7.3", false)])
        defer { registry.stop() }
        let front = try await ScriptedRegistryFront.start(for: registry, rules: [
            .init(match: "/manifests/", answers: Array(repeating: .init(503), count: 10)),
            // A Retry-After far beyond maxBackoff is capped, not obeyed.
            .init(match: "/blobs/", answers: Array(repeating: .init(429, retryAfter: "3600"), count: 10)),
        ])
        defer { front.stop() }
        let endpoint = RegistryEndpoint(baseURL: front.baseURL, credentials: nil)
        let limits = RegistryLimits(maxRetries: 2, initialBackoff: .milliseconds(50), maxBackoff: .milliseconds(300))
        try await RegistryTestSupport.withClient(limits: limits) { client in
            let manifest = await #expect(throws: RegistryError.self) {
                try await client.manifest(endpoint, repository: "alpine", reference: "3.7.3")
            }
            guard case .http(503, let url, let detail) = manifest else {
                Issue.record("expected HTTP 503, got \(String(describing: manifest))")
                return
            }
            #expect(url.hasSuffix("/v2/alpine/manifests/3.7.3"))
            #expect(detail.contains("gave up after 2 retries"), "\(detail)")
            #expect(detail.contains("UNAVAILABLE"), "the registry's last error is kept: \(detail)")

            let layer = Descriptor(mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
                                   digest: Digest(sha256: sha256(Array("x".utf8))), size: 1)
            let clock = ContinuousClock()
            let start = clock.now
            let blob = await #expect(throws: RegistryError.self) {
                try await client.blob(endpoint, repository: "alpine", descriptor: layer)
            }
            // Generous bound (the machine may be loaded): what matters is that 3600 s was not waited.
            #expect(clock.now - start < .seconds(60), "Retry-After: 3600 is capped at maxBackoff")
            #expect(blob?.description.contains("HTTP 429") == true)
            #expect(blob?.description.contains("gave up after 2 retries") == true)
        }
        #expect(front.requests.filter { $0.path.contains("/manifests/") }.count == 3, "one request and two retries")
        #expect(front.requests.filter { $0.path.contains("/blobs/") }.count == 3)
    }

    @Test("blob GETs redirected to storage are followed without the registry's credentials, and retried there")
    func blobRedirectsDropCredentials() async throws {
        let user = "gantry", password = "s3cret-\(UUID().uuidString.prefix(8))"
        let registry = try await RegistryTestSupport.registry(pushing: [("alpine-3.7.3", "alpine", "3.7.3", false)],
                                                              basicAuth: (user, password))
        defer { registry.stop() }
        let front = try await ScriptedRegistryFront.start(for: registry, rules: [
            .init(.store, match: "/blobs/", answers: [.init(503)]),
        ], redirectBlobs: true)
        defer { front.stop() }
        let endpoint = RegistryEndpoint(baseURL: front.baseURL, credentials: RegistryCredentials(username: user, password: password))
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("gantry-redirected-\(UUID())")
        defer { try? FileManager.default.removeItem(at: file) }
        try await RegistryTestSupport.withClient(limits: Self.limits) { client in
            let image = try await client.resolveImage(endpoint, repository: "alpine", reference: "3.7.3")
            let config = try await client.config(endpoint, image: image)
            #expect(config.os == "linux")
            let layer = try #require(image.manifest.layers.first)
            try await client.downloadBlob(endpoint, repository: "alpine", descriptor: layer, to: file)
            #expect(Digest(sha256: sha256(Array(try Data(contentsOf: file)))) == layer.digest)
        }
        let requests = front.requests
        let registryBlobs = requests.filter { $0.server == .front && $0.path.contains("/blobs/") }
        let stored = requests.filter { $0.server == .store }
        // Config and layer: each asked of the registry with credentials, then fetched from the store without.
        #expect(registryBlobs.count == 2)
        #expect(registryBlobs.allSatisfy { $0.status == 307 && $0.authorization?.hasPrefix("Basic ") == true })
        #expect(stored.map(\.status) == [503, 200, 200], "the store's 503 was retried at the store")
        #expect(stored.allSatisfy { $0.authorization == nil }, "credentials leaked to the blob store: \(stored)")
        #expect(stored.allSatisfy { $0.path.contains("X-Amz-Signature=scripted") }, "the redirect's query string is kept")
    }

    @Test("redirects are bounded by maxRedirects")
    func redirectsAreBounded() async throws {
        let registry = try await RegistryTestSupport.registry(pushing: [("alpine-3.7.3", "alpine", "3.7.3", false)])
        defer { registry.stop() }
        let front = try await ScriptedRegistryFront.start(for: registry, redirectBlobs: true)
        defer { front.stop() }
        let endpoint = RegistryEndpoint(baseURL: front.baseURL, credentials: nil)
        try await RegistryTestSupport.withClient(limits: RegistryLimits(maxRedirects: 0)) { client in
            let image = try await client.resolveImage(endpoint, repository: "alpine", reference: "3.7.3")
            let error = await #expect(throws: RegistryError.self) { try await client.config(endpoint, image: image) }
            #expect(error?.description.contains("maxRedirects") == true, "\(String(describing: error))")
        }
        #expect(front.requests.filter { $0.server == .store }.isEmpty)
    }
}
