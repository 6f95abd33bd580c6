import AsyncHTTPClient
import Billing
import Discovery
import FindingsPolicy
import GantryModel
import Foundation
import GantryRuntime
import GantryTesting
import HTTPTypes
import Hummingbird
import Ingestion
import Logging
import NIOHTTP1
import Notification
import PostgresNIO
import RegistryClient
import Scanner
import ServiceLifecycle
import Testing
import Yams

/// Issue 6, item 6 at the API level: two tenants with real data in all six services; A's Owner (with every
/// role) calls every public route of every spec with B's IDs in the path and gets 404 or 403 problem+json,
/// nothing of B changes, and A's own lists never show B's items.
@Suite(.serialized, .enabled(if: Corpus.isAvailable, "the test corpus (../shared/corpus) is missing"))
struct CrossTenantIsolationTests {
    /// One tenant's data, created through the public routes and a real registry push.
    struct Tenant: Sendable {
        var name: String
        var tenantID = ""
        var subscriptionID = ""
        var registryID = ""
        var registryHost = ""
        var repository = ""
        var digest = ""
        var policyRuleID = ""
        var vexDocumentID = ""
        var channelID = ""
        var alertRuleID = ""
        var deliveryID: String?
        var importID = ""
        var crawlID = ""
        var subAssessmentName: String?
        var owner = ""

        /// The value of the path parameter `name` on `service`'s routes; nil for a name the test cannot fill.
        func value(_ name: String, service: GantryServiceName) -> String? {
            switch name {
            case "tenantId": tenantID
            case "subscriptionId": subscriptionID
            case "registryId": registryID
            case "ruleId": service == .notification ? alertRuleID : policyRuleID
            case "vexDocumentId": vexDocumentID
            case "channelId": channelID
            case "deliveryId": deliveryID ?? UUID().uuidString.lowercased()
            case "digest", "imageDigest": digest
            case "subAssessmentName": subAssessmentName ?? UUID().uuidString.lowercased()
            case "importId": importID
            case "month": CrossTenantIsolationTests.month
            default: nil
            }
        }

        /// Strings that identify B's data: none may appear in a 2xx answer to A.
        var secrets: [String] {
            [tenantID, subscriptionID, registryID, digest, policyRuleID, vexDocumentID, channelID, alertRuleID, importID,
             crawlID, registryHost, repository] + [deliveryID, subAssessmentName].compactMap { $0 }
        }
    }

    static var month: String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let parts = calendar.dateComponents([.year, .month], from: Date())
        return String(format: "%04d-%02d", parts.year!, parts.month!)
    }

    static let sinkSecret = "isolation-webhook-secret-0123456789"

    /// A valid body for every public write route of the specs, given the caller's tenant and the other's
    /// (bodies refer to the caller's own resources). A write route missing here fails the test.
    static func body(_ route: SpecRoute, own: Tenant, sinkURL: String) -> Any? {
        switch (route.service, route.method, route.template) {
        case (.discovery, "POST", "/v1/tenants"): ["name": "isolation-\(UUID().uuidString.prefix(8))"]
        case (.discovery, "POST", "/v1/tenants/{tenantId}/subscriptions"): ["name": "extra", "cloudType": "commercial"]
        case (.discovery, "PUT", "/v1/tenants/{tenantId}/subscriptions/{subscriptionId}/plan"): ["enabled": false]
        case (.discovery, "POST", "/v1/tenants/{tenantId}/subscriptions/{subscriptionId}/registries"):
            ["loginServer": own.registryHost, "insecure": true]
        case (.discovery, "POST", "/v1/tenants/{tenantId}/subscriptions/{subscriptionId}/registries/{registryId}/crawls"):
            [String: Any]()
        case (.billing, "POST", "/v1/prices"): ["unitPrice": "0.5000", "currency": "USD", "effectiveFrom": "2030-01-01T00:00:00Z"]
        case (.billing, "PUT", "/v1/tenants/{tenantId}/subscriptions/{subscriptionId}/trial"): ["days": 1]
        case (.findingsPolicy, "POST", "/v1/tenants/{tenantId}/subscriptions/{subscriptionId}/rules"),
             (.findingsPolicy, "PUT", "/v1/tenants/{tenantId}/subscriptions/{subscriptionId}/rules/{ruleId}"):
            ["scope": ["kind": "subscription"], "criteria": ["severities": ["Low"]], "justification": "isolation test"]
        case (.findingsPolicy, "DELETE", _), (.notification, "DELETE", _): [String: Any]()
        case (.findingsPolicy, "POST", "/v1/tenants/{tenantId}/subscriptions/{subscriptionId}/vexDocuments"):
            openVEX(digest: own.digest)
        case (.findingsPolicy, "POST", "/v1/tenants/{tenantId}/subscriptions/{subscriptionId}/query"):
            ["query": #"Findings | where severity == "Critical""#]
        case (.ingestion, "PUT", "/v1/tenants/{tenantId}/registries/{registryId}/webhook-secret"):
            ["secret": "isolation-secret-0123456789abcdef"]
        case (.ingestion, "POST", "/v1/tenants/{tenantId}/registries/{registryId}/imports"):
            ["source": "\(own.registryHost)/\(own.repository):latest", "insecure": true]
        case (.notification, "POST", "/v1/tenants/{tenantId}/subscriptions/{subscriptionId}/channels"):
            ["type": "webhook", "name": "isolation", "url": sinkURL, "secret": sinkSecret]
        case (.notification, "POST", "/v1/tenants/{tenantId}/subscriptions/{subscriptionId}/webhooks"):
            ["url": sinkURL, "secret": sinkSecret]
        case (.notification, "POST", "/v1/tenants/{tenantId}/subscriptions/{subscriptionId}/rules"):
            ["name": "isolation", "kind": "imageUnhealthy", "channelIds": [own.channelID]]
        case (.notification, "POST", "/v1/tenants/{tenantId}/subscriptions/{subscriptionId}/deliveries/{deliveryId}/redeliver"):
            [String: Any]()
        default: nil
        }
    }

    static func openVEX(digest: String) -> [String: Any] {
        [
            "@context": "https://openvex.dev/ns/v0.2.0", "@id": "https://example.com/vex/\(UUID())",
            "author": "Isolation Test", "timestamp": "2026-11-29T10:00:00Z", "version": 1,
            "statements": [[
                "vulnerability": ["name": "CVE-2019-14697"], "products": [["@id": digest]],
                "status": "not_affected", "justification": "vulnerable_code_not_in_execute_path",
            ]],
        ]
    }

    /// The query parameters of every operation, read from the specs: name → required.
    static func queryParameters() throws -> [SpecRoute: [String: Bool]] {
        var result: [SpecRoute: [String: Bool]] = [:]
        for service in Specs.services {
            let file = Corpus.repositoryRoot.appendingPathComponent("Shared/Contracts/specs/\(service.rawValue).yaml")
            let document = try #require(try Yams.load(yaml: try String(contentsOf: file, encoding: .utf8)) as? [String: Any])
            let paths = (document["paths"] as? [String: Any]) ?? [:]
            let shared = ((document["components"] as? [String: Any])?["parameters"] as? [String: Any]) ?? [:]
            func resolve(_ parameter: Any) -> [String: Any] {
                guard let object = parameter as? [String: Any] else { return [:] }
                if let reference = object["$ref"] as? String {
                    return (shared[String(reference.split(separator: "/").last ?? "")] as? [String: Any]) ?? [:]
                }
                return object
            }
            for (template, item) in paths {
                let item = (item as? [String: Any]) ?? [:]
                let common = ((item["parameters"] as? [Any]) ?? []).map(resolve)
                for (method, operation) in item {
                    guard let operation = operation as? [String: Any] else { continue }
                    var query: [String: Bool] = [:]
                    for parameter in common + ((operation["parameters"] as? [Any]) ?? []).map(resolve)
                    where parameter["in"] as? String == "query" {
                        query[parameter["name"] as? String ?? "?"] = parameter["required"] as? Bool ?? false
                    }
                    result[SpecRoute(service: service, method: method.uppercased(), template: template)] = query
                }
            }
        }
        return result
    }

    /// A query string naming B's resources where the operation takes them (so lists are asked for B's items).
    static func query(_ parameters: [String: Bool], other: Tenant, route: SpecRoute) throws -> String {
        var items: [URLQueryItem] = []
        for (name, required) in parameters.sorted(by: { $0.key < $1.key }) {
            let value: String? = switch name {
            case "registryId", "subscriptionId", "tenantId", "digest", "imageDigest": other.value(name, service: route.service)
            case "repository": other.repository
            case "after": "0"  // the feed's changes from the start: not tenant data
            default: nil
            }
            if let value { items.append(URLQueryItem(name: name, value: value)) }
            else if required { throw TestServiceError("\(route): required query parameter '\(name)' the test cannot fill") }
        }
        guard !items.isEmpty else { return "" }
        var components = URLComponents()
        components.queryItems = items
        return "?" + (components.percentEncodedQuery ?? "")
    }

    /// Path parameter names of `template`, in order.
    static func parameters(_ template: String) -> [String] {
        template.split(separator: "/").filter { $0.hasPrefix("{") }.map { String($0.dropFirst().dropLast()) }
    }

    static func call(_ method: String, _ url: String, token: String, body: Any? = nil) async throws -> TestHTTP.Reply {
        let data = try body.map { try JSONSerialization.data(withJSONObject: $0) }
        return try await TestHTTP.send(HTTPMethod(rawValue: method), url, body: data,
                                       headers: ["Content-Type": "application/json", "Authorization": "Bearer \(token)"])
    }

    static func object(_ reply: TestHTTP.Reply, _ what: String) throws -> [String: Any] {
        try #require((200..<300).contains(reply.status), "\(what): \(reply.status) \(reply.text)")
        return try #require(try reply.json() as? [String: Any], "\(what): \(reply.text)")
    }

    /// Creates a tenant with a subscription (plan on), a registry, channel, alert rule, webhook, a pushed
    /// and scanned image (assessment, findings, usage, alert, delivery), a policy rule, a VEX document,
    /// an import and a crawl.
    static func seed(_ name: String, image: String, env: TestEnvironment, registry: TestRegistry,
                     sinkURL: String) async throws -> Tenant {
        var tenant = Tenant(name: name)
        let discovery = env.url(.discovery).absoluteString
        let platform = try await TestUserTokens.token([:], platform: [.platformOperator])
        tenant.tenantID = try #require(try object(try await call("POST", "\(discovery)/v1/tenants", token: platform,
                                                                  body: ["name": "isolation-\(name)"]), "tenant")["id"] as? String)
        tenant.owner = try await TestUserTokens.token([tenant.tenantID: TenantRole.allCases], subject: "owner-\(name)")
        let owner = tenant.owner
        tenant.registryHost = registry.host
        tenant.repository = "isolation-\(name)/alpine"
        let tenantPath = "/v1/tenants/\(tenant.tenantID)"
        tenant.subscriptionID = try #require(try object(try await call("POST", "\(discovery)\(tenantPath)/subscriptions", token: owner,
            body: ["name": name, "cloudType": "commercial"]), "subscription")["id"] as? String)
        let subscriptionPath = "\(tenantPath)/subscriptions/\(tenant.subscriptionID)"
        _ = try object(try await call("PUT", "\(discovery)\(subscriptionPath)/plan", token: owner, body: ["enabled": true]), "plan")
        tenant.registryID = try #require(try object(try await call("POST", "\(discovery)\(subscriptionPath)/registries", token: owner,
            body: ["loginServer": registry.host, "insecure": true]), "registry")["id"] as? String)

        let notification = env.url(.notification).absoluteString + subscriptionPath
        tenant.channelID = try #require(try object(try await call("POST", "\(notification)/channels", token: owner,
            body: ["type": "webhook", "name": "hook-\(name)", "url": sinkURL, "secret": sinkSecret]), "channel")["id"] as? String)
        tenant.alertRuleID = try #require(try object(try await call("POST", "\(notification)/rules", token: owner,
            body: ["name": "unhealthy-\(name)", "kind": "imageUnhealthy", "channelIds": [tenant.channelID]]), "alert rule")["id"] as? String)
        _ = try object(try await call("POST", "\(notification)/webhooks", token: owner,
                                      body: ["url": sinkURL, "secret": sinkSecret]), "webhook")

        // A real push: the registry notifies ingestion, the scanner scans, findings-policy assesses,
        // billing charges, notification delivers.
        try Skopeo.copy(ociArchive: try Corpus.file(image), to: registry.host, repository: tenant.repository, tag: "latest")
        let client = RegistryClient(httpClient: .shared, logger: Logger(label: "isolation"))
        tenant.digest = try await client.manifest(RegistryEndpoint(baseURL: registry.baseURL, credentials: nil),
                                                  repository: tenant.repository, reference: "latest").digest.description
        let findings = env.url(.findingsPolicy).absoluteString + subscriptionPath
        let digest = tenant.digest
        _ = try await eventually("the assessment of \(name)'s \(digest)", timeout: .seconds(90)) {
            let reply = try await call("GET", "\(findings)/assessments/\(digest)", token: owner)
            return reply.status == 200 ? reply.status : nil
        }
        let subAssessments = try object(try await call("GET", "\(findings)/assessments/\(digest)/subAssessments", token: owner),
                                        "subAssessments")
        tenant.subAssessmentName = ((subAssessments["items"] ?? subAssessments["value"]) as? [[String: Any]])?.first?["name"] as? String
        tenant.policyRuleID = try #require(try object(try await call("POST", "\(findings)/rules", token: owner,
            body: ["scope": ["kind": "subscription"], "criteria": ["severities": ["Low"]], "justification": "\(name) accepts Low"]),
            "policy rule")["id"] as? String)
        tenant.vexDocumentID = try #require(try object(try await call("POST", "\(findings)/vexDocuments", token: owner,
            body: openVEX(digest: digest)), "VEX document")["id"] as? String)

        let ingestion = env.url(.ingestion).absoluteString + "\(tenantPath)/registries/\(tenant.registryID)"
        tenant.importID = try #require(try object(try await call("POST", "\(ingestion)/imports", token: owner,
            body: ["source": "\(registry.host)/\(tenant.repository):latest", "repository": "\(tenant.repository)-copy",
                   "tag": "imported", "insecure": true]), "import")["importId"] as? String)
        tenant.crawlID = try #require(try object(try await call("POST",
            "\(discovery)\(subscriptionPath)/registries/\(tenant.registryID)/crawls", token: owner), "crawl")["id"] as? String)

        let billing = env.url(.billing).absoluteString + subscriptionPath
        _ = try await eventually("\(name)'s usage", timeout: .seconds(60)) {
            let usage = try? object(try await call("GET", "\(billing)/usage", token: owner), "usage")
            return ((usage?["billableImages"] as? Int) ?? 0) > 0 ? true : nil
        }
        return tenant
    }

    /// B's rows per tenant table, read with the test database's own (system) access.
    static func rowCounts(_ database: TestDatabase, tenantID: String) async throws -> [String: Int] {
        let logger = Logger(label: "isolation")
        return try await database.withClient { pool in try await pool.withSystemAccess(logger: logger) { client in
            var tables: [String] = []
            for try await (schema, table) in try await client.query("""
                SELECT c.table_schema::text, c.table_name::text FROM information_schema.columns c
                JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
                WHERE c.column_name = 'tenant_id' AND t.table_type = 'BASE TABLE'
                  AND c.table_schema IN ('discovery', 'ingestion', 'scanner', 'findings_policy', 'billing', 'notification')
                ORDER BY 1, 2
                """, logger: logger).decode((String, String).self) { tables.append("\(schema).\(table)") }
            var counts: [String: Int] = [:]
            for table in tables {
                let rows = try await client.query(PostgresQuery(unsafeSQL:
                    "SELECT count(*)::int FROM \(table) WHERE tenant_id::text = $1", binds: {
                        var binds = PostgresBindings(); binds.append(tenantID); return binds }()), logger: logger)
                for try await count in rows.decode(Int.self) { counts[table] = count }
            }
            return counts
        } }
    }

    /// B's view of its own data: every public GET with B's IDs, read with B's owner token.
    static func ownView(_ env: TestEnvironment, routes: [SpecRoute], tenant: Tenant) async throws -> [String: String] {
        var view: [String: String] = [:]
        for route in routes where route.method == "GET" && route.template.contains("{tenantId}") {
            let path = try fill(route, with: Dictionary(uniqueKeysWithValues: parameters(route.template).map { ($0, tenant) }))
            let reply = try await call("GET", env.url(route.service).absoluteString + path, token: tenant.owner)
            view[route.description] = "\(reply.status) \(normalized(reply))"
        }
        return view
    }

    /// The reply's text with JSON's escaped slashes undone, to search for hosts and repository names.
    static func plain(_ reply: TestHTTP.Reply) -> String { reply.text.replacingOccurrences(of: "\\/", with: "/") }

    /// The reply without the fields that change with time alone (computed-at stamps, ages).
    static func normalized(_ reply: TestHTTP.Reply) -> String {
        guard let json = try? reply.json() else { return reply.text }
        func strip(_ value: Any) -> Any {
            if let object = value as? [String: Any] {
                return object.filter { !["generatedAt", "computedAt", "asOf", "now", "evaluatedAt", "timestamp", "serialNumber"].contains($0.key) }
                    .mapValues(strip)
            }
            if let array = value as? [Any] { return array.map(strip) }
            return value
        }
        let data = try? JSONSerialization.data(withJSONObject: strip(json), options: [.sortedKeys, .fragmentsAllowed])
        return data.map { String(decoding: $0, as: UTF8.self) } ?? reply.text
    }

    /// `route`'s path with each parameter taken from the tenant given for it.
    static func fill(_ route: SpecRoute, with owners: [String: Tenant]) throws -> String {
        try route.template.split(separator: "/").map { segment -> String in
            guard segment.hasPrefix("{") else { return String(segment) }
            let name = String(segment.dropFirst().dropLast())
            guard let tenant = owners[name], let value = tenant.value(name, service: route.service) else {
                throw TestServiceError("\(route): path parameter '\(name)' the test cannot fill")
            }
            return value
        }.reduce("") { $0 + "/" + $1 }
    }

    @Test("A's Owner with every role, on every public route with B's IDs: 404/403 problem+json, nothing of B changed or listed")
    func everyRouteAcrossTenants() async throws {
        let routes = try Specs.publicRoutes()
        #expect(routes.count > 40, "the specs were not read: \(routes.count) routes")
        let queries = try Self.queryParameters()
        let database = try await TestDatabase.create()
        do {
            let env = try TestEnvironment(database: database)
            let notify = URL(string: env.url(.ingestion).absoluteString + "/v1/events/distribution")!
            let registryA = try await TestRegistry.start(notifyURL: notify)
            defer { registryA.stop() }
            let registryB = try await TestRegistry.start(notifyURL: notify)
            defer { registryB.stop() }
            let sinkPort = try FreePort.next()
            let sinkURL = "http://127.0.0.1:\(sinkPort)/hook"
            let services = try await Specs.applications(env) + [Self.sink(port: sinkPort)]
            try await withRunningServices(services, readyPorts: Array(env.ports.values) + [sinkPort]) {
                // The knowledge base, so the vulnerable image has findings (and B an alert and a delivery).
                let feedToken = try await env.tokens(issuer: "gantry-cli").token(for: "scanner")
                let feeds = try Corpus.file("3-vuln-feeds/alpine")
                for file in try FileManager.default.contentsOfDirectory(at: feeds, includingPropertiesForKeys: nil)
                where file.lastPathComponent.hasPrefix("secdb-") {
                    let reply = try await TestHTTP.send(.POST, env.url(.scanner).absoluteString + "/internal/v1/feeds/alpine-secdb",
                                                        body: try Data(contentsOf: file),
                                                        headers: ["Content-Type": "application/yaml", "Authorization": "Bearer \(feedToken)"])
                    try #require(reply.status == 200, "\(file.lastPathComponent): \(reply.text)")
                }
                let a = try await Self.seed("a", image: "images/alpine-3.7.3-apk-upgrade.oci.tar", env: env, registry: registryA,
                                            sinkURL: sinkURL)
                var b = try await Self.seed("b", image: "images/alpine-3.7.3.oci.tar", env: env, registry: registryB, sinkURL: sinkURL)
                #expect(a.digest != b.digest)
                // B's unhealthy image produced an alert and a delivery; its import and crawl finished.
                let bPath = "/v1/tenants/\(b.tenantID)/subscriptions/\(b.subscriptionID)"
                let bOwner = b.owner
                let deliveryID: String = try await eventually("B's delivery", timeout: .seconds(60)) {
                    let reply = try await Self.call("GET", env.url(.notification).absoluteString + "\(bPath)/deliveries", token: bOwner)
                    let items = ((try? reply.json() as? [String: Any])?["items"] as? [[String: Any]]) ?? []
                    return items.first { $0["status"] as? String == "delivered" }?["id"] as? String
                }
                b.deliveryID = deliveryID
                try #require(b.subAssessmentName != nil, "B's assessment has no sub-assessments")
                // A trial length only B has, to tell B's billing record from a default one.
                let bTrial = env.url(.billing).absoluteString + "\(bPath)/trial"
                _ = try Self.object(try await Self.call("PUT", bTrial, token: bOwner, body: ["days": 45]), "B's trial")
                let bImport = env.url(.ingestion).absoluteString + "/v1/tenants/\(b.tenantID)/registries/\(b.registryID)/imports/\(b.importID)"
                _ = try await eventually("B's import to finish", timeout: .seconds(60)) {
                    let status = (try? (try await Self.call("GET", bImport, token: bOwner)).json() as? [String: Any])?["status"] as? String
                    // Copied (or failed); the status then follows the scans (scanRequested … scanned).
                    return status.map { !["queued", "copying"].contains($0) } == true ? status : nil
                }
                let bCrawls = env.url(.discovery).absoluteString + "\(bPath)/registries/\(b.registryID)/crawls"
                _ = try await eventually("B's crawl to finish", timeout: .seconds(60)) {
                    let items = ((try? (try await Self.call("GET", bCrawls, token: bOwner)).json() as? [String: Any])?["items"]
                        as? [[String: Any]]) ?? []
                    return items.allSatisfy { $0["status"] as? String != "running" && $0["status"] as? String != "queued" } ? true : nil
                }
                try await Task.sleep(for: .seconds(2))

                let countsBefore = try await Self.rowCounts(database, tenantID: b.tenantID)
                #expect(countsBefore.values.reduce(0, +) > 10, "B has too little data to test: \(countsBefore)")
                let viewBefore = try await Self.ownView(env, routes: routes, tenant: b)
                // The control: B's own reads show every one of B's IDs, so A's 404s are not for bogus IDs.
                let bText = viewBefore.values.joined(separator: "\n").replacingOccurrences(of: "\\/", with: "/")
                for secret in b.secrets { #expect(bText.contains(secret), "B's own reads never show '\(secret)'") }

                // A's Owner, with every role of A and nothing in B.
                let attacker = try await TestUserTokens.token([a.tenantID: TenantRole.allCases], subject: "owner-a-attacker")
                var failures: [String] = []
                var leaks: [String] = []
                var crossCalls = 0
                var ownCalls = 0
                var ownSuccesses = 0
                for route in routes {
                    let names = Self.parameters(route.template)
                    // Parameters that name B's data (a month is the same for both tenants).
                    let foreign = names.filter { $0 != "tenantId" && a.value($0, service: route.service) != b.value($0, service: route.service) }
                    let isWrite = route.method != "GET"
                    let body: Any? = isWrite ? Self.body(route, own: a, sinkURL: sinkURL) : nil
                    if isWrite && body == nil { failures.append("\(route): no valid body known for this write route"); continue }
                    let query = try Self.query(queries[route] ?? [:], other: b, route: route)
                    // Variants: every non-tenant parameter B's; and each one alone B's with the rest A's own.
                    var variants: [[String: Tenant]] = []
                    if !foreign.isEmpty {
                        var allB = Dictionary(uniqueKeysWithValues: names.map { ($0, b) })
                        allB["tenantId"] = a
                        variants.append(allB)
                        if foreign.count > 1 {
                            for name in foreign {
                                var mixed = Dictionary(uniqueKeysWithValues: names.map { ($0, a) })
                                mixed[name] = b
                                variants.append(mixed)
                            }
                        }
                    } else {
                        variants.append(Dictionary(uniqueKeysWithValues: names.map { ($0, a) }))
                    }
                    // A's own reads under A's own IDs: none of B's items may appear.
                    if route.method == "GET" && !foreign.isEmpty {
                        let path = try Self.fill(route, with: Dictionary(uniqueKeysWithValues: names.map { ($0, a) }))
                        let ownQuery = try Self.query(queries[route] ?? [:], other: a, route: route)
                        let reply = try await Self.call("GET", env.url(route.service).absoluteString + path + ownQuery, token: attacker)
                        ownCalls += 1
                        if reply.status == 200 { ownSuccesses += 1 }
                        if reply.status >= 500 { failures.append("\(route) under A's IDs: \(reply.status) \(reply.text.prefix(200))") }
                        if let leaked = b.secrets.first(where: { Self.plain(reply).contains($0) }) {
                            leaks.append("\(route) under A's IDs: B's '\(leaked)' in \(reply.text.prefix(300))")
                        }
                    }
                    for owners in variants {
                        let path = try Self.fill(route, with: owners)
                        let url = env.url(route.service).absoluteString + path + query
                        let reply = try await Self.call(route.method, url, token: attacker, body: body)
                        let label = "\(route.service.rawValue) \(route.method) \(path)\(query)"
                        // B's data in an answer, beyond what the request itself named, is a leak.
                        let requestText = url + (body.flatMap { try? JSONSerialization.data(withJSONObject: $0) }
                            .map { String(decoding: $0, as: UTF8.self) } ?? "")
                        if let leaked = b.secrets.first(where: { Self.plain(reply).contains($0) && !requestText.contains($0) }) {
                            leaks.append("\(label): \(reply.status) B's '\(leaked)' in \(reply.text.prefix(300))")
                        }
                        if foreign.isEmpty {
                            // A's own (or tenant-less) route: whatever it answers names none of B's data.
                            ownCalls += 1
                            if (200..<300).contains(reply.status) { ownSuccesses += 1 }
                            if reply.status >= 500 { failures.append("\(label): \(reply.status) \(reply.text)") }

                        } else {
                            crossCalls += 1
                            if ![403, 404].contains(reply.status) || reply.header("Content-Type") != "application/problem+json" {
                                failures.append("\(label): \(reply.status) \(reply.header("Content-Type") ?? "") \(reply.text.prefix(200))")
                            }
                        }
                    }
                }
                // B's billing record stays invisible under A's tenant (at most a default trial answers).
                let trialUnderA = try await Self.call("GET", env.url(.billing).absoluteString
                    + "/v1/tenants/\(a.tenantID)/subscriptions/\(b.subscriptionID)/trial", token: attacker)
                if trialUnderA.status == 200, (try? trialUnderA.json() as? [String: Any])?["days"] as? Int == 45 {
                    leaks.append("billing: B's trial length under A's tenant: \(trialUnderA.text)")
                }
                // A reference to B's channel in A's own alert rule is refused too.
                let stolenChannel = try await Self.call("POST", env.url(.notification).absoluteString
                    + "/v1/tenants/\(a.tenantID)/subscriptions/\(a.subscriptionID)/rules", token: attacker,
                    body: ["name": "steal", "kind": "imageUnhealthy", "channelIds": [b.channelID]])
                if (200..<300).contains(stolenChannel.status) {
                    failures.append("A's alert rule accepted B's channel: \(stolenChannel.text)")
                }
                #expect(leaks.isEmpty, "\(leaks.count) answers with B's data:\n\(leaks.joined(separator: "\n"))")
                #expect(failures.isEmpty, "\(failures.count) cross-tenant failures:\n\(failures.joined(separator: "\n"))")
                // Every service asks discovery whether {subscriptionId} is {tenantId}'s (SubscriptionOwnership):
                // no write under A's tenant may have stored a row naming B's subscription.
                let orphans = try await Self.orphanCounts(database, tenantID: a.tenantID, subscriptionID: b.subscriptionID)
                #expect(orphans.isEmpty, "rows under A's tenant naming B's subscription: \(orphans)")
                #expect(crossCalls > 60, "too few cross-tenant calls: \(crossCalls)")
                #expect(ownCalls > 40 && ownSuccesses > 30, "too few own-scope calls: \(ownSuccesses) of \(ownCalls) succeeded")

                try await Task.sleep(for: .seconds(2))
                let countsAfter = try await Self.rowCounts(database, tenantID: b.tenantID)
                #expect(countsAfter == countsBefore, "B's rows changed: before \(countsBefore) after \(countsAfter)")
                let viewAfter = try await Self.ownView(env, routes: routes, tenant: b)
                for (route, before) in viewBefore.sorted(by: { $0.key < $1.key }) {
                    #expect(viewAfter[route] == before, "\(route) changed for B:\nbefore \(before.prefix(400))\nafter  \(viewAfter[route]?.prefix(400) ?? "")")
                }
                print("cross-tenant isolation: \(routes.count) routes, \(crossCalls) cross-tenant calls, \(ownCalls) own-scope calls (\(ownSuccesses) 2xx), "
                      + "\(countsBefore.count) tenant tables, \(countsBefore.values.reduce(0, +)) rows of B, \(viewBefore.count) B reads")
            }
        } catch {
            await database.drop()
            throw error
        }
        await database.drop()
    }

    /// Rows per tenant table (with a `subscription_id` column) that belong to `tenantID` but name `subscriptionID`:
    /// orphans a cross-tenant write would leave; only tables with such rows are listed.
    static func orphanCounts(_ database: TestDatabase, tenantID: String, subscriptionID: String) async throws -> [String: Int] {
        let logger = Logger(label: "isolation")
        return try await database.withClient { pool in try await pool.withSystemAccess(logger: logger) { client in
            var tables: [String] = []
            for try await (schema, table) in try await client.query("""
                SELECT c.table_schema::text, c.table_name::text FROM information_schema.columns c
                JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
                JOIN information_schema.columns s ON s.table_schema = c.table_schema AND s.table_name = c.table_name
                  AND s.column_name = 'subscription_id'
                WHERE c.column_name = 'tenant_id' AND t.table_type = 'BASE TABLE'
                  AND c.table_schema IN ('discovery', 'ingestion', 'scanner', 'findings_policy', 'billing', 'notification')
                ORDER BY 1, 2
                """, logger: logger).decode((String, String).self) { tables.append("\(schema).\(table)") }
            #expect(tables.count > 5, "too few tables with tenant_id and subscription_id: \(tables)")
            var counts: [String: Int] = [:]
            for table in tables {
                var binds = PostgresBindings()
                binds.append(tenantID)
                binds.append(subscriptionID)
                let rows = try await client.query(PostgresQuery(unsafeSQL:
                    "SELECT count(*)::int FROM \(table) WHERE tenant_id::text = $1 AND subscription_id::text = $2", binds: binds),
                    logger: logger)
                for try await count in rows.decode(Int.self) where count > 0 { counts[table] = count }
            }
            return counts
        } }
    }

    /// A webhook receiver that accepts every delivery.
    static func sink(port: Int) -> some Service {
        let router = Router()
        router.get("/readyz") { _, _ in HTTPResponse.Status.ok }
        router.post("/hook") { request, _ -> HTTPResponse.Status in
            _ = try await request.body.collect(upTo: 1 << 20)
            return .noContent
        }
        return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)))
    }
}
