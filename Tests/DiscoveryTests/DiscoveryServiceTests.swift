import Discovery
import Foundation
import GantryRuntime
import GantryTesting
import NIOHTTP1
import PostgresNIO
import Testing

/// Discovery run in-process on a real PostgreSQL database, called over HTTP.
@Suite("Discovery service")
struct DiscoveryServiceTests {
    @Test("tenant then commercial subscription: 201, plan disabled, audited; government 409; unknown tenant 404")
    func tenantAndSubscription() async throws {
        try await DiscoveryHarness.run { h in
            let tenantReply = try await TestHTTP.json(.POST, "\(h.base)/v1/tenants", ["name": "  Acme Corp  "])
            #expect(tenantReply.status == 201, "\(tenantReply.text)")
            let tenant = try tenantReply.object()
            let tenantID = try #require(tenant["id"] as? String)
            #expect(UUID(uuidString: tenantID) != nil)
            #expect(tenantID == tenantID.lowercased())
            #expect(tenant["name"] as? String == "Acme Corp")
            #expect(timestamp(tenant["createdAt"]) != nil)

            let created = try await TestHTTP.json(.POST, "\(h.base)/v1/tenants/\(tenantID)/subscriptions",
                                                  ["name": "prod", "cloudType": "commercial"])
            #expect(created.status == 201, "\(created.text)")
            let subscription = try created.object()
            let subscriptionID = try #require(subscription["id"] as? String)
            #expect(subscription["tenantId"] as? String == tenantID)
            #expect(subscription["name"] as? String == "prod")
            #expect(subscription["cloudType"] as? String == "commercial")
            #expect(subscription["planEnabled"] as? Bool == false)
            #expect(subscription["planChangedAt"] == nil)

            let government = try await TestHTTP.json(.POST, "\(h.base)/v1/tenants/\(tenantID)/subscriptions",
                                                     ["name": "gov", "cloudType": "government"])
            let detail = try expectProblem(government, status: 409)
            #expect(detail.contains("commercial"))

            let unknownTenant = UUID().uuidString.lowercased()
            let orphan = try await TestHTTP.json(.POST, "\(h.base)/v1/tenants/\(unknownTenant)/subscriptions",
                                                 ["name": "orphan", "cloudType": "commercial"])
            // NOTE: problem details spell UUIDs in upper case, unlike the bodies.
            #expect(try expectProblem(orphan, status: 404).lowercased().contains(unknownTenant))

            // Bad bodies are named in JSON's terms, with the field, never Swift's type names.
            let mars = try expectProblem(try await TestHTTP.json(.POST, "\(h.base)/v1/tenants/\(tenantID)/subscriptions",
                                                                 ["name": "m", "cloudType": "mars"]), status: 400)
            #expect(mars.contains("'mars' is not an allowed value at .cloudType") && !mars.contains("Payload"), "\(mars)")
            let array = try expectProblem(try await TestHTTP.send(.POST, "\(h.base)/v1/tenants/\(tenantID)/subscriptions",
                                                                  body: Data("[1,2]".utf8)), status: 400)
            #expect(array.contains("wrong type at the top level: expected an object"), "\(array)")
            let notUUID = try await TestHTTP.json(.POST, "\(h.base)/v1/tenants/not-a-uuid/subscriptions",
                                                  ["name": "x", "cloudType": "commercial"])
            try expectProblem(notUUID, status: 400)

            // Only the one commercial subscription exists, and its creation is audited.
            #expect(try await h.strings("SELECT id::text FROM discovery.subscriptions") == [subscriptionID])
            #expect(try await h.strings("SELECT action || ' ' || subject || ' ' || detail FROM discovery.audit_log ORDER BY id")
                    == ["subscription.create \(subscriptionID.lowercased()) cloud=commercial"])
        }
    }

    @Test("enabling and disabling the plan changes planChangedAt each time and writes audit rows")
    func planToggle() async throws {
        try await DiscoveryHarness.run { h in
            let tenantID = try await h.createTenant()
            let subscriptionID = try await h.createSubscription(tenantID: tenantID)
            let planURL = "\(h.base)/v1/tenants/\(tenantID)/subscriptions/\(subscriptionID)/plan"

            let enabledReply = try await TestHTTP.json(.PUT, planURL, ["enabled": true])
            #expect(enabledReply.status == 200, "\(enabledReply.text)")
            let enabled = try enabledReply.object()
            #expect(enabled["planEnabled"] as? Bool == true)
            let enabledAt = try #require(timestamp(enabled["planChangedAt"]))
            let enabledAtStored = try await h.planChangedMicroseconds()

            // Same state again: no change, so the timestamp stays.
            let again = try await TestHTTP.json(.PUT, planURL, ["enabled": true])
            #expect(again.status == 200)
            #expect(timestamp(try again.object()["planChangedAt"]) == enabledAt)
            #expect(try await h.planChangedMicroseconds() == enabledAtStored)

            try await Task.sleep(for: .milliseconds(20))
            let disabledReply = try await TestHTTP.json(.PUT, planURL, ["enabled": false])
            #expect(disabledReply.status == 200, "\(disabledReply.text)")
            let disabled = try disabledReply.object()
            #expect(disabled["planEnabled"] as? Bool == false)
            let disabledAt = try #require(timestamp(disabled["planChangedAt"]))
            // The API's date-time has whole seconds; the stored timestamp shows the change to the microsecond.
            #expect(disabledAt >= enabledAt)
            #expect(try await h.planChangedMicroseconds() > enabledAtStored)
            #expect(abs(disabledAt.timeIntervalSince1970 - Double(try await h.planChangedMicroseconds()) / 1e6) < 1)

            #expect(try await h.strings("SELECT plan_enabled::text FROM discovery.subscriptions") == ["false"])
            #expect(try await h.strings("""
                SELECT action FROM discovery.audit_log
                WHERE tenant_id = \(UUID(uuidString: tenantID)!) AND lower(subject) = \(subscriptionID) ORDER BY id
                """) == ["subscription.create", "plan.enable", "plan.enable", "plan.disable"])

            // Another tenant cannot touch this subscription; nothing is audited for it.
            let other = try await h.createTenant("other")
            let foreign = try await TestHTTP.json(.PUT, "\(h.base)/v1/tenants/\(other)/subscriptions/\(subscriptionID)/plan",
                                                  ["enabled": true])
            try expectProblem(foreign, status: 404)
            #expect(try await h.strings("SELECT plan_enabled::text FROM discovery.subscriptions") == ["false"])
            #expect(try await h.count("discovery.audit_log") == 4)
        }
    }

    @Test("a registry's credentials are sealed at rest, never returned publicly, and opened for service callers")
    func registryCredentials() async throws {
        try await DiscoveryHarness.run { h in
            let tenantID = try await h.createTenant()
            let subscriptionID = try await h.createSubscription(tenantID: tenantID)
            let username = "robot-scanner-7f3a"
            let password = "pw-\(UUID().uuidString)-Zq9"
            let reply = try await TestHTTP.json(
                .POST, h.registriesURL(tenantID: tenantID, subscriptionID: subscriptionID),
                ["loginServer": "Gantry-Demo.AzureCR.io", "credentials": ["username": username, "password": password]])
            #expect(reply.status == 201, "\(reply.text)")
            let registry = try reply.object()
            let registryID = try #require(registry["id"] as? String)
            #expect(registry["hasCredentials"] as? Bool == true)
            #expect(registry["insecure"] as? Bool == false)
            #expect(registry["loginServer"] as? String == "gantry-demo.azurecr.io")
            #expect(registry["tenantId"] as? String == tenantID)
            #expect(registry["subscriptionId"] as? String == subscriptionID)
            #expect(registry["credentials"] == nil)
            #expect(!reply.text.contains(password))
            #expect(!reply.text.contains(username))

            // At rest: AES-GCM (12-byte nonce, ciphertext, 16-byte tag), neither field in clear, even decoded.
            let sealed = try #require(try await h.strings(
                "SELECT credentials_sealed FROM discovery.registries WHERE id = \(UUID(uuidString: registryID)!)").first)
            #expect(!sealed.contains(password))
            #expect(!sealed.contains(username))
            let box = try #require(Data(base64Encoded: sealed))
            let plaintextLength = try JSONEncoder().encode(["username": username, "password": password]).count
            #expect(box.count == 12 + plaintextLength + 16)
            #expect(box.range(of: Data(password.utf8)) == nil)
            #expect(box.range(of: Data(username.utf8)) == nil)

            let list = try await TestHTTP.send(.GET, h.registriesURL(tenantID: tenantID, subscriptionID: subscriptionID))
            #expect(list.status == 200)
            let items = try #require(try list.object()["items"] as? [[String: Any]])
            #expect(items.count == 1)
            #expect(items.first?["hasCredentials"] as? Bool == true)
            #expect(items.first?["credentials"] == nil)
            #expect(!list.text.contains(password))

            // Service callers get them back, decrypted, whatever the case of the host they ask for.
            let token = try await h.env.tokens().token(for: "discovery")
            let lookup = try await h.lookup("GANTRY-DEMO.azurecr.io", token: token)
            #expect(lookup.status == 200, "\(lookup.text)")
            let access = try lookup.object()
            #expect(access["registryId"] as? String == registryID)
            #expect(access["tenantId"] as? String == tenantID)
            #expect(access["subscriptionId"] as? String == subscriptionID)
            #expect(access["loginServer"] as? String == "gantry-demo.azurecr.io")
            #expect(access["baseURL"] as? String == "https://gantry-demo.azurecr.io")
            #expect(access["planEnabled"] as? Bool == false)
            #expect(access["cloudType"] as? String == "commercial")
            let credentials = try #require(access["credentials"] as? [String: Any])
            #expect(credentials["username"] as? String == username)
            #expect(credentials["password"] as? String == password)

            let byID = try await TestHTTP.send(.GET, "\(h.base)/internal/v1/registries/\(registryID)",
                                               headers: ["Authorization": "Bearer \(token)"])
            #expect(byID.status == 200, "\(byID.text)")
            #expect((try byID.object()["credentials"] as? [String: Any])?["password"] as? String == password)
        }
    }

    @Test("a registry without credentials reports hasCredentials false and the lookup returns none")
    func registryWithoutCredentials() async throws {
        try await DiscoveryHarness.run { h in
            let tenantID = try await h.createTenant()
            let subscriptionID = try await h.createSubscription(tenantID: tenantID)
            let reply = try await TestHTTP.json(.POST, h.registriesURL(tenantID: tenantID, subscriptionID: subscriptionID),
                                                ["loginServer": "public.example.com"])
            #expect(reply.status == 201, "\(reply.text)")
            #expect(try reply.object()["hasCredentials"] as? Bool == false)
            #expect(try await h.strings("SELECT coalesce(credentials_sealed, 'NULL') FROM discovery.registries") == ["NULL"])
            let lookup = try await h.lookup("public.example.com", token: try await h.env.tokens().token(for: "discovery"))
            #expect(lookup.status == 200)
            #expect(try lookup.object()["credentials"] == nil)
        }
    }

    @Test("internal routes refuse missing, foreign-audience, forged and garbage tokens with 401")
    func internalRoutesNeedServiceToken() async throws {
        try await DiscoveryHarness.run { h in
            let tenantID = try await h.createTenant()
            let subscriptionID = try await h.createSubscription(tenantID: tenantID)
            let reply = try await TestHTTP.json(.POST, h.registriesURL(tenantID: tenantID, subscriptionID: subscriptionID),
                                                ["loginServer": "registry.example.com",
                                                 "credentials": ["username": "u", "password": "secret-password-1"]])
            try #require(reply.status == 201, "\(reply.text)")

            let missing = try await h.lookup("registry.example.com", token: nil)
            try expectProblem(missing, status: 401)
            #expect(!missing.text.contains("secret-password-1"))

            let forBilling = try await h.env.tokens().token(for: "billing")
            try expectProblem(try await h.lookup("registry.example.com", token: forBilling), status: 401)

            let forged = try await ServiceTokens(key: String(repeating: "ab", count: 48), issuer: "test").token(for: "discovery")
            try expectProblem(try await h.lookup("registry.example.com", token: forged), status: 401)

            try expectProblem(try await h.lookup("registry.example.com", token: "not.a.jwt"), status: 401)

            let basic = try await TestHTTP.send(.GET, "\(h.base)/internal/v1/registries/lookup?host=registry.example.com",
                                                headers: ["Authorization": "Basic dTpw"])
            try expectProblem(basic, status: 401)

            // With a good token: found, and an unknown host is 404.
            let token = try await h.env.tokens().token(for: "discovery")
            #expect(try await h.lookup("registry.example.com", token: token).status == 200)
            let unknown = try await h.lookup("nowhere.example.com", token: token)
            #expect(try expectProblem(unknown, status: 404).contains("nowhere.example.com"))
        }
    }

    @Test("registering a login server that is already registered is 409, in any subscription or letter case")
    func duplicateLoginServer() async throws {
        try await DiscoveryHarness.run { h in
            let tenantID = try await h.createTenant()
            let first = try await h.createSubscription(tenantID: tenantID, name: "first")
            let second = try await h.createSubscription(tenantID: tenantID, name: "second")
            let created = try await TestHTTP.json(.POST, h.registriesURL(tenantID: tenantID, subscriptionID: first),
                                                  ["loginServer": "dup.example.com"])
            #expect(created.status == 201, "\(created.text)")
            let again = try await TestHTTP.json(.POST, h.registriesURL(tenantID: tenantID, subscriptionID: first),
                                                ["loginServer": "dup.example.com"])
            #expect(try expectProblem(again, status: 409).contains("dup.example.com"))
            let elsewhere = try await TestHTTP.json(.POST, h.registriesURL(tenantID: tenantID, subscriptionID: second),
                                                    ["loginServer": "DUP.example.com"])
            try expectProblem(elsewhere, status: 409)
            #expect(try await h.strings("SELECT subscription_id::text FROM discovery.registries") == [first])
            #expect(try await h.strings("SELECT action FROM discovery.audit_log WHERE action LIKE 'registry.%'")
                    == ["registry.register"])
        }
    }

    @Test("malformed or incomplete JSON is 400 problem+json with a detail, and nothing is stored")
    func malformedRequests() async throws {
        try await DiscoveryHarness.run { h in
            let truncated = try await TestHTTP.send(.POST, "\(h.base)/v1/tenants", body: Data(#"{"name": "acme""#.utf8))
            #expect(try expectProblem(truncated, status: 400).contains("createTenant"))

            let wrongType = try await TestHTTP.send(.POST, "\(h.base)/v1/tenants", body: Data(#"{"name": 42}"#.utf8))
            #expect(try expectProblem(wrongType, status: 400).contains("name"))

            let blank = try await TestHTTP.json(.POST, "\(h.base)/v1/tenants", ["name": "   "])
            #expect(try expectProblem(blank, status: 400).contains("name"))
            #expect(try await h.count("discovery.tenants") == 0)

            let tenantID = try await h.createTenant()
            let subscriptionID = try await h.createSubscription(tenantID: tenantID)
            let registries = h.registriesURL(tenantID: tenantID, subscriptionID: subscriptionID)
            let garbage = try await TestHTTP.send(.POST, registries, body: Data("loginServer=x".utf8))
            try expectProblem(garbage, status: 400)
            let missingField = try await TestHTTP.json(.POST, registries, ["insecure": true])
            #expect(try expectProblem(missingField, status: 400).contains("loginServer"))
            let badCloud = try await TestHTTP.json(.POST, "\(h.base)/v1/tenants/\(tenantID)/subscriptions",
                                                   ["name": "x", "cloudType": "moon"])
            try expectProblem(badCloud, status: 400)
            let badPlan = try await TestHTTP.json(.PUT, "\(h.base)/v1/tenants/\(tenantID)/subscriptions/\(subscriptionID)/plan",
                                                  ["enabled": "yes"])
            try expectProblem(badPlan, status: 400)
            #expect(try await h.count("discovery.registries") == 0)
            #expect(try await h.count("discovery.subscriptions") == 1)
            #expect(try await h.strings("SELECT plan_enabled::text FROM discovery.subscriptions") == ["false"])
        }
    }

    @Test("private, link-local and malformed hosts are refused; loopback is accepted in development")
    func registryHostRules() async throws {
        try await DiscoveryHarness.run { h in
            let tenantID = try await h.createTenant()
            let subscriptionID = try await h.createSubscription(tenantID: tenantID)
            let url = h.registriesURL(tenantID: tenantID, subscriptionID: subscriptionID)

            for host in ["10.0.0.5:5000", "192.168.1.20", "172.16.0.1:443", "169.254.169.254", "0.0.0.0:5000"] {
                let reply = try await TestHTTP.json(.POST, url, ["loginServer": host])
                let detail = try expectProblem(reply, status: 400)
                #expect(detail.contains("private"), "\(host): \(detail)")
            }
            for malformed in ["https://registry.example.com", "user@registry.example.com", "registry.example.com/path", ""] {
                let reply = try await TestHTTP.json(.POST, url, ["loginServer": malformed])
                #expect(try expectProblem(reply, status: 400).contains("loginServer"), "\(malformed)")
            }
            let unknownSubscription = try await TestHTTP.json(
                .POST, h.registriesURL(tenantID: tenantID, subscriptionID: UUID().uuidString), ["loginServer": "ok.example.com"])
            try expectProblem(unknownSubscription, status: 404)
            #expect(try await h.count("discovery.registries") == 0)

            let loopback = try await TestHTTP.json(.POST, url, ["loginServer": "127.0.0.1:5000", "insecure": true])
            #expect(loopback.status == 201, "\(loopback.text)")
            #expect(try loopback.object()["insecure"] as? Bool == true)
            let localhost = try await TestHTTP.json(.POST, url, ["loginServer": "localhost:5001"])
            #expect(localhost.status == 201, "\(localhost.text)")

            let lookup = try await h.lookup("127.0.0.1:5000", token: try await h.env.tokens().token(for: "discovery"))
            #expect(lookup.status == 200)
            #expect(try lookup.object()["baseURL"] as? String == "http://127.0.0.1:5000")
            #expect(try await h.strings("SELECT login_server FROM discovery.registries ORDER BY login_server")
                    == ["127.0.0.1:5000", "localhost:5001"])
        }
    }
}
