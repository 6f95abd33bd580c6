import Foundation
import GantryRuntime
@testable import Ingestion
import RegistryClient
import Testing

/// Import source credentials go through GantryRuntime's one `SecretSealer` (AES-256-GCM under GANTRY_SECRET_KEY).
@Suite struct ImportCredentialSealerTests {
    static func configuration(secretKey: String?) throws -> GantryConfiguration {
        var environment = ["GANTRY_SERVICE_KEY": String(repeating: "s", count: 40)]
        environment["GANTRY_SECRET_KEY"] = secretKey
        return try GantryConfiguration(service: .ingestion, environment: environment)
    }

    static func key() -> String { Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString() }

    @Test("sealed in the shared text form, opened only with the same key, tampering and clear values refused")
    func sealAndOpen() throws {
        let sealer = try #require(ImportCredentialSealer(configuration: try Self.configuration(secretKey: Self.key())))
        let sealed = try sealer.seal(RegistryCredentials(username: "puller", password: "s3cret-pull-password"))
        #expect(sealed.hasPrefix(SecretSealer.prefix) && !sealed.contains("s3cret") && !sealed.contains("puller"))
        let opened = try sealer.open(sealed)
        #expect(opened.username == "puller" && opened.password == "s3cret-pull-password")
        // Another deployment key does not open it.
        let other = try #require(ImportCredentialSealer(configuration: try Self.configuration(secretKey: Self.key())))
        #expect(throws: (any Error).self) { try other.open(sealed) }
        // A flipped ciphertext byte fails authentication.
        var bytes = try #require(Data(base64Encoded: String(sealed.dropFirst(SecretSealer.prefix.count))))
        bytes[14] ^= 0x01
        #expect(throws: (any Error).self) { try sealer.open(SecretSealer.prefix + bytes.base64EncodedString()) }
        // A value never sealed is refused, not taken as credentials.
        #expect(throws: (any Error).self) { try sealer.open(#"{"username":"x","password":"clear"}"#) }
        // No key, no sealer (imports then take no source credentials).
        #expect(ImportCredentialSealer(configuration: try Self.configuration(secretKey: nil)) == nil)
    }
}
