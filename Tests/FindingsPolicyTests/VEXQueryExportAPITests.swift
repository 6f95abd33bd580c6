import FindingsPolicy
import Foundation
import GantryRuntime
import GantryTesting
import NIOHTTP1
import Testing

/// VEX documents, the query endpoint and the exports through the HTTP API on a real database.
@Suite struct VEXQueryExportAPITests {
    static func openVEX(digest: String) -> [String: Any] {
        [
            "@context": "https://openvex.dev/ns/v0.2.0",
            "@id": "https://example.com/vex/alpine-musl",
            "author": "Example Security Team",
            "timestamp": "2026-11-29T10:00:00Z",
            "version": 1,
            "statements": [[
                "vulnerability": ["name": "CVE-2019-14697"],
                "products": [["@id": digest]],
                "status": "not_affected",
                "justification": "vulnerable_code_not_in_execute_path",
                "impact_statement": "musl's x87 path is not reachable on x86_64",
            ]],
        ]
    }

    @Test("attaching and detaching VEX re-evaluates at once, leaves the score, is audited; bad documents store nothing")
    func vexLifecycle() async throws {
        try await FindingsPolicyServiceTests.withService { h in
            let digest = Harness.digest(300)
            let other = Harness.digest(301)
            let musl = Harness.finding("CVE-2019-14697", package: "musl", fixed: "1.1.18-r4", severity: "Critical", cvss: 9.8)
            #expect(try await h.submit(h.report(digest: digest, findings: [musl])).status == 202)
            #expect(try await h.submit(h.report(digest: other, findings: [musl])).status == 202)
            #expect(try await h.status(digest)["code"] as? String == "Unhealthy")
            let vexURL = "\(h.subscriptionPath)/vexDocuments"

            let attached = try await h.send(.POST, vexURL, Self.openVEX(digest: digest), actor: "alice@example.com")
            #expect(attached.status == 201, "\(attached.text)")
            let document = try attached.object()
            let id = try #require(document["id"] as? String)
            #expect(document["format"] as? String == "openvex")
            #expect(document["affectedImages"] as? Int == 1)
            // Only the image the statement names: NotApplicable / Exempt with the document as the justification.
            let status = try await h.status(digest)
            #expect(status["code"] as? String == "NotApplicable" && status["cause"] as? String == "Exempt")
            #expect(try await h.status(other)["code"] as? String == "Unhealthy")
            let exempt = try #require((try await h.assessment(digest)["exemptFindings"] as? [[String: Any]])?.first)
            #expect(exempt["vexDocumentId"] as? String == id && exempt["ruleId"] == nil)
            #expect(exempt["justification"] as? String
                == "VEX https://example.com/vex/alpine-musl: not_affected (vulnerable_code_not_in_execute_path): musl's x87 path is not reachable on x86_64")
            let (_, page) = try await h.get("\(h.assessments)/\(digest)/subAssessments?includeExempt=true")
            let properties = try #require((page["value"] as? [[String: Any]])?.first?["properties"] as? [String: Any])
            #expect((properties["status"] as? [String: Any])?["cause"] as? String == "Exempt")
            #expect((properties["additionalData"] as? [String: Any])?["exemptByVexDocumentId"] as? String == id)
            let (_, hidden) = try await h.get("\(h.assessments)/\(digest)/subAssessments")
            #expect((hidden["value"] as? [Any])?.isEmpty == true)
            // The score counts the other image only: 100 × 0 / (0 + 8).
            let (_, score) = try await h.get("\(h.subscriptionPath)/secureScore")
            let subscription = try #require(score["subscription"] as? [String: Any])
            #expect(subscription["unhealthyImages"] as? Int == 1 && subscription["notApplicableImages"] as? Int == 1)
            // A report of the same image later keeps the suppression, and raises no alert for it.
            let alertsBefore = try await h.alerts().count
            #expect(try await h.submit(h.report(digest: digest, findings: [musl])).status == 202)
            #expect(try await h.status(digest)["cause"] as? String == "Exempt")
            #expect(try await h.alerts().count == alertsBefore)

            let (listed, list) = try await h.get(vexURL)
            #expect(listed == 200 && (list["items"] as? [[String: Any]])?.count == 1)
            let (got, one) = try await h.get("\(vexURL)/\(id)")
            #expect(got == 200 && (one["statements"] as? [[String: Any]])?.first?["status"] as? String == "not_affected")

            let detached = try await h.send(.DELETE, "\(vexURL)/\(id)", actor: "bob@example.com")
            #expect(detached.status == 204, "\(detached.text)")
            #expect(try await h.status(digest)["code"] as? String == "Unhealthy")
            #expect(try await h.send(.DELETE, "\(vexURL)/\(id)").status == 404)
            #expect(try await h.count("""
                SELECT count(*)::int FROM findings_policy.vex_audit WHERE vex_document_id = '\(id)'
                  AND ((action = 'attached' AND actor = 'alice@example.com' AND affected_images = 1)
                    OR (action = 'detached' AND actor = 'bob@example.com' AND affected_images = 1))
                """) == 2)

            // Bad documents: a problem naming what is wrong, nothing stored.
            var bad = Self.openVEX(digest: digest)
            bad["statements"] = [["vulnerability": ["name": "CVE-2019-14697"], "products": [["@id": digest]], "status": "not_affected"]]
            let refused = try await h.send(.POST, vexURL, bad)
            #expect(refused.status == 400 && refused.header("Content-Type")?.hasPrefix("application/problem+json") == true)
            #expect(refused.text.contains("needs a justification or an impact_statement"))
            let garbage = try await TestHTTP.send(.POST, vexURL, body: Data("{\"@context\": ".utf8))
            #expect(garbage.status == 400 && garbage.header("Content-Type")?.hasPrefix("application/problem+json") == true)
            #expect(try await h.count("SELECT count(*)::int FROM findings_policy.vex_documents") == 0)
            #expect(try await h.count("SELECT count(*)::int FROM findings_policy.vex_audit WHERE action = 'attached'") == 1)
        }
    }

    @Test(.enabled(if: Corpus.isAvailable, "the test corpus is missing"))
    func redHatCSAFThroughTheAPI() async throws {
        try await FindingsPolicyServiceTests.withService { h in
            let digest = Harness.digest(310)
            var samba = Harness.finding("CVE-2023-4154", package: "samba", fixed: nil, severity: "Medium")
            samba["purl"] = "pkg:rpm/rhel/samba@3.6.23-53.el6_10?arch=x86_64&distro=rhel-6"
            samba["installedVersion"] = "3.6.23-53.el6_10"
            samba["namespace"] = "rhel:6"
            #expect(try await h.submit(h.report(digest: digest, repository: "rhel/samba", findings: [samba])).status == 202)
            let data = try Data(contentsOf: try Corpus.root().appendingPathComponent("3-vuln-feeds/redhat/claircore-cve-2023-4154.vex.json"))
            let reply = try await TestHTTP.send(.POST, "\(h.subscriptionPath)/vexDocuments", body: data)
            #expect(reply.status == 201, "\(reply.text)")
            #expect(try reply.object()["format"] as? String == "csaf")
            #expect(try await h.status(digest)["cause"] as? String == "Exempt")
        }
    }

    func query(_ h: Harness, _ text: String) async throws -> TestHTTP.Reply {
        try await h.send(.POST, "\(h.subscriptionPath)/query", ["query": text])
    }

    @Test("the query endpoint runs over the subscription's findings and assessments; errors point at the column")
    func queryEndpoint() async throws {
        try await FindingsPolicyServiceTests.withService { h in
            let first = Harness.digest(320)
            let second = Harness.digest(321)
            _ = try await h.submit(h.report(digest: first, findings: [
                Harness.finding("CVE-2019-14697", package: "musl", fixed: "1.1.18-r4", severity: "Critical", cvss: 9.8),
                Harness.finding("CVE-2021-3711", package: "libssl1.1", fixed: "1.1.1l-r0", severity: "High", cvss: 9.8),
            ]))
            _ = try await h.submit(h.report(digest: second, findings: [
                Harness.finding("CVE-2022-0778", package: "libssl1.1", fixed: nil, severity: "High", cvss: 7.5),
            ]))
            _ = try await h.createRule(["findingIds": ["CVE-2022-0778"]])
            let reply = try await query(h, #"""
                Findings | where severity == "High" and cvss > 7 or not(patchable) | where package contains "SSL"
                | summarize count() by severity, exempt | order by exempt asc
                """#)
            #expect(reply.status == 200, "\(reply.text)")
            let result = try reply.object()
            #expect(result["columns"] as? [String] == ["severity", "exempt", "count_"])
            let rows = try #require(result["rows"] as? [[Any]])
            #expect(rows.count == 2)
            #expect(rows.first?[0] as? String == "High" && rows.first?[1] as? Bool == false && rows.first?[2] as? Double == 1)
            #expect(result["truncated"] as? Bool == false)

            let images = try await query(h, #"Assessments | where status == "Unhealthy" | project digest, findings, severity"#)
            let imageRows = try #require(try images.object()["rows"] as? [[Any]])
            #expect(imageRows.count == 1 && imageRows.first?[0] as? String == first && imageRows.first?[1] as? Double == 2)

            let wrong = try await query(h, #"Findings | where sevrity == "High""#)
            #expect(wrong.status == 400 && wrong.header("Content-Type")?.hasPrefix("application/problem+json") == true)
            #expect(try wrong.object()["detail"] as? String
                == "line 1, column 18: unknown column 'sevrity' (columns: \(QueryTablesColumns.findings))")
            let syntax = try await query(h, "Findings | where cvss >")
            #expect(syntax.status == 400)
            #expect((try syntax.object()["detail"] as? String)?.hasPrefix("line 1, column 24: expected a value") == true)
        }
    }

    @Test("exports carry the findings, exemptions and tags in SARIF, CycloneDX and CSV")
    func exports() async throws {
        try await FindingsPolicyServiceTests.withService { h in
            let digest = Harness.digest(330)
            var report = h.report(digest: digest, findings: [
                Harness.finding("CVE-2019-14697", package: "musl", fixed: "1.1.18-r4", severity: "Critical", cvss: 9.8),
                Harness.finding("CVE-2022-0778", package: "libssl1.1", fixed: nil, severity: "High", cvss: 7.5,
                                title: "openssl: infinite loop, \"BN_mod_sqrt\""),
            ])
            report["tag"] = "3.7"
            _ = try await h.submit(report)
            _ = try await h.createRule(["findingIds": ["CVE-2022-0778"]], justification: "not reachable, see \"TICKET-1\"")

            let sarif = try await TestHTTP.send(.GET, "\(h.subscriptionPath)/exports/sarif?includeExempt=true&imageDigest=\(digest)")
            #expect(sarif.status == 200 && sarif.header("Content-Type")?.hasPrefix("application/sarif+json") == true, "\(sarif.text)")
            let log = try sarif.object()
            let results = try #require(((log["runs"] as? [[String: Any]])?.first?["results"] as? [[String: Any]]))
            #expect(results.map { $0["ruleId"] as? String } == ["CVE-2019-14697", "CVE-2022-0778"])
            #expect(results[1]["suppressions"] != nil && results[0]["suppressions"] == nil)
            #expect((results[0]["properties"] as? [String: Any])?["currentTags"] as? [String] == ["3.7"])
            let counted = try await TestHTTP.send(.GET, "\(h.subscriptionPath)/exports/sarif")
            #expect(((try counted.object()["runs"] as? [[String: Any]])?.first?["results"] as? [Any])?.count == 1)

            let bom = try await TestHTTP.send(.GET, "\(h.subscriptionPath)/exports/cyclonedx")
            #expect(bom.status == 200 && bom.header("Content-Type")?.hasPrefix("application/vnd.cyclonedx+json") == true)
            let vulnerabilities = try #require(try bom.object()["vulnerabilities"] as? [[String: Any]])
            #expect(vulnerabilities.map { ($0["analysis"] as? [String: Any])?["state"] as? String } == ["in_triage", "exploitable"])

            let csv = try await TestHTTP.send(.GET, "\(h.subscriptionPath)/exports/csv?includeExempt=true")
            #expect(csv.status == 200 && csv.header("Content-Type")?.hasPrefix("text/csv") == true)
            let records = csv.text.components(separatedBy: "\r\n")
            #expect(records.count == 4)
            #expect(records[2].contains(#"NotApplicable,rule,"not reachable, see ""TICKET-1""","openssl: infinite loop, ""BN_mod_sqrt""""#),
                    "\(records[2])")
            #expect(records[1].contains(",3.7,,CVE-2019-14697,"))

            let badDigest = try await TestHTTP.send(.GET, "\(h.subscriptionPath)/exports/csv?imageDigest=latest")
            #expect(badDigest.status == 400 && badDigest.header("Content-Type")?.hasPrefix("application/problem+json") == true)
        }
    }
}

extension VEXQueryExportAPITests {
    @Test("an old vulnerable digest behind a reused tag stays visible in queries and exports, with the tag as previous")
    func reusedTag() async throws {
        try await FindingsPolicyServiceTests.withService { h in
            let old = Harness.digest(340)
            let new = Harness.digest(341)
            var first = h.report(digest: old, findings: [Harness.finding("CVE-2019-14697", package: "musl", fixed: "1.1.18-r4",
                                                                         severity: "Critical", cvss: 9.8)])
            first["tag"] = "3.7"
            first["scannedAt"] = "2026-01-01T00:00:00Z"
            _ = try await h.submit(first)
            var second = h.report(digest: new, findings: [])
            second["tag"] = "3.7"
            second["scannedAt"] = "2026-02-01T00:00:00Z"
            _ = try await h.submit(second)

            let reply = try await query(h, #"Assessments | where previousTags contains "3.7" | project digest, status, tags, previousTags"#)
            let rows = try #require(try reply.object()["rows"] as? [[Any]])
            #expect(rows.count == 1)
            #expect(rows.first?[0] as? String == old && rows.first?[1] as? String == "Unhealthy")
            #expect(rows.first?[2] as? String == "" && rows.first?[3] as? String == "3.7")
            let current = try await query(h, #"Assessments | where tags == "3.7" | project digest, status"#)
            #expect((try current.object()["rows"] as? [[Any]])?.first?[0] as? String == new)

            let csv = try await TestHTTP.send(.GET, "\(h.subscriptionPath)/exports/csv?imageDigest=\(old)")
            let records = csv.text.components(separatedBy: "\r\n")
            #expect(records.count == 3 && records[1].contains("\(old),,3.7,CVE-2019-14697,"), "\(csv.text)")
            let bom = try await TestHTTP.send(.GET, "\(h.subscriptionPath)/exports/cyclonedx?imageDigest=\(old)")
            let image = try #require((try bom.object()["components"] as? [[String: Any]])?.first)
            let properties = (image["properties"] as? [[String: Any]] ?? []).map { "\($0["name"] ?? "")=\($0["value"] ?? "")" }
            #expect(properties.contains("gantry:previousTag=3.7") && !properties.contains("gantry:tag=3.7"))
        }
    }

    @Test("bad query and VEX requests are problems")
    func badRequests() async throws {
        try await FindingsPolicyServiceTests.withService { h in
            let empty = try await query(h, "")
            let detail = try empty.object()["detail"] as? String
            #expect(empty.status == 400 && detail?.hasPrefix("line 1, column 1: expected a table name") == true)
            let notJSON = try await TestHTTP.send(.POST, "\(h.subscriptionPath)/query", body: Data("query".utf8))
            #expect(notJSON.status == 400)
            let tooLong = try await query(h, "Findings" + String(repeating: " ", count: 10_001))
            #expect(tooLong.status == 400 && tooLong.text.contains("longer than 10000"))
            #expect(try await TestHTTP.send(.GET, "\(h.subscriptionPath)/vexDocuments/\(UUID().uuidString)").status == 404)
            #expect(try await TestHTTP.send(.GET, "\(h.subscriptionPath)/vexDocuments/nope").status == 400)
            #expect(try await h.send(.DELETE, "\(h.subscriptionPath)/vexDocuments/\(UUID().uuidString)").status == 404)
            #expect(try await h.count("SELECT count(*)::int FROM findings_policy.vex_audit") == 0)
        }
    }
}

/// The Findings table's columns as the unknown-column problem lists them.
enum QueryTablesColumns {
    static let findings = "id, package, version, fixedVersion, severity, band, cvss, cvss4, patchable, exempt, exemptBy, justification, "
        + "category, title, source, knownExploited, epss, published, repository, digest, registry, registryId, tags, previousTags, timeGenerated"
}
