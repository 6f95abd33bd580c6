import Foundation
import GantryModel
import GantryTesting
import RegistryClient
import Testing

/// Pulls real corpus images from a live registry after pushing them with skopeo.
@Suite(.enabled(if: RegistryTestSupport.liveTestsEnabled, "needs the corpus, docker-registry and skopeo"))
struct PullTests {
    @Test func ociImageResolvesByTagAndDigestWithVerifiedConfigAndLayer() async throws {
        let registry = try await RegistryTestSupport.registry(pushing: [("alpine-3.7.3", "library/alpine", "3.7.3", false)])
        defer { registry.stop() }
        let endpoint = RegistryTestSupport.endpoint(registry)
        try await RegistryTestSupport.withClient { client in
            let byTag = try await client.resolveImage(endpoint, repository: "library/alpine", reference: "3.7.3")
            #expect(byTag.manifestMediaType == MediaType.ociManifest)
            #expect(byTag.requestedDigest == byTag.manifestDigest)
            #expect(byTag.platform == nil)
            #expect(byTag.manifest.layers.count == 1)
            #expect(byTag.manifest.config.mediaType == MediaType.ociConfig)

            let byDigest = try await client.resolveImage(endpoint, repository: "library/alpine",
                                                         reference: byTag.manifestDigest.description)
            #expect(byDigest.manifest == byTag.manifest)
            #expect(byDigest.manifestDigest == byTag.manifestDigest)

            let fetched = try await client.manifest(endpoint, repository: "library/alpine", reference: "3.7.3")
            #expect(Digest(sha256: sha256(fetched.bytes)) == fetched.digest)

            let config = try await client.config(endpoint, image: byTag)
            #expect(config.os == "linux")
            #expect(config.architecture == "amd64")
            #expect(config.rootfs.type == "layers")
            #expect(config.rootfs.diffIDs.count == byTag.manifest.layers.count)

            let layer = try #require(byTag.manifest.layers.first)
            let bytes = try await client.blob(endpoint, repository: "library/alpine", descriptor: layer)
            #expect(Int64(bytes.count) == layer.size)
            #expect(Array(bytes.prefix(2)) == [0x1f, 0x8b], "the minirootfs layer is gzip")
            #expect(Digest(sha256: sha256(bytes)) == layer.digest)

            let file = FileManager.default.temporaryDirectory.appendingPathComponent("gantry-layer-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: file) }
            try await client.downloadBlob(endpoint, repository: "library/alpine", descriptor: layer, to: file)
            #expect(try Data(contentsOf: file) == Data(bytes))
        }
    }

    @Test func dockerSchema2ImageResolves() async throws {
        let registry = try await RegistryTestSupport.registry(pushing: [("alpine-3.12.12-docker", "alpine", "3.12.12", false)])
        defer { registry.stop() }
        let endpoint = RegistryTestSupport.endpoint(registry)
        try await RegistryTestSupport.withClient { client in
            let image = try await client.resolveImage(endpoint, repository: "alpine", reference: "3.12.12")
            #expect(image.manifestMediaType == MediaType.dockerManifest)
            #expect(image.manifest.config.mediaType == MediaType.dockerConfig)
            #expect(image.manifest.layers.allSatisfy { $0.mediaType == "application/vnd.docker.image.rootfs.diff.tar.gzip" })
            let config = try await client.config(endpoint, image: image)
            #expect(config.os == "linux")
            #expect(config.rootfs.diffIDs.count == image.manifest.layers.count)
            for layer in image.manifest.layers {
                let bytes = try await client.blob(endpoint, repository: "alpine", descriptor: layer)
                #expect(Int64(bytes.count) == layer.size)
            }
        }
    }

    @Test func multiArchIndexResolvesPerPlatform() async throws {
        let registry = try await RegistryTestSupport.registry(pushing: [("alpine-3.17.10-multiarch", "multi/alpine", "3.17", true)])
        defer { registry.stop() }
        let endpoint = RegistryTestSupport.endpoint(registry)
        try await RegistryTestSupport.withClient { client in
            let index = try await client.manifest(endpoint, repository: "multi/alpine", reference: "3.17")
            #expect(index.isIndex)

            let amd64 = try await client.resolveImage(endpoint, repository: "multi/alpine", reference: "3.17")
            #expect(amd64.requestedDigest == index.digest)
            #expect(amd64.manifestDigest != index.digest)
            #expect(amd64.platform == Platform.linuxAMD64)
            let amd64Config = try await client.config(endpoint, image: amd64)
            #expect(amd64Config.architecture == "amd64")

            let arm64 = try await client.resolveImage(endpoint, repository: "multi/alpine", reference: "3.17",
                                                      platform: .linuxARM64)
            #expect(arm64.platform?.architecture == "arm64")
            #expect(arm64.platform?.variant == "v8")
            #expect(arm64.manifestDigest != amd64.manifestDigest)
            let arm64Config = try await client.config(endpoint, image: arm64)
            #expect(arm64Config.architecture == "arm64")

            // A request without a variant matches the arm64 entry too.
            let anyARM = try await client.resolveImage(endpoint, repository: "multi/alpine", reference: "3.17",
                                                       platform: try Platform(parsing: "linux/arm64"))
            #expect(anyARM.manifestDigest == arm64.manifestDigest)

            // By the index digest, the same resolution.
            let byDigest = try await client.resolveImage(endpoint, repository: "multi/alpine", reference: index.digest.description)
            #expect(byDigest.manifestDigest == amd64.manifestDigest)

            let error = await #expect(throws: RegistryError.self) {
                try await client.resolveImage(endpoint, repository: "multi/alpine", reference: "3.17",
                                              platform: Platform(os: "linux", architecture: "s390x"))
            }
            guard case .platformNotFound(let requested, let available) = error else {
                Issue.record("expected platformNotFound, got \(String(describing: error))")
                return
            }
            #expect(requested.architecture == "s390x")
            #expect(Set(available.map(\.description)) == ["linux/amd64", "linux/arm64/v8"])
            #expect(error?.description.contains("linux/s390x") == true)
        }
    }
}
