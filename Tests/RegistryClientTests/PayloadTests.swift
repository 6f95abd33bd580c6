import Foundation
import GantryModel
import GantryTesting
@testable import RegistryClient
import Testing

/// Real registry payloads from the corpus (`4-registry-payloads/`), byte for byte.
@Suite(.enabled(if: Corpus.isAvailable, "needs the test corpus"))
struct PayloadTests {
    func bytes(_ path: String) throws -> [UInt8] {
        Array(try Data(contentsOf: try Corpus.file("4-registry-payloads/\(path)")))
    }

    @Test func dockerHubManifestListPicksPlatforms() throws {
        let path = "docker-hub-raw-responses/hello-world.manifest-list.sha256-975f4b14.json"
        let body = try bytes(path)
        #expect(try ContentHasher.digest(of: body).encoded.hasPrefix("975f4b14"))
        #expect(try RegistryClient.mediaType(contentType: nil, body: body, what: path) == MediaType.dockerManifestList)
        let index = try RegistryClient.decode(ImageIndex.self, from: body, what: path)
        #expect(try index.manifest(for: .linuxAMD64).platform == .linuxAMD64)
        #expect(try index.manifest(for: .linuxARM64).platform?.variant == "v8")
        #expect(try index.manifest(for: Platform(os: "linux", architecture: "arm", variant: "v7")).platform?.variant == "v7")
        let windows = try index.manifest(for: Platform(os: "windows", architecture: "amd64"))
        #expect(windows.platform?.osVersion == "10.0.20348.469")
        let error = #expect(throws: RegistryError.self) {
            try index.manifest(for: Platform(os: "linux", architecture: "arm64", variant: "v9"))
        }
        guard case .platformNotFound(_, let available) = error else {
            Issue.record("expected platformNotFound, got \(String(describing: error))")
            return
        }
        #expect(available.count == 11)
    }

    @Test func ociVariantsPreferTheExactVariant() throws {
        let index = try RegistryClient.decode(ImageIndex.self, from: try bytes("manifests-containers-image/ocilist-variants.json"), what: "list")
        let v6 = try index.manifest(for: Platform(os: "linux", architecture: "arm", variant: "v6"))
        #expect(v6.platform?.variant == "v6")
        #expect(v6.annotations == nil, "the first v6 entry, not the zstd one")
        #expect(try index.manifest(for: Platform(os: "linux", architecture: "arm", variant: "v7")).platform?.variant == "v7")
    }

    @Test func dockerHubManifestAndConfigParse() throws {
        let manifestPath = "docker-hub-raw-responses/hello-world.linux-amd64.manifest.v2s2.sha256-f54a58bc.json"
        let body = try bytes(manifestPath)
        #expect(try ContentHasher.digest(of: body).encoded.hasPrefix("f54a58bc"))
        let manifest = try RegistryClient.decode(ImageManifest.self, from: body, what: manifestPath)
        #expect(manifest.mediaType == MediaType.dockerManifest)
        #expect(manifest.config.digest.encoded.hasPrefix("feb5d9fe"))
        #expect(manifest.layers.count == 1)

        let configPath = "docker-hub-raw-responses/hello-world.linux-amd64.config.sha256-feb5d9fe.json"
        let configBytes = try bytes(configPath)
        #expect(try ContentHasher.digest(of: configBytes) == manifest.config.digest)
        let config = try RegistryClient.decode(ImageConfig.self, from: configBytes, what: configPath)
        #expect(config.platform == .linuxAMD64)
        #expect(config.rootfs.diffIDs.count == manifest.layers.count)
        #expect(config.config?.cmd == ["/hello"])
    }

    @Test func schema1IsRecognisedForRejection() throws {
        for path in ["docker-hub-raw-responses/biocontainers-fastqc.manifest.v2s1-signed.json",
                     "manifests-containers-image/v2s1-unsigned.manifest.json"] {
            let type = try RegistryClient.mediaType(contentType: "application/json", body: try bytes(path), what: path)
            #expect(MediaType.isSchema1(type))
        }
    }

    @Test func artifactsAndNonDistributableLayersDecode() throws {
        // An artifact whose config has an empty digest and whose layers are null: named as an artifact,
        // not as broken JSON.
        let artifact = try bytes("manifests-containers-image/ociv1.artifact.json")
        let error = #expect(throws: RegistryError.self) {
            try RegistryClient.imageManifest(from: artifact, what: "artifact", limits: .init())
        }
        guard case .unsupportedMediaType(let message) = error else {
            Issue.record("expected unsupportedMediaType, got \(String(describing: error))")
            return
        }
        #expect(message.contains("application/vnd.oci.custom.artifact.config.v1+json"))
        #expect(throws: RegistryError.self) {
            try RegistryClient.decode(ImageManifest.self, from: artifact, what: "artifact")
        }
        let nondistributable = try RegistryClient.imageManifest(
            from: try bytes("manifests-containers-image/ociv1.nondistributable.manifest.json"), what: "nondistributable", limits: .init())
        #expect(nondistributable.layers.first?.mediaType == "application/vnd.oci.image.layer.nondistributable.v1.tar")
        let foreign = try RegistryClient.imageManifest(
            from: try bytes("windows-and-foreign-layers/windows-nanoserver1909-app.manifest.v2s2.foreign-layer.json"),
            what: "foreign", limits: .init())
        #expect(foreign.layers.contains { $0.urls?.isEmpty == false })
    }
}
