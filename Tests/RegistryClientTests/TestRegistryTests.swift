import Foundation
import GantryTesting
import RegistryClient
import Testing

/// The test helpers themselves: notifications reach their endpoint; a dead registry is a clear error.
@Suite(.enabled(if: RegistryTestSupport.liveTestsEnabled, "needs the corpus, docker-registry, skopeo and python3"))
struct TestRegistryTests {
    @Test func notificationsArePostedToTheConfiguredEndpoint() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gantry-notify-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        // http.server answers POST with 501, but logs it: enough to see the registry deliver.
        let receiver = try await StaticFileServer.start(serving: directory)
        defer { receiver.stop() }
        let registry = try await TestRegistry.start(notifyURL: receiver.baseURL.appendingPathComponent("events"),
                                                    notifyHeaders: ["Authorization": "Bearer test-secret"])
        defer { registry.stop() }
        try Skopeo.copy(ociArchive: try Corpus.file("images/alpine-3.7.3.oci.tar"), to: registry.host,
                        repository: "notified/alpine", tag: "1")
        let deadline = ContinuousClock.now.advanced(by: .seconds(15))
        while ContinuousClock.now < deadline, !receiver.requests.contains(where: { $0.hasPrefix("POST /events") }) {
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(receiver.requests.contains { $0.hasPrefix("POST /events") }, "requests: \(receiver.requests)")
    }

    @Test func aStoppedRegistryIsATransportErrorWithoutRetryStorms() async throws {
        let registry = try await TestRegistry.start()
        let endpoint = RegistryTestSupport.endpoint(registry)
        registry.stop()
        let started = ContinuousClock.now
        try await RegistryTestSupport.withClient(limits: .init(maxRetries: 3, initialBackoff: .seconds(2)),
                                                 connectTimeoutSeconds: 1) { client in
            let error = await #expect(throws: RegistryError.self) {
                try await client.manifest(endpoint, repository: "alpine", reference: "latest")
            }
            guard case .transport(let url, _) = error else {
                Issue.record("expected transport, got \(String(describing: error))")
                return
            }
            #expect(url.contains(registry.host))
        }
        // AsyncHTTPClient retries the connect until its 1 s timeout; the client adds no backoff rounds
        // (three would take 2 + 4 + 8 = 14 s more; the bound leaves room for a loaded machine).
        #expect(ContinuousClock.now - started < .seconds(12))
    }
}
