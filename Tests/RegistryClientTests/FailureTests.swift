import Foundation
import GantryModel
import GantryTesting
import RegistryClient
import Testing

/// What the client does when the registry, its storage or the limits say no.
@Suite(.enabled(if: RegistryTestSupport.liveTestsEnabled, "needs the corpus, docker-registry and skopeo"))
struct FailureTests {
    @Test func corruptedLayerOnDiskIsADigestMismatch() async throws {
        let registry = try await RegistryTestSupport.registry(pushing: [("alpine-3.7.3", "alpine", "3.7.3", false)])
        defer { registry.stop() }
        let endpoint = RegistryTestSupport.endpoint(registry)
        try await RegistryTestSupport.withClient { client in
            let image = try await client.resolveImage(endpoint, repository: "alpine", reference: "3.7.3")
            let layer = try #require(image.manifest.layers.first)
            try flipByte(in: registry.blobDataFile(hex: layer.digest.encoded))

            let error = await #expect(throws: RegistryError.self) {
                try await client.blob(endpoint, repository: "alpine", descriptor: layer)
            }
            guard case .digestMismatch(let expected, let actual) = error else {
                Issue.record("expected digestMismatch, got \(String(describing: error))")
                return
            }
            #expect(expected == layer.digest)
            #expect(actual != layer.digest)
        }
    }

    @Test func corruptedManifestOnDiskIsADigestMismatch() async throws {
        let registry = try await RegistryTestSupport.registry(pushing: [("alpine-3.7.3", "alpine", "3.7.3", false)])
        defer { registry.stop() }
        let endpoint = RegistryTestSupport.endpoint(registry)
        try await RegistryTestSupport.withClient { client in
            let manifest = try await client.manifest(endpoint, repository: "alpine", reference: "3.7.3")
            // The filesystem driver keeps manifests as blobs too.
            try flipByte(in: registry.blobDataFile(hex: manifest.digest.encoded))
            for reference in ["3.7.3", manifest.digest.description] {
                let error = await #expect(throws: RegistryError.self) {
                    try await client.manifest(endpoint, repository: "alpine", reference: reference)
                }
                guard case .digestMismatch(let expected, _) = error else {
                    Issue.record("expected digestMismatch for \(reference), got \(String(describing: error))")
                    continue
                }
                #expect(expected == manifest.digest)
            }
        }
    }

    @Test func limitsAreEnforcedWithClearMessages() async throws {
        let registry = try await RegistryTestSupport.registry(pushing: [("alpine-3.7.3", "alpine", "3.7.3", false)])
        defer { registry.stop() }
        let endpoint = RegistryTestSupport.endpoint(registry)

        try await RegistryTestSupport.withClient(limits: .init(maxManifestBytes: 100)) { client in
            let error = await #expect(throws: RegistryError.self) {
                try await client.manifest(endpoint, repository: "alpine", reference: "3.7.3")
            }
            guard case .tooLarge(let what, _, let limit, let unit) = error else {
                Issue.record("expected tooLarge, got \(String(describing: error))")
                return
            }
            #expect(limit == 100 && unit == "bytes")
            #expect(what.contains("maxManifestBytes"))
            #expect(error?.description.contains("manifest alpine:3.7.3") == true)
        }

        try await RegistryTestSupport.withClient(limits: .init(maxLayers: 0)) { client in
            let error = await #expect(throws: RegistryError.self) {
                try await client.resolveImage(endpoint, repository: "alpine", reference: "3.7.3")
            }
            let subject = try #require(error.flatMap(layerLimitSubject))
            #expect(error == .tooLarge(what: subject, actual: 1, limit: 0, unit: "layers"))
            #expect(subject.contains("maxLayers"))
            #expect(error?.description.contains("1 layers, more than the limit of 0 layers") == true)
        }

        try await RegistryTestSupport.withClient { client in
            let image = try await client.resolveImage(endpoint, repository: "alpine", reference: "3.7.3")
            let layer = try #require(image.manifest.layers.first)

            // A descriptor that understates the size: the registry sends more than it says.
            var short = layer
            short.size -= 1
            let overrun = await #expect(throws: RegistryError.self) {
                try await client.blob(endpoint, repository: "alpine", descriptor: short)
            }
            guard case .tooLarge(_, let actual, let limit, "bytes") = overrun else {
                Issue.record("expected tooLarge, got \(String(describing: overrun))")
                return
            }
            #expect(limit == layer.size - 1)
            #expect(actual == layer.size)
        }

        try await RegistryTestSupport.withClient(limits: .init(maxBlobBytes: 1024)) { client in
            let image = try await client.resolveImage(endpoint, repository: "alpine", reference: "3.7.3")
            let layer = try #require(image.manifest.layers.first)
            let error = await #expect(throws: RegistryError.self) {
                try await client.blob(endpoint, repository: "alpine", descriptor: layer)
            }
            #expect(error?.description.contains("maxBlobBytes") == true)
        }
    }

    @Test func unknownRepositoryTagAndBlobAreNotFound() async throws {
        let registry = try await RegistryTestSupport.registry(pushing: [("alpine-3.7.3", "alpine", "3.7.3", false)])
        defer { registry.stop() }
        let endpoint = RegistryTestSupport.endpoint(registry)
        try await RegistryTestSupport.withClient { client in
            let repository = await #expect(throws: RegistryError.self) {
                try await client.manifest(endpoint, repository: "no/such-repo", reference: "latest")
            }
            guard case .notFound(let url, let detail) = repository else {
                Issue.record("expected notFound, got \(String(describing: repository))")
                return
            }
            #expect(url.hasSuffix("/v2/no/such-repo/manifests/latest"))
            #expect(detail.contains("UNKNOWN"), "the registry's error code is kept: \(detail)")

            let tag = await #expect(throws: RegistryError.self) {
                try await client.resolveImage(endpoint, repository: "alpine", reference: "9.9")
            }
            #expect(tag?.isNotFound == true)

            let missing = Descriptor(mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
                                     digest: Digest(sha256: sha256(Array("nothing".utf8))), size: 7)
            let blob = await #expect(throws: RegistryError.self) {
                try await client.blob(endpoint, repository: "alpine", descriptor: missing)
            }
            #expect(blob?.isNotFound == true)
        }
    }

    @Test func invalidNamesNeverReachTheRegistry() async throws {
        // No registry: validation happens before any request.
        let endpoint = RegistryEndpoint(baseURL: try #require(URL(string: "http://127.0.0.1:9")), credentials: nil)
        try await RegistryTestSupport.withClient { client in
            for (repository, reference) in [("Alpine", "latest"), ("alpine/../etc", "latest"), ("alpine", "../x"),
                                            ("alpine", "sha256:abc"), ("", "latest"), ("a__-b", "1")] {
                let error = await #expect(throws: RegistryError.self) {
                    try await client.manifest(endpoint, repository: repository, reference: reference)
                }
                guard case .invalidReference = error else {
                    Issue.record("\(repository):\(reference) gave \(String(describing: error))")
                    continue
                }
            }
        }
    }
}

private func layerLimitSubject(_ error: RegistryError) -> String? {
    if case .tooLarge(let what, _, _, _) = error { return what }
    return nil
}

private extension RegistryError {
    var isNotFound: Bool {
        if case .notFound = self { return true }
        return false
    }
}

/// Changes one byte in the middle of a file, keeping its length.
private func flipByte(in file: URL) throws {
    var data = try Data(contentsOf: file)
    let middle = data.count / 2
    data[middle] ^= 0xff
    try data.write(to: file)
}
