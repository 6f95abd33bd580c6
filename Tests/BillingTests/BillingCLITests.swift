import Foundation
import GantryTesting
import NIOHTTP1
import Testing

/// `gantry billing usage|invoice` as an operator runs it, against a billing service on a real database.
@Suite("gantry billing")
struct BillingCLITests {
    static let gantry = Corpus.repositoryRoot.appendingPathComponent(".build/debug/gantry").path

    /// Runs `gantry` with the harness's service URLs and key; returns status, standard output and standard error.
    static func gantry(_ arguments: [String], env: TestEnvironment) async throws -> (Int32, String, String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gantry-cli-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let out = directory.appendingPathComponent("out"), err = directory.appendingPathComponent("err")
        FileManager.default.createFile(atPath: out.path, contents: nil)
        FileManager.default.createFile(atPath: err.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: gantry)
        process.arguments = ["billing"] + arguments
        process.environment = env.environment.merging(["PATH": "/usr/bin:/bin"]) { $1 }
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        try process.run()
        while process.isRunning { try await Task.sleep(for: .milliseconds(20)) }
        return (process.terminationStatus, try String(contentsOf: out, encoding: .utf8), try String(contentsOf: err, encoding: .utf8))
    }

    @Test("usage prints periods per registry and totals; invoice prints the JSON or byte-for-byte the CSV billing serves")
    func usageAndInvoice() async throws {
        try await BillingHarness.run { h in
            let scenario = UsageAndInvoiceTests.Scenario(account: try await h.account())
            try await scenario.record(on: h)
            let who = ["--tenant", scenario.account.tenant, "--subscription", scenario.account.subscription]

            let (status, table, errors) = try await Self.gantry(["usage"] + who, env: h.env)
            #expect(status == 0, "\(errors)")
            let rows = table.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ") }
            #expect(rows == [
                "PERIOD REGISTRY SCANS BILLABLE TRIAL AMOUNT",
                "2025-01 registry-b.example:5000 1 1 1 0.0000",
                "2025-02 registry-a.example 4 2 1 0.2900",
                "2025-02 registry-b.example:5000 1 1 1 0.0000",
                "2025-03 registry-a.example 1 1 0 0.2900",
                "total 7 5 3 0.5800 USD",
            ], "\(table)")

            let days = try await Self.gantry(["usage", "--by", "day", "--from", "2025-02-01", "--to", "2025-02-01", "--json"] + who,
                                             env: h.env)
            #expect(days.0 == 0, "\(days.2)")
            let usage = try #require(try JSONSerialization.jsonObject(with: Data(days.1.utf8)) as? [String: Any])
            #expect(usage["granularity"] as? String == "day" && usage["billableImages"] as? Int == 2)

            let json = try await Self.gantry(["invoice", "--month", "2025-02"] + who, env: h.env)
            #expect(json.0 == 0, "\(json.2)")
            let invoice = try #require(try JSONSerialization.jsonObject(with: Data(json.1.utf8)) as? [String: Any])
            #expect(invoice["total"] as? String == "0.2900" && (invoice["lines"] as? [Any])?.count == 3)

            let csv = try await Self.gantry(["invoice", "--month", "2025-02", "--format", "csv"] + who, env: h.env)
            #expect(csv.0 == 0, "\(csv.2)")
            let served = try await TestHTTP.send(.GET, "\(h.base)\(scenario.path("invoices/2025-02?format=csv"))")
            #expect(csv.1 == served.text)
            #expect(try parseCSVWithPython(csv.1).count == 4)

            let bad = try await Self.gantry(["invoice", "--month", "2025-13"] + who, env: h.env)
            #expect(bad.0 != 0)
            #expect(bad.2.contains("month '2025-13' is not a calendar date"), "\(bad.2)")
            let badID = try await Self.gantry(["usage", "--tenant", "nope", "--subscription", scenario.account.subscription],
                                              env: h.env)
            #expect(badID.0 != 0 && badID.2.contains("--tenant 'nope' is not a UUID"), "\(badID.2)")
        }
    }
}
