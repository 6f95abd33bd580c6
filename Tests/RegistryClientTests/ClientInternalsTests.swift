import Foundation
import GantryModel
@testable import RegistryClient
import Testing

/// Media-type detection, retry delays, token responses and name grammar, without a registry.
struct ClientInternalsTests {
    @Test func mediaTypeFromContentTypeOrBody() throws {
        #expect(try RegistryClient.mediaType(contentType: "application/vnd.oci.image.index.v1+json; charset=utf-8",
                                             body: [], what: "m") == MediaType.ociIndex)
        let index = Array(#"{"schemaVersion":2,"manifests":[]}"#.utf8)
        #expect(try RegistryClient.mediaType(contentType: "application/json", body: index, what: "m") == MediaType.ociIndex)
        let manifest = Array(#"{"schemaVersion":2,"config":{},"layers":[]}"#.utf8)
        #expect(try RegistryClient.mediaType(contentType: nil, body: manifest, what: "m") == MediaType.ociManifest)
        let schema1 = Array(#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#.utf8)
        #expect(try RegistryClient.mediaType(contentType: "text/plain", body: schema1, what: "m") == MediaType.dockerSchema1)
        #expect(throws: RegistryError.self) {
            try RegistryClient.mediaType(contentType: "application/json", body: Array("not json".utf8), what: "m")
        }
        #expect(throws: RegistryError.self) {
            try RegistryClient.mediaType(contentType: "application/json", body: Array(#"{"hello":1}"#.utf8), what: "m")
        }
    }

    @Test func backoffDoublesHonoursRetryAfterAndIsCapped() async throws {
        try await RegistryTestSupport.withClient(limits: .init(initialBackoff: .milliseconds(100), maxBackoff: .seconds(5))) { client in
            #expect(client.backoff(attempt: 0, retryAfter: nil) == .milliseconds(100))
            #expect(client.backoff(attempt: 2, retryAfter: nil) == .milliseconds(400))
            #expect(client.backoff(attempt: 10, retryAfter: nil) == .seconds(5))
            #expect(client.backoff(attempt: 0, retryAfter: "2") == .seconds(2))
            #expect(client.backoff(attempt: 0, retryAfter: "3600") == .seconds(5))
            let soon = RegistryClient.httpDateFormatter().string(from: Date().addingTimeInterval(3))
            let delay = client.backoff(attempt: 0, retryAfter: soon)
            #expect(delay > .seconds(1) && delay <= .seconds(3))
            #expect(client.backoff(attempt: 1, retryAfter: "soon") == .milliseconds(200))
        }
    }

    @Test func tokenResponseAcceptsBothNames() throws {
        let token = try JSONDecoder().decode(RegistryClient.TokenResponse.self, from: Data(#"{"token":"a","expires_in":300}"#.utf8))
        #expect(token.token == "a" && token.expiresIn == 300)
        let oauth = try JSONDecoder().decode(RegistryClient.TokenResponse.self, from: Data(#"{"access_token":"b"}"#.utf8))
        #expect(oauth.accessToken == "b" && oauth.expiresIn == nil)
    }

    @Test func repositoryAndReferenceGrammar() throws {
        for name in ["alpine", "library/alpine", "a.b_c__d-e--f/g", "registry/x0/y-1"] {
            #expect(throws: Never.self) { try ReferenceGrammar.validateRepository(name) }
        }
        for name in ["", "Alpine", "a/", "/a", "a//b", "-a", "a-", "a..b", "a___b", "a._b", "a/../b", "a b", String(repeating: "a", count: 256)] {
            #expect(throws: RegistryError.self, "\(name)") { try ReferenceGrammar.validateRepository(name) }
        }
        #expect(try ReferenceGrammar.parseReference("3.7.3") == nil)
        #expect(try ReferenceGrammar.parseReference("_x-Y.1") == nil)
        let digest = "sha256:" + String(repeating: "ab", count: 32)
        #expect(try ReferenceGrammar.parseReference(digest)?.description == digest)
        for reference in ["", ".x", "-x", String(repeating: "a", count: 129), "a/b", "sha256:xyz", "md5:" + String(repeating: "a", count: 32)] {
            #expect(throws: RegistryError.self, "\(reference)") { try ReferenceGrammar.parseReference(reference) }
        }
    }

    @Test func platformParsingAndMatching() throws {
        #expect(try Platform(parsing: "linux/arm64/v8") == .linuxARM64)
        #expect(try Platform(parsing: "linux/amd64").description == "linux/amd64")
        for bad in ["linux", "linux/", "/amd64", "a/b/c/d"] {
            #expect(throws: RegistryError.self) { try Platform(parsing: bad) }
        }
        #expect(Platform.linuxARM64.isSatisfied(by: Platform(os: "linux", architecture: "arm64")))
        #expect(!Platform.linuxARM64.isSatisfied(by: Platform(os: "linux", architecture: "arm64", variant: "v9")))
        #expect(Platform(os: "linux", architecture: "arm").isSatisfied(by: Platform(os: "linux", architecture: "arm", variant: "v6")))
        #expect(!Platform.linuxAMD64.isSatisfied(by: Platform(os: "windows", architecture: "amd64")))
    }

    @Test func attestationEntriesAreNeverChosen() throws {
        // A BuildKit index as `docker buildx build --provenance` pushes it: the attestation comes first.
        let attestation = "sha256:" + String(repeating: "1", count: 64)
        let image = "sha256:" + String(repeating: "2", count: 64)
        let json = """
        {"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
         {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"\(attestation)","size":566,
          "annotations":{"vnd.docker.reference.digest":"\(image)","vnd.docker.reference.type":"attestation-manifest"},
          "platform":{"architecture":"unknown","os":"unknown"}},
         {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"\(image)","size":480,
          "platform":{"architecture":"amd64","os":"linux"}}]}
        """
        let index = try RegistryClient.decode(ImageIndex.self, from: Array(json.utf8), what: "index")
        #expect(try index.manifest(for: .linuxAMD64).digest.description == image)
        let error = #expect(throws: RegistryError.self) {
            try index.manifest(for: Platform(os: "unknown", architecture: "unknown"))
        }
        #expect(error == .platformNotFound(requested: Platform(os: "unknown", architecture: "unknown"), available: [.linuxAMD64]))
    }

    @Test func malformedJSONNamesTheField() {
        let json = #"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:nothex","size":1},"layers":[]}"#
        let error = #expect(throws: RegistryError.self) {
            try RegistryClient.decode(ImageManifest.self, from: Array(json.utf8), what: "manifest r@d")
        }
        guard case .malformed(let message) = error else {
            Issue.record("expected malformed, got \(String(describing: error))")
            return
        }
        #expect(message.contains("manifest r@d"))
        #expect(message.contains("sha256:nothex"))
        let missing = #expect(throws: RegistryError.self) {
            try RegistryClient.decode(ImageManifest.self, from: Array(#"{"schemaVersion":2,"layers":[]}"#.utf8), what: "m")
        }
        #expect(missing?.description.contains("config") == true)
    }
}
