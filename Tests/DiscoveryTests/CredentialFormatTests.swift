@testable import Discovery
import Crypto
import Foundation
import GantryRuntime
import GantryTesting
import NIOHTTP1
import PostgresNIO
import Testing

/// Discovery's credentials now go through GantryRuntime's `SecretSealer` key ring; rows written by earlier releases
/// must still open. The old forms are written here with swift-crypto directly, as those releases wrote them.
@Suite struct CredentialFormatTests {
    @Test("rows sealed by earlier releases open: no authenticated data under the default key; registry-bound under a ring key")
    func earlierFormsStillOpen() async throws {
        let ringKey = SymmetricKey(size: .bits256)
        let ring = "k1:" + ringKey.withUnsafeBytes { Data($0) }.base64EncodedString()
        try await DiscoveryHarness.run(extra: ["GANTRY_DISCOVERY_SECRET_KEYS": ring]) { h in
            let tenant = try await h.createTenant()
            let subscription = try await h.createSubscription(tenantID: tenant)
            let url = h.registriesURL(tenantID: tenant, subscriptionID: subscription)
            var ids: [String: String] = [:]
            for host in ["first.example.com", "ring.example.com"] {
                let created = try await TestHTTP.json(.POST, url, ["loginServer": host,
                                                                   "credentials": ["username": "new", "password": "new-pw"]])
                try #require(created.status == 201, "\(created.text)")
                #expect(try created.object()["credentialKeyId"] as? String == "k1")
                ids[host] = try #require(try created.object()["id"] as? String)
            }
            // First release: GANTRY_SECRET_KEY, no authenticated data, no kind.
            let defaultKey = SymmetricKey(data: try #require(Data(base64Encoded: h.env.secretKey)))
            let first = try AES.GCM.seal(Data(#"{"username":"legacy","password":"pw-first-release"}"#.utf8), using: defaultKey)
            // Key-ring release: the ring key, the registry ID as authenticated data.
            let registryID = try #require(ids["ring.example.com"]).lowercased()
            let ringSealed = try AES.GCM.seal(Data(#"{"kind":"basic","username":"robot","password":"pw-ring-release"}"#.utf8),
                                              using: ringKey, authenticating: Data("gantry.discovery.registry:\(registryID)".utf8))
            try await h.database.withClient { client in
                try await client.withSystemAccess(logger: DiscoveryHarness.logger) { connection in
                    _ = try await connection.query("""
                        UPDATE discovery.registries SET credentials_sealed = \(try #require(first.combined).base64EncodedString()),
                          key_id = 'default' WHERE login_server = 'first.example.com'
                        """, logger: DiscoveryHarness.logger)
                    _ = try await connection.query("""
                        UPDATE discovery.registries SET credentials_sealed = \(try #require(ringSealed.combined).base64EncodedString()),
                          key_id = 'k1' WHERE login_server = 'ring.example.com'
                        """, logger: DiscoveryHarness.logger)
                }
            }
            let token = try await h.env.tokens().token(for: "discovery")
            let old = try await h.lookup("first.example.com", token: token)
            #expect(old.status == 200, "\(old.text)")
            #expect((try old.object()["credentials"] as? [String: Any])?["password"] as? String == "pw-first-release")
            let ringed = try await h.lookup("ring.example.com", token: token)
            #expect((try ringed.object()["credentials"] as? [String: Any])?["password"] as? String == "pw-ring-release")
        }
    }

    @Test("the shared sealer: newest key seals, every key opens, text form names a non-default key, context binds the row")
    func sharedSealerRing() throws {
        let old = SecretSealer.Key(id: SecretSealer.defaultKeyID, key: SymmetricKey(size: .bits256))
        let new = SecretSealer.Key(id: "k2", key: SymmetricKey(size: .bits256))
        let before = SecretSealer(keys: [old])
        let after = SecretSealer(keys: [new, old])
        let legacy = try before.seal("hunter2-secret", context: "row:1")
        #expect(legacy.hasPrefix("sealed:v1:"))
        #expect(try after.open(legacy, context: "row:1") == "hunter2-secret")
        #expect(after.needsResealing(legacy) && !before.needsResealing(legacy))
        let rotated = try after.seal("hunter2-secret", context: "row:1")
        #expect(rotated.hasPrefix("sealed:v2:k2:"))
        #expect(try after.open(rotated, context: "row:1") == "hunter2-secret")
        #expect(!after.needsResealing(rotated))
        #expect(throws: ProblemError.self) { try after.open(rotated, context: "row:2") }
        #expect(throws: ProblemError.self) { try before.open(rotated, context: "row:1") }
        #expect(try after.open("clear from an old release", context: "row:1") == "clear from an old release")
        #expect(SecretSealer.needsSealing("clear") && !SecretSealer.needsSealing(rotated))
    }
}
