import Foundation
import GantryModel
import GantryTesting
import RegistryClient
import Testing

/// The push side (distribution spec "Pushing blobs", "Mounting a blob from another repository", "Pushing
/// Manifests") against a real registry with token authentication: one bearer token per scope, asked for
/// `repository:<target>:pull,push` (and `repository:<source>:pull` for a mount).
@Suite(.enabled(if: RegistryTestSupport.liveTestsEnabled, "needs the corpus, docker-registry, skopeo, openssl and python3"))
struct PushTests {
    static let service = "gantry-test-registry"
    static let issuer = "gantry-test-issuer"

    @Test func mountPutManifestAndSkipWithABearerToken() async throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("gantry-push-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work.appendingPathComponent("realm"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        let key = work.appendingPathComponent("key.pem")
        let certificate = work.appendingPathComponent("cert.pem")
        try ProcessRunner.run("/usr/bin/openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key.path,
                                                   "-out", certificate.path, "-subj", "/CN=gantry-test-token-issuer", "-days", "1"])
        let jwt = try signedToken(key: key, certificate: certificate, repositories: ["secure/src", "secure/dst"])
        try JSONSerialization.data(withJSONObject: ["token": jwt, "expires_in": 300]).write(to: work.appendingPathComponent("realm/token"))
        let tokenServer = try await StaticFileServer.start(serving: work.appendingPathComponent("realm"))
        defer { tokenServer.stop() }
        let registry = try await TestRegistry.start(
            tokenAuth: .init(realm: tokenServer.baseURL.appendingPathComponent("token"), service: Self.service,
                             issuer: Self.issuer, rootCertBundle: certificate))
        defer { registry.stop() }
        try Skopeo.copy(ociArchive: try Corpus.file("images/alpine-3.7.3.oci.tar"), to: registry.host,
                        repository: "secure/src", tag: "1")

        let endpoint = RegistryTestSupport.endpoint(registry)
        try await RegistryTestSupport.withClient { client in
            let manifest = try await client.manifest(endpoint, repository: "secure/src", reference: "1")
            let image = try await client.resolveImage(endpoint, repository: "secure/src", reference: "1")
            let blobs = [image.manifest.config] + image.manifest.layers
            #expect(try await client.blobSize(endpoint, repository: "secure/dst", digest: blobs[0].digest) == nil)
            for blob in blobs {
                let (transfer, bytes) = try await client.transferBlob(from: endpoint, repository: "secure/src", to: endpoint,
                                                                      repository: "secure/dst", descriptor: blob)
                #expect(transfer == .mounted)
                #expect(bytes == 0)
                #expect(try await client.blobSize(endpoint, repository: "secure/dst", digest: blob.digest) == blob.size)
            }
            let digest = try await client.putManifest(endpoint, repository: "secure/dst", reference: "copied", manifest: manifest)
            #expect(digest == manifest.digest)
            let copied = try await client.manifest(endpoint, repository: "secure/dst", reference: "copied")
            #expect(copied.bytes == manifest.bytes && copied.mediaType == manifest.mediaType)
            // Everything is there now: nothing is sent again.
            let (again, _) = try await client.transferBlob(from: endpoint, repository: "secure/src", to: endpoint,
                                                           repository: "secure/dst", descriptor: blobs[1])
            #expect(again == .skipped)

            // Push scopes were asked for, with the source's pull scope for the mount.
            let requests = tokenServer.requests
            #expect(requests.contains { $0.contains("scope=repository:secure/dst:") && $0.contains("push") }, "\(requests)")
            #expect(requests.contains { $0.contains("scope=repository:secure/src:pull") }, "\(requests)")

            // A repository the token does not cover is refused, not retried forever.
            let error = await #expect(throws: RegistryError.self) {
                try await client.putManifest(endpoint, repository: "other/dst", reference: "x", manifest: manifest)
            }
            guard case .unauthorized = error else {
                Issue.record("expected unauthorized, got \(String(describing: error))")
                return
            }
        }
    }

    @Test func streamedCopyBetweenRegistriesChecksTheDigest() async throws {
        let source = try await RegistryTestSupport.registry(pushing: [("alpine-3.7.3", "library/alpine", "3.7", false)])
        defer { source.stop() }
        let target = try await TestRegistry.start()
        defer { target.stop() }
        try await RegistryTestSupport.withClient { client in
            let from = RegistryTestSupport.endpoint(source), to = RegistryTestSupport.endpoint(target)
            let image = try await client.resolveImage(from, repository: "library/alpine", reference: "3.7")
            let layer = try #require(image.manifest.layers.first)
            let (transfer, bytes) = try await client.transferBlob(from: from, repository: "library/alpine", to: to,
                                                                  repository: "copy/alpine", descriptor: layer)
            #expect(transfer == .copied)
            #expect(bytes == layer.size)
            let back = try await client.blob(to, repository: "copy/alpine", descriptor: layer)
            #expect(Int64(back.count) == layer.size)
            // A descriptor whose digest does not match the bytes: the target refuses the upload.
            let config = image.manifest.config
            let forged = Descriptor(mediaType: layer.mediaType, digest: config.digest, size: layer.size)
            await #expect(throws: RegistryError.self) {
                try await client.copyBlob(from: from, repository: "library/alpine", to: to, repository: "copy/forged",
                                          descriptor: forged)
            }
            #expect(try await client.blobSize(to, repository: "copy/forged", digest: config.digest) == nil)
        }
    }

    /// A JWT the registry accepts: RS256 with `x5c`, `access` pull and push on `repositories`.
    private func signedToken(key: URL, certificate: URL, repositories: [String]) throws -> String {
        let pem = try String(contentsOf: certificate, encoding: .utf8)
        let der = pem.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
        let now = Int(Date().timeIntervalSince1970)
        let header: [String: Any] = ["alg": "RS256", "typ": "JWT", "x5c": [der]]
        let claims: [String: Any] = [
            "iss": Self.issuer, "sub": "gantry", "aud": Self.service, "exp": now + 3600, "nbf": now - 60, "iat": now - 60,
            "jti": UUID().uuidString,
            "access": repositories.map { ["type": "repository", "name": $0, "actions": ["pull", "push"]] },
        ]
        let signingInput = try base64URL(JSONSerialization.data(withJSONObject: header))
            + "." + base64URL(JSONSerialization.data(withJSONObject: claims))
        let input = key.deletingLastPathComponent().appendingPathComponent("signing-input")
        let signature = key.deletingLastPathComponent().appendingPathComponent("signature")
        try Data(signingInput.utf8).write(to: input)
        try ProcessRunner.run("/usr/bin/openssl", ["dgst", "-sha256", "-sign", key.path, "-out", signature.path, input.path])
        return signingInput + "." + base64URL(try Data(contentsOf: signature))
    }

    private func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
