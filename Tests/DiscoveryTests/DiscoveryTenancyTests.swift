@testable import Discovery
import Foundation
import GantryRuntime
import GantryTesting
import NIOHTTP1
import PostgresNIO
import RegistryClient
import Testing

@Suite("Discovery tenancy, plans, credentials and the SSRF guard")
struct DiscoveryTenancyTests {
    @Test("plan enable/disable/enable: enabledAt and disabledAt, a history of real changes, an audit log with actors")
    func planHistoryAndAudit() async throws {
        try await DiscoveryHarness.run { h in
            let tenantID = try await h.createTenant()
            let subscriptionID = try await h.createSubscription(tenantID: tenantID)
            let plan = "\(h.base)/v1/tenants/\(tenantID)/subscriptions/\(subscriptionID)/plan"
            let enabled = try await TestHTTP.json(.PUT, plan, ["enabled": true]).object()
            let enabledAt = try #require(timestamp(enabled["enabledAt"]))
            #expect(enabled["disabledAt"] == nil)
            _ = try await TestHTTP.json(.PUT, plan, ["enabled": true]) // no change: no history entry
            try await Task.sleep(for: .milliseconds(1100))
            let disabled = try await TestHTTP.json(.PUT, plan, ["enabled": false]).object()
            let disabledAt = try #require(timestamp(disabled["disabledAt"]))
            #expect(timestamp(disabled["enabledAt"]) == enabledAt, "enabledAt keeps the last enablement")
            #expect(disabledAt > enabledAt)
            let again = try await TestHTTP.json(.PUT, plan, ["enabled": true]).object()
            #expect(try #require(timestamp(again["enabledAt"])) >= disabledAt)
            #expect(timestamp(again["disabledAt"]) == disabledAt)

            let history = try await h.items("\(plan)/history")
            #expect(history.map { $0["enabled"] as? Bool } == [true, false, true])
            #expect(history.allSatisfy { $0["actor"] as? String == "test-user" && timestamp($0["at"]) != nil })

            let audit = try await h.items("\(h.base)/v1/tenants/\(tenantID)/audit")
            #expect(audit.map { $0["action"] as? String ?? "" }
                    == ["plan.enable", "plan.disable", "plan.enable", "plan.enable", "subscription.create"])
            #expect(audit.allSatisfy { $0["actor"] as? String == "test-user" && $0["subject"] as? String == subscriptionID })
            #expect(audit.allSatisfy { timestamp($0["at"]) != nil })
            #expect(try await h.items("\(h.base)/v1/tenants/\(tenantID)/audit?limit=2").count == 2)
            try expectProblem(try await TestHTTP.send(.GET, "\(h.base)/v1/tenants/\(tenantID)/audit?limit=0"), status: 400)
            try expectProblem(try await TestHTTP.send(.GET, "\(h.base)/v1/tenants/\(UUID().uuidString)/audit"), status: 404)
            try expectProblem(try await TestHTTP.send(
                .GET, "\(h.base)/v1/tenants/\(tenantID)/subscriptions/\(UUID().uuidString)/plan/history"), status: 404)
            // Another tenant sees none of it.
            let other = try await h.createTenant("other")
            #expect(try await h.items("\(h.base)/v1/tenants/\(other)/audit").isEmpty)
            try expectProblem(try await TestHTTP.send(.GET, "\(h.base)/v1/tenants/\(other)/subscriptions/\(subscriptionID)/plan/history"),
                              status: 404)
        }
    }

    @Test("duplicate tenant and subscription names are 409 and nothing is half-created")
    func duplicateNames() async throws {
        try await DiscoveryHarness.run { h in
            let tenantID = try await h.createTenant("Acme")
            let duplicate = try await TestHTTP.json(.POST, "\(h.base)/v1/tenants", ["name": " acme "])
            #expect(try expectProblem(duplicate, status: 409).contains("acme"))
            #expect(try await h.count("discovery.tenants") == 1)

            _ = try await h.createSubscription(tenantID: tenantID, name: "prod")
            let again = try await TestHTTP.json(.POST, "\(h.base)/v1/tenants/\(tenantID)/subscriptions",
                                                ["name": "PROD", "cloudType": "commercial"])
            try expectProblem(again, status: 409)
            #expect(try await h.count("discovery.subscriptions") == 1)
            #expect(try await h.count("discovery.audit_log") == 1, "the refused subscription left no audit row")
            // The same name in another tenant is fine.
            let other = try await h.createTenant("Other")
            _ = try await h.createSubscription(tenantID: other, name: "prod")
        }
    }

    @Test("key rotation: a new key seals, old keys still open, reseal moves every row, then the old key can go")
    func credentialKeyRotation() async throws {
        let database = try await TestDatabase.create()
        do {
            try await rotation(database)
        } catch {
            await database.drop()
            throw error
        }
        await database.drop()
    }

    private func rotation(_ database: TestDatabase) async throws {
        func key() -> String { Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString() }
        let (k1, k2) = (key(), key())
        let base = try TestEnvironment(database: database)
        func env(_ keys: String) throws -> TestEnvironment {
            var env = base
            env.extra["GANTRY_DISCOVERY_SECRET_KEYS"] = keys
            return env
        }
        func running(_ keys: String, _ body: @Sendable (DiscoveryHarness) async throws -> Void) async throws {
            let env = try env(keys)
            let app = try await buildDiscoveryApplication(configuration: env.configuration(.discovery))
            try await withRunningServices([app], readyPorts: [env.ports[.discovery]!]) {
                try await body(DiscoveryHarness(env: env, database: database))
            }
        }
        let ids = SendableBox()
        try await running("k1:\(k1)") { h in
            let tenant = try await h.createTenant()
            let subscription = try await h.createSubscription(tenantID: tenant)
            let url = h.registriesURL(tenantID: tenant, subscriptionID: subscription)
            let basic = try await TestHTTP.json(.POST, url, ["loginServer": "one.example.com",
                                                             "credentials": ["username": "robot", "password": "pw-1"]])
            #expect(basic.status == 201, "\(basic.text)")
            #expect(try basic.object()["credentialKeyId"] as? String == "k1")
            #expect(try basic.object()["credentialKind"] as? String == "basic")
            let token = try await TestHTTP.json(.POST, url, ["loginServer": "two.example.com",
                                                             "credentials": ["kind": "token", "token": "tok-2"]])
            #expect(token.status == 201, "\(token.text)")
            #expect(try token.object()["credentialKind"] as? String == "token")
            let badToken = try await TestHTTP.json(.POST, url, ["loginServer": "three.example.com",
                                                                "credentials": ["kind": "token", "password": "x"]])
            try expectProblem(badToken, status: 400)
            let badBasic = try await TestHTTP.json(.POST, url, ["loginServer": "three.example.com",
                                                                "credentials": ["username": "u"]])
            try expectProblem(badBasic, status: 400)
            ids.set(tenant, subscription)
        }
        // Both keys configured, k2 newest: k1 rows still open; new rows use k2.
        try await running("k2:\(k2),k1:\(k1)") { h in
            let token = try await h.env.tokens().token(for: "discovery")
            let one = try await h.lookup("one.example.com", token: token)
            #expect(one.status == 200, "\(one.text)")
            #expect((try one.object()["credentials"] as? [String: Any])?["password"] as? String == "pw-1")
            let two = try await h.lookup("two.example.com", token: token).object()["credentials"] as? [String: Any]
            #expect(two?["username"] as? String == "<token>")
            #expect(two?["password"] as? String == "tok-2")
            let (tenant, subscription) = ids.get()
            let three = try await TestHTTP.json(.POST, h.registriesURL(tenantID: tenant, subscriptionID: subscription),
                                                ["loginServer": "three.example.com", "credentials": ["username": "u3", "password": "pw-3"]])
            #expect(try three.object()["credentialKeyId"] as? String == "k2")

            let reseal = try await TestHTTP.send(.POST, "\(h.base)/internal/v1/credentials/reseal",
                                                 headers: ["Authorization": "Bearer \(token)"])
            #expect(reseal.status == 200, "\(reseal.text)")
            #expect(try reseal.object()["resealed"] as? Int == 2)
            #expect(try reseal.object()["keyId"] as? String == "k2")
            #expect(try await h.strings("SELECT DISTINCT key_id FROM discovery.registries") == ["k2"])
            let idempotent = try await TestHTTP.send(.POST, "\(h.base)/internal/v1/credentials/reseal",
                                                     headers: ["Authorization": "Bearer \(token)"])
            #expect(try idempotent.object()["resealed"] as? Int == 0)
            try expectProblem(try await TestHTTP.send(.POST, "\(h.base)/internal/v1/credentials/reseal"), status: 401)

            // A sealed value copied onto another registry's row does not open there (registry ID is authenticated).
            try await database.withClient { client in
                try await client.withSystemAccess(logger: DiscoveryHarness.logger) { connection in
                    _ = try await connection.query("""
                        UPDATE discovery.registries SET credentials_sealed =
                          (SELECT credentials_sealed FROM discovery.registries WHERE login_server = 'one.example.com')
                        WHERE login_server = 'three.example.com'
                        """, logger: DiscoveryHarness.logger)
                }
            }
            let swapped = try await h.lookup("three.example.com", token: token)
            #expect(swapped.status == 500)
            #expect(!swapped.text.contains("pw-1"))
        }
        // k1 dropped: everything still opens.
        try await running("k2:\(k2)") { h in
            let token = try await h.env.tokens().token(for: "discovery")
            #expect((try await h.lookup("one.example.com", token: token).object()["credentials"] as? [String: Any])?["password"] as? String == "pw-1")
            #expect((try await h.lookup("two.example.com", token: token).object()["credentials"] as? [String: Any])?["password"] as? String == "tok-2")
        }
        // Only the retired key: the lookup fails with a problem naming the missing key, never a credential.
        try await running("k1:\(k1)") { h in
            let reply = try await h.lookup("one.example.com", token: try await h.env.tokens().token(for: "discovery"))
            #expect(reply.status == 500)
        }
    }

    @Test("SSRF guard: link-local, metadata, private, loopback and non-HTTP URLs are refused by resolved address")
    func addressGuard() throws {
        let production = AddressGuard()
        let development = AddressGuard(allowLoopback: true)
        let privateAllowed = AddressGuard(allowPrivate: true)
        let refused = [
            "http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/", "http://[::ffff:169.254.169.254]/",
            "http://[64:ff9b::a9fe:a9fe]/", "http://10.0.0.1/", "http://172.20.1.1/", "http://192.168.0.1/",
            "http://100.100.100.200/", "http://[fd00:ec2::254]/", "http://0.0.0.0/", "http://127.0.0.1:5000/",
            "http://localhost/", "http://0x7f000001/", "http://2130706433/", "http://[::1]/", "http://224.0.0.1/",
            "ftp://registry.example.com/", "file:///etc/passwd", "gopher://127.0.0.1/",
        ]
        for url in refused {
            #expect(throws: AddressRefusal.self, "\(url)") { try production.check(url) }
        }
        #expect(throws: Never.self) { try production.check("https://8.8.8.8/v2/") }
        #expect(throws: Never.self) { try development.check("http://127.0.0.1:5000/v2/") }
        #expect(throws: Never.self) { try development.check("http://localhost:5000/v2/") }
        #expect(throws: AddressRefusal.self) { try development.check("http://169.254.169.254/") }
        #expect(throws: AddressRefusal.self) { try development.check("http://10.1.2.3/") }
        #expect(throws: Never.self) { try privateAllowed.check("http://10.1.2.3/") }
        #expect(throws: AddressRefusal.self) { try privateAllowed.check("http://169.254.169.254/") }
        do {
            try production.check("http://169.254.169.254/latest/meta-data/")
        } catch {
            #expect(error.reason.contains("link-local"))
            #expect(error.description.contains("169.254.169.254"))
        }
        // A name that does not resolve is refused for connections, accepted only where asked.
        #expect(throws: AddressRefusal.self) { try production.check("https://no-such-host.invalid/") }
        #expect(throws: Never.self) { try production.check(host: "no-such-host.invalid", allowUnresolved: true) }
    }

    @Test("the production profile's guard refuses a host name that resolves to loopback; development accepts it")
    func registrationGuardByProfile() throws {
        var environment = ["GANTRY_SERVICE_KEY": String(repeating: "k", count: 40), "GANTRY_PROFILE": "production"]
        let production = try DiscoverySettings(configuration: GantryConfiguration(service: .discovery, environment: environment))
        environment["GANTRY_PROFILE"] = "development"
        let development = try DiscoverySettings(configuration: GantryConfiguration(service: .discovery, environment: environment))
        // `localhost` and the machine's name (/etc/hosts) resolve to 127.0.0.1; CloudProfile's literal check sees neither.
        let name = ProcessInfo.processInfo.hostName
        #expect(AddressGuard.resolve(name).contains([127, 0, 0, 1]), "\(name)")
        do {
            try production.addressGuard.check(host: name, allowUnresolved: true)
            Issue.record("\(name) was accepted in production")
        } catch {
            #expect(error.reason.contains("loopback"))
        }
        #expect(throws: Never.self) { try development.addressGuard.check(host: name, allowUnresolved: true) }
        #expect(production.crawlInterval == .seconds(3600))
        #expect(development.crawlInterval == nil)
    }
}

/// A value set in one closure and read in another (test plumbing across service restarts).
final class SendableBox: @unchecked Sendable {
    private let lock = NSLock()
    private var value: (String, String) = ("", "")
    func set(_ a: String, _ b: String) { lock.lock(); value = (a, b); lock.unlock() }
    func get() -> (String, String) { lock.lock(); defer { lock.unlock() }; return value }
}
