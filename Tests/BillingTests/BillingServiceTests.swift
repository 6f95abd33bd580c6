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
    @Test("the first scan of a digest in a subscription is charged once; repeats, rescans and redeliveries are free")
    func chargesOncePerDigestAndSubscription() async throws {
        try await BillingHarness.run { h in
            let account = try await h.account()
            let other = try await h.account()
            let image = digest("a1")

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
            // The same message redelivered: no second effect; the original receipt again.
            let again = try await h.receipt(account.scan(image, messageID: "scan-1", scanID: firstScanID))
            #expect(again.redelivered && again.charged && again.chargeID == chargeID && again.unitPrice == "0.2900")
            #expect(try Receipt(receipt).redelivered == false)
            #expect(try Receipt(repeated.object()).disposition == "alreadyCharged")
            // Same digest in another subscription: charged there.
            #expect(try await h.charged(other.scan(image, messageID: "scan-3")) == true)
            // A rescan is never charged, even of a digest never charged before.
            let rescanned = digest("b2")
            #expect(try await h.receipt(account.scan(rescanned, trigger: "rescan", messageID: "scan-4")).disposition == "freeTrigger")
            #expect(try await h.chargeCount(digest: rescanned) == 0)
            // Manual and import scans of a new digest are charged.
            #expect(try await h.charged(account.scan(digest("c3"), trigger: "manual", messageID: "scan-5")) == true)
            #expect(try await h.charged(account.scan(digest("d4"), trigger: "import", messageID: "scan-6")) == true)

            #expect(try await h.chargeCount() == 4)
            #expect(try await h.chargeCount(digest: image) == 2)

            let usage = try await h.usage(tenant: account.tenant, subscription: account.subscription)
            #expect(usage["subscriptionId"] as? String == account.subscription)
            #expect(usage["billableImages"] as? Int == 3)
            #expect(usage["amount"] as? String == "0.8700")
            #expect(usage["currency"] as? String == "USD")
            let charges = try #require(usage["charges"] as? [[String: Any]])
            #expect(charges.map { $0["digest"] as? String } == [image, digest("c3"), digest("d4")])
            #expect(charges.first?["chargeId"] as? String == chargeID)
            #expect(charges.first?["scanId"] as? String == firstScanID)
            #expect(charges.first?["registryId"] as? String == account.registry)
            #expect(charges.allSatisfy { $0["unitPrice"] as? String == "0.2900" && $0["currency"] as? String == "USD" })

            let otherUsage = try await h.usage(tenant: other.tenant, subscription: other.subscription)
            #expect(otherUsage["billableImages"] as? Int == 1)
            #expect(otherUsage["amount"] as? String == "0.2900")

            // A subscription with no charges owes nothing, in the deployment's currency.
            let fresh = try await h.account()
            let empty = try await h.usage(tenant: fresh.tenant, subscription: fresh.subscription)
            #expect(empty["billableImages"] as? Int == 0)
            #expect(empty["amount"] as? String == "0.0000")
            #expect(empty["currency"] as? String == "USD")
            #expect((empty["charges"] as? [Any])?.isEmpty == true)

            // Usage is per tenant too: another tenant asking for this subscription is told it does not exist.
            let foreign = try await TestHTTP.send(.GET, "\(h.base)/v1/tenants/\(other.tenant)/subscriptions/\(account.subscription)/usage")
            #expect(try expectProblem(foreign, status: 404).contains("subscription \(account.subscription) not found in tenant \(other.tenant)"))
        }
    }

    @Test("20 concurrent first scans of one digest (different messages) produce exactly one charge")
    func concurrentScansChargeOnce() async throws {
        try await BillingHarness.run { h in
            let account = try await h.account()
            let image = digest("e5")
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

    @Test("the same message delivered 10 times at once has one effect; every delivery answers the same charge")
    func concurrentRedeliveryOneEffect() async throws {
        try await BillingHarness.run { h in
            let account = try await h.account()
            let scan = account.scan(digest("f6"), messageID: "once")
            let results = try await withThrowingTaskGroup(of: Receipt.self) { group in
                for _ in 0..<10 { group.addTask { try await h.receipt(scan) } }
                var results: [Receipt] = []
                for try await receipt in group { results.append(receipt) }
                return results
            }
            #expect(results.filter { !$0.redelivered }.count == 1)
            #expect(results.allSatisfy { $0.charged && $0.chargeID != nil })
            #expect(Set(results.map(\.chargeID)).count == 1)
            #expect(try await h.chargeCount() == 1)
            #expect(try await h.count("SELECT count(*)::int FROM billing.usage_events") == 1)
        }
    }

    @Test("bad UUIDs, digests, triggers, outcomes, hosts, future scan times and bodies are 400 problem+json and store nothing")
    func invalidUsage() async throws {
        try await BillingHarness.run { h in
            let account = try await h.account()
            let good = account.scan(digest("a1"))
            var cases: [(String, UsageMessage, String)] = []
            func bad(_ name: String, _ overrides: [String: String?], field: String) {
                var usage = good
                usage.overrides = overrides
                cases.append((name, usage, field))
            }
            for field in ["tenantId", "subscriptionId", "registryId", "scanId"] {
                bad(field, [field: "not-a-uuid"], field: field)
            }
            for digest in ["sha256:abc", "md5:" + String(repeating: "a", count: 32), "sha256:" + String(repeating: "A", count: 64), ""] {
                bad("digest \(digest)", ["digest": digest], field: "digest")
            }
            bad("trigger", ["trigger": "gift"], field: "trigger")
            bad("messageId", ["messageId": "   "], field: "messageId")
            bad("missing digest", ["digest": nil], field: "digest")
            bad("outcome", ["outcome": "great"], field: "outcome")
            bad("planEnabled", ["planEnabled": "yes"], field: "planEnabled")
            bad("registryHost", ["registryHost": "http://registry.example/v2"], field: "registryHost")
            bad("scannedAt format", ["scannedAt": "yesterday"], field: "ISO8601")
            let tomorrow = ISO8601DateFormatter().string(from: Date().addingTimeInterval(86_400))
            bad("scannedAt future", ["scannedAt": tomorrow], field: "scannedAt")

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
            #expect(try await h.count("SELECT count(*)::int FROM billing.usage_events") == 0)
            #expect(try await h.count("SELECT count(*)::int FROM billing.subscriptions") == 0)
            // Nothing was claimed either, so a corrected retry of the same message still counts.
            #expect(try await h.charged(good) == true)
        }
    }

    @Test("a subscription reported under another tenant is refused with 409 and nothing of it is stored")
    func subscriptionOfAnotherTenant() async throws {
        try await BillingHarness.run { h in
            let owner = try await h.account()
            #expect(try await h.charged(owner.scan(digest("a1"))))
            var intruder = owner
            intruder.tenant = UUID().uuidString.lowercased()
            let message = intruder.scan(digest("b2"), messageID: "intruder-1")
            let detail = try expectProblem(try await h.record(message), status: 409)
            #expect(detail.contains("another tenant"), "\(detail)")
            #expect(try await h.chargeCount() == 1)
            #expect(try await h.count("SELECT count(*)::int FROM billing.inbox WHERE message_id = 'intruder-1'") == 0)
            #expect(try await h.count("SELECT count(*)::int FROM billing.usage_events") == 1)
        }
    }

    @Test("failed and not-applicable scans, disabled plans, rescans and re-evaluations cost nothing, and are counted as scans")
    func freeScans() async throws {
        try await BillingHarness.run { h in
            let account = try await h.account()
            var failed = account.scan(digest("a1"))
            failed.outcome = "failed"
            var notApplicable = account.scan(digest("b2"))
            notApplicable.outcome = "notApplicable"
            var disabled = account.scan(digest("c3"))
            disabled.planEnabled = false
            let expected: [(UsageMessage, String)] = [
                (failed, "notAssessed"), (notApplicable, "notAssessed"), (disabled, "planDisabled"),
                (account.scan(digest("d4"), trigger: "rescan"), "freeTrigger"),
                (account.scan(digest("e5"), trigger: "reevaluation"), "freeTrigger"),
            ]
            for (usage, disposition) in expected {
                let receipt = try await h.receipt(usage)
                #expect(receipt.disposition == disposition && !receipt.charged && receipt.chargeID == nil
                        && receipt.unitPrice == nil, "\(usage.json)")
            }
            #expect(try await h.chargeCount() == 0)
            // A later assessed first scan of those digests (plan on, push) is the billable one.
            var assessed = account.scan(digest("a1"))
            assessed.outcome = "assessed"
            assessed.planEnabled = true
            #expect(try await h.receipt(assessed).disposition == "charged")
            let usage = try await h.usage(tenant: account.tenant, subscription: account.subscription)
            #expect(usage["scans"] as? Int == 6)
            #expect(usage["billableImages"] as? Int == 1)
            #expect(usage["amount"] as? String == "0.2900")
            let dispositions = try await h.database.withClient { client in
                try await client.withTenant(UUID(uuidString: account.tenant)!, logger: Logger(label: "test-db")) { connection in
                    var rows: [String] = []
                    for try await row in try await connection.query(
                        "SELECT disposition FROM billing.usage_events ORDER BY received_at", logger: Logger(label: "test-db"))
                        .decode(String.self) { rows.append(row) }
                    return rows
                }
            }
            #expect(dispositions == ["notAssessed", "notAssessed", "planDisabled", "freeTrigger", "freeTrigger", "charged"])
        }
    }

    @Test("recording usage needs a service token addressed to billing")
    func usageNeedsServiceToken() async throws {
        try await BillingHarness.run { h in
            let scan = try await h.account().scan(digest("a1"))
            let none = try await TestHTTP.json(.POST, "\(h.base)/internal/v1/usage", scan.json)
            try expectProblem(none, status: 401)
            let forDiscovery = try await h.env.tokens().token(for: "discovery")
            try expectProblem(try await h.record(scan, token: forDiscovery), status: 401)
            #expect(try await h.chargeCount() == 0)
        }
    }
}

