@testable import Billing
import Foundation
import GantryRuntime
import GantryTesting
import NIOHTTP1
import Testing

/// Effective-dated prices and free trials, through the HTTP API on a real database.
@Suite("Billing prices and trials")
struct PricesAndTrialTests {
    /// Now, in whole seconds (the contract's date-times carry no fractions).
    static func now() -> Date { Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down)) }

    static func iso(_ date: Date) -> String { ISO8601DateFormatter().string(from: date) }

    func addPrice(_ h: BillingHarness, _ body: [String: Any]) async throws -> TestHTTP.Reply {
        try await TestHTTP.json(.POST, "\(h.base)/v1/prices", body)
    }

    @Test("a charge records the price in force at its scan time, also when delivered after later prices were added")
    func effectiveDatedPrices() async throws {
        try await BillingHarness.run { h in
            let initial = try await h.get("/v1/prices")
            #expect(initial["cloud"] as? String == "commercial" && initial["currency"] as? String == "USD")
            #expect((initial["current"] as? [String: Any])?["unitPrice"] as? String == "0.2900")
            #expect((initial["current"] as? [String: Any])?["effectiveFrom"] == nil)
            #expect((initial["prices"] as? [Any])?.count == 1)

            let now = Self.now()
            let first = now.addingTimeInterval(60), second = now.addingTimeInterval(180)
            let added = try await addPrice(h, ["unitPrice": "0.35", "currency": "USD", "effectiveFrom": Self.iso(first)])
            #expect(added.status == 201, "\(added.text)")
            #expect(try added.object()["unitPrice"] as? String == "0.3500")
            #expect(try added.object()["effectiveFrom"] as? String == Self.iso(first))
            #expect(try await addPrice(h, ["unitPrice": "0.4", "currency": "USD", "effectiveFrom": Self.iso(second)]).status == 201)

            let list = try await h.get("/v1/prices")
            let prices = try #require(list["prices"] as? [[String: Any]])
            #expect(prices.map { $0["unitPrice"] as? String } == ["0.2900", "0.3500", "0.4000"])
            #expect(prices.map { $0["effectiveFrom"] as? String } == [nil, Self.iso(first), Self.iso(second)])
            // Both prices lie in the future: the built-in one is still in force.
            #expect((list["current"] as? [String: Any])?["unitPrice"] as? String == "0.2900")

            // Scan times (within the accepted clock skew) on either side of each change.
            let account = try await h.account()
            let cases: [(Date, String)] = [
                (now.addingTimeInterval(-3600), "0.2900"), (first.addingTimeInterval(-1), "0.2900"), (first, "0.3500"),
                (second.addingTimeInterval(-1), "0.3500"), (second.addingTimeInterval(60), "0.4000"),
            ]
            for (index, (at, price)) in cases.enumerated() {
                let receipt = try await h.receipt(account.scan(digest(number: index), at: at))
                #expect(receipt.disposition == "charged" && receipt.unitPrice == price && receipt.listPrice == price,
                        "scan at \(Self.iso(at)): \(receipt)")
            }
            let usage = try await h.usage(tenant: account.tenant, subscription: account.subscription)
            #expect(usage["amount"] as? String == "1.6800")
            let recorded = try #require(usage["charges"] as? [[String: Any]]).map { $0["unitPrice"] as? String }
            #expect(recorded == cases.map(\.1))
        }
    }

    @Test("bad prices are 400 problem+json, a second price at the same instant 409, and nothing is added")
    func invalidPrices() async throws {
        try await BillingHarness.run { h in
            let future = Self.iso(Self.now().addingTimeInterval(3600))
            #expect(try await addPrice(h, ["unitPrice": "0.31", "currency": "USD", "effectiveFrom": future]).status == 201)
            let cases: [([String: Any], String)] = [
                (["unitPrice": "0.31", "currency": "USD", "effectiveFrom": Self.iso(Self.now().addingTimeInterval(-60))], "future"),
                (["unitPrice": "-1", "currency": "USD", "effectiveFrom": future], "unitPrice"),
                (["unitPrice": "0.12345", "currency": "USD", "effectiveFrom": future], "unitPrice"),
                (["unitPrice": "123456789", "currency": "USD", "effectiveFrom": future], "unitPrice"),
                (["unitPrice": "1e3", "currency": "USD", "effectiveFrom": future], "unitPrice"),
                (["unitPrice": ".5", "currency": "USD", "effectiveFrom": future], "unitPrice"),
                (["unitPrice": "0.31", "currency": "EUR", "effectiveFrom": future], "bills in USD"),
                (["unitPrice": "0.31", "currency": "usd", "effectiveFrom": future], "ISO 4217"),
                (["unitPrice": "0.31", "currency": "USD", "effectiveFrom": "next week"], "ISO8601"),
                (["unitPrice": 0.31, "currency": "USD", "effectiveFrom": future], "unitPrice"),
                (["currency": "USD", "effectiveFrom": future], "unitPrice"),
            ]
            for (body, expected) in cases {
                let detail = try expectProblem(try await addPrice(h, body), status: 400)
                #expect(detail.contains(expected), "\(body): \(detail)")
            }
            let duplicate = try await addPrice(h, ["unitPrice": "0.99", "currency": "USD", "effectiveFrom": future])
            #expect(try expectProblem(duplicate, status: 409).contains("exists already"))
            let prices = try #require(try await h.get("/v1/prices")["prices"] as? [[String: Any]])
            #expect(prices.map { $0["unitPrice"] as? String } == ["0.2900", "0.3100"])
        }
    }

    @Test("the China cloud prices in CNY and refuses prices in another currency")
    func chinaCloud() async throws {
        try await BillingHarness.run(extra: ["GANTRY_BILLING_TRIAL_DAYS": "0", "GANTRY_CLOUD": "china"]) { h in
            let list = try await h.get("/v1/prices")
            #expect(list["cloud"] as? String == "china" && list["currency"] as? String == "CNY")
            #expect((list["current"] as? [String: Any])?["unitPrice"] as? String == "1.8600")
            let future = Self.iso(Self.now().addingTimeInterval(3600))
            let refused = try await addPrice(h, ["unitPrice": "0.29", "currency": "USD", "effectiveFrom": future])
            #expect(try expectProblem(refused, status: 400).contains("bills in CNY"))
            let receipt = try await h.receipt(try await h.account().scan(digest("a1")))
            #expect(receipt.unitPrice == "1.8600" && receipt.currency == "CNY")
        }
    }

    @Test("the default 30-day trial starts with the first billable scan: charges inside it are 0 with their list price")
    func defaultTrial() async throws {
        try await BillingHarness.run(extra: [:]) { h in
            let account = try await h.account()
            let path = "/v1/tenants/\(account.tenant)/subscriptions/\(account.subscription)/trial"
            let before = try await h.get(path)
            #expect(before["days"] as? Int == 30 && before["active"] as? Bool == true && before["startsAt"] == nil)
            // A free scan does not start the trial.
            _ = try await h.receipt(account.scan(digest("ff"), trigger: "rescan", at: Self.now().addingTimeInterval(-50 * 86_400)))
            #expect(try await h.get(path)["startsAt"] == nil)

            let start = Self.now().addingTimeInterval(-40 * 86_400)
            let first = try await h.receipt(account.scan(digest("a1"), at: start))
            #expect(first.disposition == "trial" && first.charged && first.unitPrice == "0.0000" && first.listPrice == "0.2900")
            let trial = try await h.get(path)
            #expect(trial["startsAt"] as? String == Self.iso(start))
            #expect(trial["endsAt"] as? String == Self.iso(start.addingTimeInterval(30 * 86_400)))
            #expect(trial["active"] as? Bool == false)

            let cases: [(String, Date, String, String)] = [
                (digest("b2"), start.addingTimeInterval(30 * 86_400 - 1), "trial", "0.0000"),  // last second of the trial
                (digest("c3"), start.addingTimeInterval(30 * 86_400), "charged", "0.2900"),     // first second after it
                (digest("d4"), start.addingTimeInterval(-86_400), "trial", "0.0000"),           // delivered late, scanned earlier
            ]
            for (image, at, disposition, price) in cases {
                let receipt = try await h.receipt(account.scan(image, at: at))
                #expect(receipt.disposition == disposition && receipt.unitPrice == price && receipt.listPrice == "0.2900",
                        "\(Self.iso(at)): \(receipt)")
            }
            // A longer trial applies to what is recorded from now on; recorded charges keep their price.
            let longer = try await TestHTTP.json(.PUT, "\(h.base)\(path)", ["days": 60])
            #expect(longer.status == 200, "\(longer.text)")
            #expect(try longer.object()["startsAt"] as? String == Self.iso(start))
            #expect(try longer.object()["active"] as? Bool == true)
            #expect(try await h.receipt(account.scan(digest("e5"), at: start.addingTimeInterval(35 * 86_400))).disposition == "trial")

            let usage = try await h.usage(tenant: account.tenant, subscription: account.subscription)
            #expect(usage["billableImages"] as? Int == 5)
            #expect(usage["trialImages"] as? Int == 4)
            #expect(usage["amount"] as? String == "0.2900")
            #expect(usage["scans"] as? Int == 6)
        }
    }

    @Test("a trial configured per subscription: none, or 7 days; bad lengths 400, another tenant's subscription 404")
    func configuredTrials() async throws {
        try await BillingHarness.run(extra: ["GANTRY_BILLING_TRIAL_DAYS": "30"]) { h in
            let none = try await h.account(), week = try await h.account()
            func path(_ account: Account) -> String {
                "\(h.base)/v1/tenants/\(account.tenant)/subscriptions/\(account.subscription)/trial"
            }
            let off = try await TestHTTP.json(.PUT, path(none), ["days": 0])
            #expect(off.status == 200, "\(off.text)")
            #expect(try off.object()["active"] as? Bool == false)
            #expect(try await h.receipt(none.scan(digest("a1"))).disposition == "charged")

            #expect(try await TestHTTP.json(.PUT, path(week), ["days": 7]).status == 200)
            let now = Self.now()
            #expect(try await h.receipt(week.scan(digest("a1"), at: now)).disposition == "trial")
            let trial = try await h.get("/v1/tenants/\(week.tenant)/subscriptions/\(week.subscription)/trial")
            #expect(trial["days"] as? Int == 7 && trial["active"] as? Bool == true)
            #expect(trial["endsAt"] as? String == Self.iso(now.addingTimeInterval(7 * 86_400)))

            for days in [-1, 3651] {
                let detail = try expectProblem(try await TestHTTP.json(.PUT, path(week), ["days": days]), status: 400)
                #expect(detail.contains("days"), "\(detail)")
            }
            try expectProblem(try await TestHTTP.json(.PUT, path(week), ["days": "seven"]), status: 400)
            var intruder = week
            intruder.tenant = UUID().uuidString.lowercased()
            #expect(try expectProblem(try await TestHTTP.json(.PUT, path(intruder), ["days": 365]), status: 404)
                .contains("not found in tenant"))
            // The intruder is told the subscription does not exist, not the owner's trial.
            let seen = try await TestHTTP.send(.GET, path(intruder))
            #expect(try expectProblem(seen, status: 404).contains("subscription \(week.subscription) not found in tenant \(intruder.tenant)"))
            #expect(try await h.get("/v1/tenants/\(week.tenant)/subscriptions/\(week.subscription)/trial")["days"] as? Int == 7)
        }
    }

    @Test("GANTRY_BILLING_TRIAL_DAYS must be an integer in 0...3650")
    func trialConfiguration() throws {
        for value in ["thirty", "-1", "3651"] {
            let configuration = try GantryConfiguration(service: .billing, environment: [
                "GANTRY_SERVICE_KEY": String(repeating: "k", count: 40), "GANTRY_BILLING_TRIAL_DAYS": value])
            #expect(throws: ConfigurationError.self) { try BillingSettings(configuration: configuration) }
        }
        let configuration = try GantryConfiguration(service: .billing, environment: [
            "GANTRY_SERVICE_KEY": String(repeating: "k", count: 40)])
        #expect(try BillingSettings(configuration: configuration).defaultTrialDays == 30)
    }
}
