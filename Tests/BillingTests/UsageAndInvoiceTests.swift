@testable import Billing
import Foundation
import GantryRuntime
import GantryTesting
import NIOHTTP1
import Testing

/// Parses CSV with Python's `csv` module (strict), an independent RFC 4180 reader.
func parseCSVWithPython(_ text: String) throws -> [[String]] {
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("gantry-invoice-\(UUID()).csv")
    try Data(text.utf8).write(to: file)
    defer { try? FileManager.default.removeItem(at: file) }
    let result = try ProcessRunner.run("/usr/bin/env", ["python3", "-c", """
        import csv, json, sys
        with open(sys.argv[1], newline='', encoding='utf-8') as f:
            print(json.dumps(list(csv.reader(f, strict=True))))
        """, file.path])
    return try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String]])
}

/// Usage per registry and UTC day or month, and monthly invoices in JSON and CSV.
@Suite("Billing usage and invoices")
struct UsageAndInvoiceTests {
    /// One subscription with a one-day trial and two registries, with scans around the January/February 2025 boundary.
    struct Scenario: Sendable {
        let account: Account
        let registryA = UUID().uuidString.lowercased()  // registry-a.example, listed first
        let registryB = UUID().uuidString.lowercased()  // registry-b.example:5000

        func record(on h: BillingHarness) async throws {
            let trial = try await TestHTTP.json(
                .PUT, "\(h.base)/v1/tenants/\(account.tenant)/subscriptions/\(account.subscription)/trial", ["days": 1])
            try #require(trial.status == 200, "\(trial.text)")
            let b = (registryB, "registry-b.example:5000"), a = (registryA, "registry-a.example")
            let scans: [(String, (String, String), String, String, String)] = [
                ("2025-01-31T23:59:59Z", b, "d1", "push", "trial"),          // starts the one-day trial
                ("2025-02-01T00:00:00Z", b, "d2", "push", "trial"),
                ("2025-02-01T10:00:00Z", a, "d3", "import", "trial"),
                ("2025-02-01T11:00:00Z", a, "d3", "push", "alreadyCharged"),
                ("2025-02-14T08:00:00Z", a, "d4", "rescan", "freeTrigger"),
                ("2025-02-28T23:59:59Z", a, "d5", "manual", "charged"),      // after the trial
                ("2025-03-01T00:00:00Z", a, "d6", "push", "charged"),
            ]
            for (at, (registry, host), image, trigger, disposition) in scans {
                let receipt = try await h.receipt(account.scan(digest(number: Int(image.dropFirst()) ?? 0),
                                                               trigger: trigger, registry: registry, host: host, at: utc(at)))
                #expect(receipt.disposition == disposition, "\(at) \(image): \(receipt)")
            }
        }

        func path(_ suffix: String) -> String {
            "/v1/tenants/\(account.tenant)/subscriptions/\(account.subscription)/\(suffix)"
        }
    }

    static func periods(_ usage: [String: Any]) -> [String] {
        ((usage["periods"] as? [[String: Any]]) ?? []).map {
            "\($0["period"] ?? "") \($0["registryHost"] ?? "-") scans=\($0["scans"] ?? "") billable=\($0["billableImages"] ?? "") "
                + "trial=\($0["trialImages"] ?? "") amount=\($0["amount"] ?? "")"
        }
    }

    @Test("usage per registry and UTC month or day, within an inclusive day range")
    func usagePerPeriod() async throws {
        try await BillingHarness.run { h in
            let scenario = Scenario(account: try await h.account())
            try await scenario.record(on: h)

            let months = try await h.get(scenario.path("usage"))
            #expect(months["granularity"] as? String == "month")
            #expect(Self.periods(months) == [
                "2025-01 registry-b.example:5000 scans=1 billable=1 trial=1 amount=0.0000",
                "2025-02 registry-a.example scans=4 billable=2 trial=1 amount=0.2900",
                "2025-02 registry-b.example:5000 scans=1 billable=1 trial=1 amount=0.0000",
                "2025-03 registry-a.example scans=1 billable=1 trial=0 amount=0.2900",
            ])
            #expect(months["scans"] as? Int == 7 && months["billableImages"] as? Int == 5 && months["trialImages"] as? Int == 3)
            #expect(months["amount"] as? String == "0.5800" && months["currency"] as? String == "USD")

            let days = try await h.get(scenario.path("usage?granularity=day&from=2025-02-01&to=2025-02-14"))
            #expect(Self.periods(days) == [
                "2025-02-01 registry-a.example scans=2 billable=1 trial=1 amount=0.0000",
                "2025-02-01 registry-b.example:5000 scans=1 billable=1 trial=1 amount=0.0000",
                "2025-02-14 registry-a.example scans=1 billable=0 trial=0 amount=0.0000",
            ])
            #expect(days["from"] as? String == "2025-02-01" && days["to"] as? String == "2025-02-14")
            #expect(days["billableImages"] as? Int == 2 && days["amount"] as? String == "0.0000")
            #expect((days["charges"] as? [[String: Any]])?.compactMap { $0["scannedAt"] as? String }
                    == ["2025-02-01T00:00:00Z", "2025-02-01T10:00:00Z"])
            // `to` is inclusive to the day's last second.
            let lastDay = try await h.get(scenario.path("usage?from=2025-02-28&to=2025-02-28"))
            #expect(lastDay["billableImages"] as? Int == 1 && lastDay["amount"] as? String == "0.2900")

            for (query, field) in [("from=2025-02-30", "from"), ("from=2025-2-1", "from"), ("to=20250201", "to"),
                                   ("from=2025-02-02&to=2025-02-01", "before"),
                                   ("granularity=week", "'week' is not an allowed value of query parameter 'granularity'"),
                                   ("from=1999-12-31", "from")] {
                let reply = try await TestHTTP.send(.GET, "\(h.base)\(scenario.path("usage?\(query)"))")
                let detail = try expectProblem(reply, status: 400)
                #expect(detail.contains(field), "\(query): \(detail)")
            }
        }
    }

    @Test("monthly invoices: line items per registry and price, trial lines at 0, totals; the same in RFC 4180 CSV")
    func invoices() async throws {
        try await BillingHarness.run { h in
            let scenario = Scenario(account: try await h.account())
            try await scenario.record(on: h)

            let february = try await h.get(scenario.path("invoices/2025-02"))
            #expect(february["month"] as? String == "2025-02" && february["status"] as? String == "closed")
            #expect(february["periodStart"] as? String == "2025-02-01T00:00:00Z")
            #expect(february["periodEnd"] as? String == "2025-03-01T00:00:00Z")
            #expect(february["tenantId"] as? String == scenario.account.tenant)
            #expect(february["billableImages"] as? Int == 3 && february["total"] as? String == "0.2900")
            let lines = try #require(february["lines"] as? [[String: Any]])
            let summary = lines.map {
                "\($0["registryHost"] ?? "") \($0["quantity"] ?? "") × \($0["unitPrice"] ?? "") (list \($0["listPrice"] ?? "")) "
                    + "trial=\($0["inTrial"] ?? "") = \($0["amount"] ?? "")"
            }
            #expect(summary == [
                "registry-a.example 1 × 0.0000 (list 0.2900) trial=1 = 0.0000",
                "registry-a.example 1 × 0.2900 (list 0.2900) trial=0 = 0.2900",
                "registry-b.example:5000 1 × 0.0000 (list 0.2900) trial=1 = 0.0000",
            ])
            #expect(lines.map { $0["registryId"] as? String } == [scenario.registryA, scenario.registryA, scenario.registryB])

            let january = try await h.get(scenario.path("invoices/2025-01"))
            #expect(january["billableImages"] as? Int == 1 && january["total"] as? String == "0.0000")
            let empty = try await h.get(scenario.path("invoices/2024-12"))
            #expect((empty["lines"] as? [Any])?.isEmpty == true && empty["total"] as? String == "0.0000")
            let monthNow = String(ISO8601DateFormatter().string(from: Date()).prefix(7))
            #expect(try await h.get(scenario.path("invoices/\(monthNow)"))["status"] as? String == "open")

            let csv = try await TestHTTP.send(.GET, "\(h.base)\(scenario.path("invoices/2025-02?format=csv"))")
            #expect(csv.status == 200)
            #expect(csv.header("Content-Type")?.hasPrefix("text/csv") == true, "\(csv.headers)")
            #expect(csv.text.hasSuffix("\r\n") && !csv.text.replacingOccurrences(of: "\r\n", with: "").contains("\n"))
            let records = try parseCSVWithPython(csv.text)
            #expect(records.first == ["month", "tenant_id", "subscription_id", "registry_id", "registry_host", "description",
                                      "quantity", "unit_price", "list_price", "amount", "currency"])
            #expect(records.count == 4)
            for (record, line) in zip(records.dropFirst(), lines) {
                #expect(record == ["2025-02", scenario.account.tenant, scenario.account.subscription,
                                   line["registryId"] as? String ?? "", line["registryHost"] as? String ?? "",
                                   line["description"] as? String ?? "", "\(line["quantity"] ?? "")",
                                   line["unitPrice"] as? String ?? "", line["listPrice"] as? String ?? "",
                                   line["amount"] as? String ?? "", "USD"])
            }

            for (month, field) in [("2025-13", "calendar date"), ("2025-1", "YYYY-MM"), ("2999-01", "not begun"),
                                   ("1999-12", "2000"), ("2025-02?format=xml", "'xml' is not an allowed value of query parameter 'format'")] {
                let reply = try await TestHTTP.send(.GET, "\(h.base)\(scenario.path("invoices/\(month)"))")
                let detail = try expectProblem(reply, status: 400)
                #expect(detail.contains(field), "\(month): \(detail)")
            }
            // Another tenant sees nothing of this subscription.
            let foreign = try await TestHTTP.send(.GET, "\(h.base)/v1/tenants/\(UUID().uuidString.lowercased())/subscriptions/\(scenario.account.subscription)/invoices/2025-02")
            #expect(try expectProblem(foreign, status: 404).contains("not found in tenant"))
        }
    }

    @Test("CSV fields with commas, quotes and line breaks are quoted as RFC 4180 says (checked by Python's csv)")
    func csvQuoting() throws {
        let rows = [["plain", "a,b", "say \"hi\"", "two\r\nlines", "lf\nonly", "", "ünïcode"]]
        let document = InvoiceCSV.document(rows: rows)
        #expect(document.hasPrefix("month,tenant_id,"))
        #expect(document.hasSuffix("\"lf\nonly\",,ünïcode\r\n"))
        #expect(try parseCSVWithPython(document) == [InvoiceCSV.header] + rows)
    }

    @Test("calendar days and months are UTC and reject impossible dates")
    func calendar() throws {
        #expect(try BillingCalendar.day("2024-02-29", field: "from") == utc("2024-02-29T00:00:00Z"))
        #expect(throws: ProblemError.self) { try BillingCalendar.day("2025-02-29", field: "from") }
        #expect(throws: ProblemError.self) { try BillingCalendar.day("2025-02-1", field: "from") }
        #expect(throws: ProblemError.self) { try BillingCalendar.day("٢٠٢٥-02-01", field: "from") }
        let december = try BillingCalendar.month("2025-12", field: "month")
        #expect(december.start == utc("2025-12-01T00:00:00Z") && december.end == utc("2026-01-01T00:00:00Z"))
        #expect(Money.isUnitPrice("0") && Money.isUnitPrice("12345678.1234") && !Money.isUnitPrice("1.") && !Money.isUnitPrice("+1"))
        #expect(Money.fourPlaces("1.86") == "1.8600" && Money.fourPlaces("3") == "3.0000")
    }
}
