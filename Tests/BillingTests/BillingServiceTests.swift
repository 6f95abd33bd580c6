import Billing
import Foundation
import GantryRuntime
import GantryTesting
import NIOHTTP1
import PostgresNIO
import Testing

/// Billing run in-process on a real PostgreSQL database, called over HTTP.
@Suite("Billing service")
struct BillingServiceTests {
    /// A billing service on a fresh database, and calls against it.
    struct Harness: Sendable {
        let env: TestEnvironment
        let database: TestDatabase
        var base: String { env.url(.billing).absoluteString }

        static func run(_ body: @Sendable (Harness) async throws -> Void) async throws {
            let database = try await TestDatabase.create()
            do {
                let env = try TestEnvironment(database: database)
                let app = try await buildBillingApplication(configuration: env.configuration(.billing))
                let harness = Harness(env: env, database: database)
                try await withRunningServices([app], readyPorts: [env.ports[.billing]!]) { try await body(harness) }
            } catch {
                await database.drop()
                throw error
            }
            await database.drop()
        }

        /// `POST /internal/v1/usage` with a billing service token.
        func record(_ usage: [String: String], token: String? = nil) async throws -> TestHTTP.Reply {
            let bearer: String
            if let token { bearer = token } else { bearer = try await env.tokens(issuer: "scanner").token(for: "billing") }
            return try await TestHTTP.json(.POST, "\(base)/internal/v1/usage", usage,
                                           headers: ["Content-Type": "application/json", "Authorization": "Bearer \(bearer)"])
        }

        /// Records a scan and returns the receipt's `charged`, requiring 200.
        func charged(_ usage: [String: String]) async throws -> Bool {
            let reply = try await record(usage)
            try #require(reply.status == 200, "\(reply.text)")
            let charged = try reply.object()["charged"]
            return try #require(charged as? Bool)
        }

        func usage(tenant: String, subscription: String) async throws -> [String: Any] {
            let reply = try await TestHTTP.send(.GET, "\(base)/v1/tenants/\(tenant)/subscriptions/\(subscription)/usage")
            try #require(reply.status == 200, "\(reply.text)")
            return try reply.object()
        }

        func chargeCount(digest: String? = nil) async throws -> Int {
            try await database.withClient { client in
                let rows = if let digest {
                    try await client.query("SELECT count(*)::int FROM billing.charges WHERE digest = \(digest)")
                } else {
                    try await client.query("SELECT count(*)::int FROM billing.charges")
                }
                for try await count in rows.decode(Int.self) { return count }
                return -1
            }
        }
    }

    /// One tenant and subscription with a registry.
    struct Account {
        let tenant = UUID().uuidString.lowercased()
        let subscription = UUID().uuidString.lowercased()
        let registry = UUID().uuidString.lowercased()

        func scan(_ digest: String, trigger: String = "push", messageID: String = UUID().uuidString,
                  scanID: String = UUID().uuidString.lowercased()) -> [String: String] {
            ["messageId": messageID, "tenantId": tenant, "subscriptionId": subscription, "registryId": registry,
             "digest": digest, "scanId": scanID, "trigger": trigger]
        }
    }

    static func digest(_ seed: String) -> String {
        "sha256:" + String(repeating: seed, count: 64 / seed.count)
    }

    @Test("the first scan of a digest in a subscription is charged once; repeats, rescans and redeliveries are free")
    func chargesOncePerDigestAndSubscription() async throws {
        try await Harness.run { h in
            let account = Account()
            let other = Account()
            let image = Self.digest("a1")

            let firstScanID = UUID().uuidString.lowercased()
            let first = try await h.record(account.scan(image, messageID: "scan-1", scanID: firstScanID))
            #expect(first.status == 200, "\(first.text)")
            let receipt = try first.object()
            #expect(receipt["charged"] as? Bool == true)
            let chargeID = try #require(receipt["chargeId"] as? String)

            // Same digest, same subscription, another scan and message: free.
            let repeated = try await h.record(account.scan(image, messageID: "scan-2"))
            #expect(try repeated.object()["charged"] as? Bool == false)
            #expect(try repeated.object()["chargeId"] == nil)
            // The same message redelivered: no second effect.
            #expect(try await h.charged(account.scan(image, messageID: "scan-1", scanID: firstScanID)) == false)
            // Same digest in another subscription: charged there.
            #expect(try await h.charged(other.scan(image, messageID: "scan-3")) == true)
            // A rescan is never charged, even of a digest never charged before.
            let rescanned = Self.digest("b2")
            #expect(try await h.charged(account.scan(rescanned, trigger: "rescan", messageID: "scan-4")) == false)
            #expect(try await h.chargeCount(digest: rescanned) == 0)
            // Manual and import scans of a new digest are charged.
            #expect(try await h.charged(account.scan(Self.digest("c3"), trigger: "manual", messageID: "scan-5")) == true)
            #expect(try await h.charged(account.scan(Self.digest("d4"), trigger: "import", messageID: "scan-6")) == true)

            #expect(try await h.chargeCount() == 4)
            #expect(try await h.chargeCount(digest: image) == 2)

            let usage = try await h.usage(tenant: account.tenant, subscription: account.subscription)
            #expect(usage["subscriptionId"] as? String == account.subscription)
            #expect(usage["billableImages"] as? Int == 3)
            #expect(usage["amount"] as? String == "0.8700")
            #expect(usage["currency"] as? String == "USD")
            let charges = try #require(usage["charges"] as? [[String: Any]])
            #expect(charges.map { $0["digest"] as? String } == [image, Self.digest("c3"), Self.digest("d4")])
            #expect(charges.first?["chargeId"] as? String == chargeID)
            #expect(charges.first?["scanId"] as? String == firstScanID)
            #expect(charges.first?["registryId"] as? String == account.registry)
            #expect(charges.allSatisfy { $0["unitPrice"] as? String == "0.2900" && $0["currency"] as? String == "USD" })

            let otherUsage = try await h.usage(tenant: other.tenant, subscription: other.subscription)
            #expect(otherUsage["billableImages"] as? Int == 1)
            #expect(otherUsage["amount"] as? String == "0.2900")

            // A subscription with no charges owes nothing, in the deployment's currency.
            let empty = try await h.usage(tenant: UUID().uuidString, subscription: UUID().uuidString)
            #expect(empty["billableImages"] as? Int == 0)
            #expect(empty["amount"] as? String == "0.0000")
            #expect(empty["currency"] as? String == "USD")
            #expect((empty["charges"] as? [Any])?.isEmpty == true)

            // Usage is per tenant too: another tenant asking for this subscription sees nothing.
            let foreign = try await h.usage(tenant: other.tenant, subscription: account.subscription)
            #expect(foreign["billableImages"] as? Int == 0)
        }
    }

    @Test("20 concurrent first scans of one digest (different messages) produce exactly one charge")
    func concurrentScansChargeOnce() async throws {
        try await Harness.run { h in
            let account = Account()
            let image = Self.digest("e5")
            let results = try await withThrowingTaskGroup(of: Bool.self) { group in
                for index in 0..<20 {
                    group.addTask { try await h.charged(account.scan(image, messageID: "race-\(index)")) }
                }
                var results: [Bool] = []
                for try await charged in group { results.append(charged) }
                return results
            }
            #expect(results.count == 20)
            #expect(results.filter { $0 }.count == 1)
            #expect(try await h.chargeCount(digest: image) == 1)
            let inbox = try await h.database.withClient { client in
                for try await count in try await client.query("SELECT count(*)::int FROM billing.inbox").decode(Int.self) {
                    return count
                }
                return -1
            }
            #expect(inbox == 20)
            let usage = try await h.usage(tenant: account.tenant, subscription: account.subscription)
            #expect(usage["billableImages"] as? Int == 1)
            #expect(usage["amount"] as? String == "0.2900")
        }
    }

    @Test("the same message delivered 10 times at once has one effect")
    func concurrentRedeliveryOneEffect() async throws {
        try await Harness.run { h in
            let account = Account()
            let scan = account.scan(Self.digest("f6"), messageID: "once")
            let results = try await withThrowingTaskGroup(of: Bool.self) { group in
                for _ in 0..<10 { group.addTask { try await h.charged(scan) } }
                var results: [Bool] = []
                for try await charged in group { results.append(charged) }
                return results
            }
            #expect(results.filter { $0 }.count == 1)
            #expect(try await h.chargeCount() == 1)
        }
    }

    @Test("bad UUIDs, digests, triggers and bodies are 400 problem+json and charge nothing")
    func invalidUsage() async throws {
        try await Harness.run { h in
            let account = Account()
            let good = account.scan(Self.digest("a1"))
            var cases: [(String, [String: String], String)] = []
            for field in ["tenantId", "subscriptionId", "registryId", "scanId"] {
                var usage = good
                usage[field] = "not-a-uuid"
                cases.append((field, usage, field))
            }
            for digest in ["sha256:abc", "md5:" + String(repeating: "a", count: 32), "sha256:" + String(repeating: "A", count: 64), ""] {
                var usage = good
                usage["digest"] = digest
                usage["messageId"] = UUID().uuidString
                cases.append(("digest \(digest)", usage, "digest"))
            }
            var badTrigger = good
            badTrigger["trigger"] = "gift"
            cases.append(("trigger", badTrigger, "trigger"))
            var blankMessage = good
            blankMessage["messageId"] = "   "
            cases.append(("messageId", blankMessage, "messageId"))
            var missing = good
            missing["digest"] = nil
            cases.append(("missing digest", missing, "digest"))

            for (name, usage, field) in cases {
                let reply = try await h.record(usage)
                let detail = try expectProblem(reply, status: 400)
                #expect(detail.contains(field), "\(name): \(detail)")
            }
            let token = try await h.env.tokens().token(for: "billing")
            let malformed = try await TestHTTP.send(.POST, "\(h.base)/internal/v1/usage", body: Data("{\"messageId\":".utf8),
                                                    headers: ["Content-Type": "application/json", "Authorization": "Bearer \(token)"])
            try expectProblem(malformed, status: 400)
            let badPath = try await TestHTTP.send(.GET, "\(h.base)/v1/tenants/nope/subscriptions/\(account.subscription)/usage")
            #expect(try expectProblem(badPath, status: 400).contains("tenantId"))

            #expect(try await h.chargeCount() == 0)
            // Nothing was claimed either, so a corrected retry of the same message still counts.
            #expect(try await h.charged(good) == true)
        }
    }

    @Test("recording usage needs a service token addressed to billing")
    func usageNeedsServiceToken() async throws {
        try await Harness.run { h in
            let scan = Account().scan(Self.digest("a1"))
            let none = try await TestHTTP.json(.POST, "\(h.base)/internal/v1/usage", scan)
            try expectProblem(none, status: 401)
            let forDiscovery = try await h.env.tokens().token(for: "discovery")
            try expectProblem(try await h.record(scan, token: forDiscovery), status: 401)
            #expect(try await h.chargeCount() == 0)
        }
    }
}

