import FindingsPolicy
import Foundation
import GantryRuntime
import GantryTesting
import Logging
import NIOHTTP1
import PostgresNIO
import Testing

typealias Harness = FindingsPolicyServiceTests.Harness

extension FindingsPolicyServiceTests.Harness {
    var rules: String { "\(base)/v1/tenants/\(tenantID)/subscriptions/\(subscriptionID)/rules" }
    var subscriptionPath: String { "\(base)/v1/tenants/\(tenantID)/subscriptions/\(subscriptionID)" }

    /// Sends `body` as JSON; with `actor`, as a Security Admin of the tenant whose token subject is `actor`
    /// (the audit actor), else with the default test token (subject `test-user`).
    func send(_ method: HTTPMethod, _ url: String, _ body: [String: Any]? = nil, actor: String? = nil,
              headers extra: [String: String] = [:]) async throws -> TestHTTP.Reply {
        var headers = ["Content-Type": "application/json"].merging(extra) { $1 }
        if let actor {
            headers["Authorization"] = "Bearer \(try await TestUserTokens.token([tenantID: [.securityAdmin]], subject: actor))"
        }
        return try await TestHTTP.send(method, url, body: try body.map { try JSONSerialization.data(withJSONObject: $0) },
                                       headers: headers)
    }

    /// Creates a rule and returns its ID.
    func createRule(_ criteria: [String: Any], scope: [String: Any] = ["kind": "subscription"],
                    justification: String = "accepted risk", expiresAt: Date? = nil, actor: String? = nil) async throws -> String {
        var body: [String: Any] = ["scope": scope, "criteria": criteria, "justification": justification]
        if let expiresAt { body["expiresAt"] = ISO8601DateFormatter().string(from: expiresAt) }
        let reply = try await send(.POST, rules, body, actor: actor)
        #expect(reply.status == 201, "\(reply.text)")
        return try #require(try reply.object()["id"] as? String)
    }

    func assessment(_ digest: String) async throws -> [String: Any] {
        let (code, body) = try await get("\(assessments)/\(digest)")
        #expect(code == 200)
        return body
    }

    func status(_ digest: String) async throws -> [String: Any] {
        try await assessment(digest)["status"] as? [String: Any] ?? [:]
    }

    static func finding(_ id: String, package: String, fixed: String?, severity: String, cvss: Double? = nil,
                        title: String? = nil) -> [String: Any] {
        var finding = Harness.finding(id, fixed: fixed, severity: severity)
        finding["packageName"] = package
        finding["sourceName"] = package
        finding["namespace"] = "alpine:v3.7"
        finding["ecosystem"] = "apk"
        if let cvss { finding["cvssV3Score"] = cvss; finding["cvssV3Vector"] = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H" }
        if let title { finding["title"] = title }
        return finding
    }

    /// Follows `nextLink` from `url` to the end; returns every page's `value` counts and all items.
    func allPages(_ url: String) async throws -> (pages: [Int], items: [[String: Any]]) {
        var next: String? = url
        var pages: [Int] = []
        var items: [[String: Any]] = []
        while let link = next {
            let reply = try await TestHTTP.send(.GET, link)
            #expect(reply.status == 200, "\(reply.text)")
            let page = try reply.object()
            let value = page["value"] as? [[String: Any]] ?? []
            pages.append(value.count)
            items += value
            next = page["nextLink"] as? String
            if pages.count > 50 { Issue.record("paging does not end"); break }
        }
        return (pages, items)
    }
}

/// Disable rules, re-evaluation, sub-assessments, secure score and tags through the HTTP API on a real database.
@Suite struct PolicyAPITests {
    @Test("rule CRUD re-evaluates stored assessments at once, alerts on a change to Unhealthy, and is audited")
    func ruleLifecycle() async throws {
        try await FindingsPolicyServiceTests.withService { h in
            let base = Harness.digest(100)
            let app = Harness.digest(101)
            let critical = Harness.finding("CVE-2019-14697", package: "musl", fixed: "1.1.18-r4", severity: "Critical", cvss: 9.8)
            let low = Harness.finding("CVE-2020-0001", package: "busybox", fixed: nil, severity: "Low", cvss: 3.1)
            #expect(try await h.submit(h.report(digest: base, findings: [critical, low])).status == 202)
            #expect(try await h.submit(h.report(digest: app, repository: "team/app", findings: [low])).status == 202)
            #expect(try await h.alerts().count == 2)

            // Low and unpatchable findings are accepted everywhere.
            let ruleID = try await h.createRule(["severities": ["Low"], "patchable": false],
                                                justification: "busybox has no fix; not reachable", actor: "alice@example.com")
            var status = try await h.status(app)
            #expect(status["code"] as? String == "NotApplicable")
            #expect(status["cause"] as? String == "Exempt")
            let partly = try await h.assessment(base)
            #expect((partly["status"] as? [String: Any])?["code"] as? String == "Unhealthy")
            #expect((partly["status"] as? [String: Any])?["severity"] as? String == "High")
            #expect((partly["findings"] as? [[String: Any]])?.map { $0["vulnerabilityId"] as? String } == ["CVE-2019-14697"])
            let exempt = try #require(partly["exemptFindings"] as? [[String: Any]])
            #expect(exempt.count == 1)
            #expect(exempt.first?["ruleId"] as? String == ruleID)
            #expect(exempt.first?["justification"] as? String == "busybox has no fix; not reachable")
            #expect((partly["recommendation"] as? [String: Any])?["remediations"] as? [Any] != nil)
            #expect(((partly["recommendation"] as? [String: Any])?["remediations"] as? [Any])?.count == 1)
            #expect(try await h.alerts().count == 2)

            // Narrowed to team/app and to another CVE: the app image's finding counts again, and alerts.
            let replaced = try await h.send(.PUT, "\(h.rules)/\(ruleID)", [
                "scope": ["kind": "repository", "registryId": h.registryID, "repository": "team/app"],
                "criteria": ["cves": ["CVE-2019-14697"]], "justification": "only the base image's musl",
            ], actor: "bob@example.com", headers: ["X-Gantry-Actor": "mallory@example.com"])
            #expect(replaced.status == 200, "\(replaced.text)")
            let rule = try replaced.object()
            #expect(rule["createdBy"] as? String == "alice@example.com")
            #expect(rule["updatedBy"] as? String == "bob@example.com")
            #expect(rule["state"] as? String == "active")
            status = try await h.status(app)
            #expect(status["code"] as? String == "Unhealthy")
            #expect(status["severity"] as? String == "Low")
            #expect((try await h.assessment(base)["exemptFindings"] as? [Any])?.isEmpty == true)
            let alerts = try await h.alerts()
            #expect(alerts.count == 3)
            #expect(alerts.last?["imageDigest"] as? String == app)
            #expect((alerts.last?["findings"] as? [[String: Any]])?.count == 1)

            let (listed, list) = try await h.get(h.rules)
            #expect(listed == 200)
            #expect((list["items"] as? [[String: Any]])?.map { $0["id"] as? String } == [ruleID])

            // The audit actor is the token's subject; a forged X-Gantry-Actor header changes nothing.
            let deleted = try await h.send(.DELETE, "\(h.rules)/\(ruleID)", headers: ["X-Gantry-Actor": "mallory@example.com"])
            #expect(deleted.status == 204)
            #expect(try await TestHTTP.send(.GET, "\(h.rules)/\(ruleID)").status == 404)
            #expect(try await h.status(app)["code"] as? String == "Unhealthy")

            let (_, audit) = try await h.get("\(h.subscriptionPath)/auditEvents")
            let events = try #require(audit["items"] as? [[String: Any]])
            #expect(events.map { $0["action"] as? String } == ["deleted", "replaced", "created"])
            #expect(events.map { $0["actor"] as? String } == ["test-user", "bob@example.com", "alice@example.com"])
            // Created: one image became exempt and one lost a finding; replaced: both changed; deleted: none changed.
            #expect(events.map { $0["affectedImages"] as? Int } == [0, 2, 2])
            #expect((events.last?["rule"] as? [String: Any])?["justification"] as? String == "busybox has no fix; not reachable")
            let (_, filtered) = try await h.get("\(h.subscriptionPath)/auditEvents?ruleId=\(UUID().uuidString)")
            #expect((filtered["items"] as? [Any])?.isEmpty == true)

            // Another tenant sees neither the rules nor the audit log.
            let foreign = "\(h.base)/v1/tenants/\(UUID().uuidString.lowercased())/subscriptions/\(h.subscriptionID)"
            let (foreignRules, _) = try await h.get("\(foreign)/rules")
            #expect(foreignRules == 404)
            let (foreignAudit, _) = try await h.get("\(foreign)/auditEvents")
            #expect(foreignAudit == 404)
        }
    }

    @Test("a report arriving under an existing rule is assessed with it; an image whose every finding is exempt raises no alert")
    func reportsUnderRules() async throws {
        try await FindingsPolicyServiceTests.withService { h in
            let digest = Harness.digest(110)
            _ = try await h.createRule(["packageNames": ["busybox"]],
                                       scope: ["kind": "image", "imageDigest": digest], justification: "test image")
            let reply = try await h.submit(h.report(digest: digest, findings: [
                Harness.finding("CVE-2020-0001", package: "busybox", fixed: nil, severity: "High")]))
            #expect(reply.status == 202)
            let body = try reply.object()
            #expect((body["status"] as? [String: Any])?["cause"] as? String == "Exempt")
            #expect(body["recommendation"] == nil)
            #expect(try await h.alerts().isEmpty)
            // The same finding on another digest is not in the rule's scope.
            _ = try await h.submit(h.report(digest: Harness.digest(111), findings: [
                Harness.finding("CVE-2020-0001", package: "busybox", fixed: nil, severity: "High")]))
            #expect(try await h.alerts().count == 1)
        }
    }

    @Test("bad rules are 400 problems and store nothing")
    func badRules() async throws {
        try await FindingsPolicyServiceTests.withService { h in
            let valid: [String: Any] = ["scope": ["kind": "subscription"], "criteria": ["severities": ["Low"]],
                                        "justification": "accepted"]
            func with(_ change: (inout [String: Any]) -> Void) -> [String: Any] {
                var body = valid
                change(&body)
                return body
            }
            let past = ISO8601DateFormatter().string(from: Date().addingTimeInterval(-3600))
            let cases: [(String, [String: Any], String)] = [
                ("empty justification", with { $0["justification"] = "" }, "justification"),
                ("inverted CVSS range", with { $0["criteria"] = ["cvssV3": ["min": 9.0, "max": 4.0]] }, "inverted"),
                ("expiry in the past", with { $0["expiresAt"] = past }, "not in the future"),
                ("unknown severity", with { $0["criteria"] = ["severities": ["Apocalyptic"]] }, "severities"),
                ("unknown scope kind", with { $0["scope"] = ["kind": "galaxy"] }, "kind"),
                ("no criterion", with { $0["criteria"] = [String: Any]() }, "at least one"),
                ("registry scope without registry", with { $0["scope"] = ["kind": "registry"] }, "registryId"),
                ("missing justification", with { $0.removeValue(forKey: "justification") }, "justification"),
            ]
            for (name, body, detail) in cases {
                let reply = try await h.send(.POST, h.rules, body)
                let problem = try expectProblem(reply, status: 400)
                #expect(problem.contains(detail), "\(name): \(problem)")
            }
            let notJSON = try await TestHTTP.send(.POST, h.rules, body: Data("{".utf8))
            try expectProblem(notJSON, status: 400)
            let unknown = try await h.send(.PUT, "\(h.rules)/\(UUID().uuidString)", valid)
            try expectProblem(unknown, status: 404)
            try expectProblem(try await h.send(.DELETE, "\(h.rules)/\(UUID().uuidString)"), status: 404)
            try expectProblem(try await h.send(.DELETE, "\(h.rules)/not-a-uuid"), status: 400)
            try expectProblem(try await TestHTTP.send(.GET, "\(h.subscriptionPath)/auditEvents?limit=0"), status: 400)
            #expect(try await h.count("SELECT count(*)::int FROM findings_policy.disable_rules") == 0)
            #expect(try await h.count("SELECT count(*)::int FROM findings_policy.rule_audit") == 0)

            // A refused replacement leaves the rule as it was.
            let ruleID = try await h.createRule(["severities": ["Low"]], justification: "original")
            let refused = try await h.send(.PUT, "\(h.rules)/\(ruleID)", with { $0["justification"] = " " })
            try expectProblem(refused, status: 400)
            let (_, rule) = try await h.get("\(h.rules)/\(ruleID)")
            #expect(rule["justification"] as? String == "original")
            #expect(try await h.count("SELECT count(*)::int FROM findings_policy.rule_audit") == 1)
        }
    }

    @Test("an expired rule is found by the periodic check: its images are re-evaluated and the expiry audited")
    func ruleExpiry() async throws {
        try await FindingsPolicyServiceTests.withService(extra: ["GANTRY_RULE_EXPIRY_INTERVAL_MS": "100"]) { h in
            let digest = Harness.digest(120)
            _ = try await h.submit(h.report(digest: digest, findings: [
                Harness.finding("CVE-2020-0001", package: "busybox", fixed: nil, severity: "Medium")]))
            let ruleID = try await h.createRule(["findingIds": ["CVE-2020-0001"]], justification: "until the rebuild",
                                                expiresAt: Date().addingTimeInterval(2.5))
            #expect(try await h.status(digest)["cause"] as? String == "Exempt")
            let alertsBefore = try await h.alerts().count
            let started = ContinuousClock.now
            _ = try await eventually("the rule to expire", timeout: .seconds(15)) {
                try await h.status(digest)["code"] as? String == "Unhealthy" ? true : nil
            }
            #expect(ContinuousClock.now - started < .seconds(10))
            let (_, rule) = try await h.get("\(h.rules)/\(ruleID)")
            #expect(rule["state"] as? String == "expired")
            let (_, audit) = try await h.get("\(h.subscriptionPath)/auditEvents?ruleId=\(ruleID)")
            let events = try #require(audit["items"] as? [[String: Any]])
            #expect(events.map { $0["action"] as? String } == ["expired", "created"])
            #expect(events.first?["actor"] as? String == "system")
            #expect(events.first?["affectedImages"] as? Int == 1)
            #expect(try await h.alerts().count == alertsBefore + 1)
        }
    }

    @Test("sub-assessments: Azure's shape, value + nextLink paging without gaps or repeats, exempt ones on request")
    func subAssessmentsPaging() async throws {
        try await FindingsPolicyServiceTests.withService { h in
            var expected: [String: String] = [:]
            for image in 0..<3 {
                let findings = (0..<5).map { index in
                    Harness.finding("CVE-2021-\(1000 + image * 10 + index)", package: "pkg\(index)",
                                    fixed: index.isMultiple(of: 2) ? "2.0" : nil, severity: index == 0 ? "Critical" : "Medium",
                                    cvss: index == 0 ? 9.8 : nil, title: "issue \(index)")
                }
                let digest = Harness.digest(130 + image)
                _ = try await h.submit(h.report(digest: digest, repository: "team/app\(image)", findings: findings))
                for finding in findings { expected[finding["vulnerabilityId"] as! String] = digest }
            }
            let all = try await h.allPages("\(h.subscriptionPath)/subAssessments?top=4")
            #expect(all.pages == [4, 4, 4, 3])
            let ids = all.items.compactMap { ($0["properties"] as? [String: Any])?["id"] as? String }
            #expect(Set(ids) == Set(expected.keys))
            #expect(ids.count == 15)
            #expect(Set(all.items.compactMap { $0["name"] as? String }).count == 15)

            let first = try #require(all.items.first { ($0["properties"] as? [String: Any])?["id"] as? String == "CVE-2021-1000" })
            #expect(first["type"] as? String == "Microsoft.Security/assessments/subAssessments")
            let properties = try #require(first["properties"] as? [String: Any])
            #expect(properties["displayName"] as? String == "issue 0")
            #expect(properties["category"] as? String == "alpine")
            let status = try #require(properties["status"] as? [String: Any])
            #expect(status["code"] as? String == "Unhealthy")
            #expect(status["severity"] as? String == "High")
            #expect((properties["remediation"] as? String)?.hasPrefix("Upgrade pkg0 from 1.1.18-r3 to 2.0 or later") == true)
            #expect((properties["impact"] as? String)?.contains("CVSS 3.x base score 9.8") == true)
            #expect((properties["resourceDetails"] as? [String: Any])?["id"] as? String
                    == "registry.example.com/team/app0@\(Harness.digest(130))")
            let data = try #require(properties["additionalData"] as? [String: Any])
            #expect(data["assessedResourceType"] as? String == "ContainerRegistryVulnerability")
            #expect(data["type"] as? String == "Vulnerability")
            #expect(((data["cvss"] as? [String: Any])?["3.0"] as? [String: Any])?["base"] as? Double == 9.8)
            #expect(data["patchable"] as? Bool == true)
            #expect((data["cve"] as? [[String: Any]])?.first?["link"] as? String == "https://nvd.nist.gov/vuln/detail/CVE-2021-1000")
            #expect(data["vendorReferences"] as? [Any] != nil)
            #expect(data["repositoryName"] as? String == "team/app0")
            #expect(data["imageDigest"] as? String == Harness.digest(130))
            #expect(data["registryHost"] as? String == "registry.example.com")
            #expect(data["severity"] as? String == "Critical")

            // The id is the sub-assessment's own URL path; the name survives a rescan.
            let id = try #require(first["id"] as? String)
            let one = try await TestHTTP.send(.GET, h.base + id)
            #expect(one.status == 200)
            #expect(try one.object()["name"] as? String == first["name"] as? String)
            _ = try await h.submit(h.report(digest: Harness.digest(130), repository: "team/app0", findings: [
                Harness.finding("CVE-2021-1000", package: "pkg0", fixed: "2.0", severity: "Critical", cvss: 9.8, title: "issue 0")]))
            #expect(try await TestHTTP.send(.GET, h.base + id).status == 200)

            let image = try await h.allPages("\(h.assessments)/\(Harness.digest(131))/subAssessments?top=2")
            #expect(image.pages == [2, 2, 1])
            #expect(Set(image.items.compactMap { ($0["properties"] as? [String: Any])?["additionalData"] as? [String: Any] }
                .compactMap { $0["imageDigest"] as? String }) == [Harness.digest(131)])

            // Exempt findings leave the listing unless asked for, then show as NotApplicable / Exempt.
            _ = try await h.createRule(["severities": ["Medium"]], justification: "medium is tolerated")
            let remaining = try await h.allPages("\(h.subscriptionPath)/subAssessments?top=100")
            #expect(remaining.pages == [3])
            let withExempt = try await h.allPages("\(h.subscriptionPath)/subAssessments?top=5&includeExempt=true")
            // Image 0 has one finding since its rescan: 1 + 5 + 5.
            #expect(withExempt.pages == [5, 5, 1])
            let exemptStatuses = withExempt.items.compactMap { ($0["properties"] as? [String: Any])?["status"] as? [String: Any] }
                .filter { $0["cause"] as? String == "Exempt" }
            #expect(exemptStatuses.count == 8)
            #expect(exemptStatuses.allSatisfy { $0["code"] as? String == "NotApplicable" })

            let other = try await h.allPages("\(h.subscriptionPath)/subAssessments?registryId=\(UUID().uuidString)")
            #expect(other.pages == [0])

            try expectProblem(try await TestHTTP.send(.GET, "\(h.subscriptionPath)/subAssessments?skipToken=garbage"), status: 400)
            try expectProblem(try await TestHTTP.send(.GET, "\(h.subscriptionPath)/subAssessments?top=0"), status: 400)
            try expectProblem(try await TestHTTP.send(.GET, "\(h.subscriptionPath)/subAssessments?top=ten"), status: 400)
            try expectProblem(try await TestHTTP.send(.GET,
                "\(h.assessments)/\(Harness.digest(130))/subAssessments/\(UUID().uuidString)"), status: 404)
        }
    }

    @Test("nextLink is absolute, on the host the client used")
    func nextLinkIsAbsolute() async throws {
        try await FindingsPolicyServiceTests.withService { h in
            _ = try await h.submit(h.report(digest: Harness.digest(140), findings: [
                Harness.finding("CVE-1", fixed: nil), Harness.finding("CVE-2", fixed: nil)]))
            let (_, page) = try await h.get("\(h.subscriptionPath)/subAssessments?top=1")
            let next = try #require(page["nextLink"] as? String)
            #expect(next.hasPrefix("\(h.subscriptionPath)/subAssessments?top=1&skipToken="), "\(next)")
            let proxied = try await TestHTTP.send(.GET, "\(h.subscriptionPath)/subAssessments?top=1", headers: [
                "X-Forwarded-Proto": "https", "X-Forwarded-Host": "gantry.example.com"])
            #expect((try proxied.object()["nextLink"] as? String)?.hasPrefix("https://gantry.example.com/v1/tenants/") == true)
        }
    }

    @Test("secure score per subscription and registry, disabled findings excluded, a history row per change")
    func secureScore() async throws {
        try await FindingsPolicyServiceTests.withService { h in
            let other = UUID().uuidString.lowercased()
            _ = try await h.submit(h.report(digest: Harness.digest(150), findings: []))
            _ = try await h.submit(h.report(digest: Harness.digest(151), findings: []))
            _ = try await h.submit(h.report(digest: Harness.digest(152), findings: [
                Harness.finding("CVE-A", fixed: "2", severity: "Critical")]))
            _ = try await h.submit(h.report(digest: Harness.digest(153), findings: [
                Harness.finding("CVE-B", fixed: nil, severity: "Low")]))
            _ = try await h.submit(h.report(digest: Harness.digest(154), findings: [], outcome: "notApplicable",
                                            reason: "WindowsImage"))
            var report = h.report(digest: Harness.digest(155), findings: [Harness.finding("CVE-C", fixed: nil, severity: "High")])
            report["registryId"] = other
            report["registryHost"] = "other.example.com"
            _ = try await h.submit(report)

            let (code, scores) = try await h.get("\(h.subscriptionPath)/secureScore")
            #expect(code == 200)
            let subscription = try #require(scores["subscription"] as? [String: Any])
            // 100 × 2 / (2 + 8 + 1 + 4)
            #expect(subscription["score"] as? Double == 13.33)
            #expect(subscription["healthyImages"] as? Int == 2)
            #expect(subscription["unhealthyImages"] as? Int == 3)
            #expect(subscription["notApplicableImages"] as? Int == 1)
            let registries = try #require(scores["registries"] as? [[String: Any]])
            #expect(registries.map { $0["registryHost"] as? String } == ["other.example.com", "registry.example.com"])
            #expect(registries.map { $0["score"] as? Double } == [0, 18.18])

            let history = "\(h.subscriptionPath)/secureScore/history"
            let before = (try await h.get(history).1["items"] as? [[String: Any]]) ?? []
            #expect(before.count == 6)
            // An unchanged rescan changes no score.
            _ = try await h.submit(h.report(digest: Harness.digest(150), findings: []))
            #expect((try await h.get(history).1["items"] as? [Any])?.count == 6)

            // Disabling the Critical finding takes its image out of the score: 100 × 2 / (2 + 1 + 4).
            _ = try await h.createRule(["findingIds": ["CVE-A"]], justification: "false positive")
            let after = try #require(try await h.get(history).1["items"] as? [[String: Any]])
            #expect(after.count == 7)
            #expect(after.first?["score"] as? Double == 28.57)
            #expect(after.first?["notApplicableImages"] as? Int == 2)
            let registryHistory = try #require(try await h.get("\(history)?registryId=\(h.registryID)").1["items"] as? [[String: Any]])
            // 100 × 2 / (2 + 1)
            #expect(registryHistory.first?["score"] as? Double == 66.67)
            #expect(registryHistory.first?["registryHost"] as? String == "registry.example.com")
            #expect(registryHistory.allSatisfy { $0["registryId"] as? String == h.registryID })
        }
    }

    @Test("tags: which point at a digest now and which did before, also when reports arrive out of order")
    func tags() async throws {
        try await FindingsPolicyServiceTests.withService { h in
            let old = Harness.digest(160)
            let new = Harness.digest(161)
            func report(_ digest: String, tag: String, at time: String) -> [String: Any] {
                var report = h.report(digest: digest, findings: [Harness.finding("CVE-1", fixed: "2")])
                report["tag"] = tag
                report["scannedAt"] = time
                return report
            }
            _ = try await h.submit(report(old, tag: "latest", at: "2026-01-01T00:00:00Z"))
            _ = try await h.submit(report(old, tag: "1.0", at: "2026-01-01T00:00:01Z"))
            _ = try await h.submit(report(new, tag: "latest", at: "2026-02-01T00:00:00Z"))
            // A late report of an earlier push of the old digest does not take "latest" back.
            _ = try await h.submit(report(old, tag: "latest", at: "2026-01-15T00:00:00Z"))

            let oldTags = try #require(try await h.assessment(old)["tags"] as? [String: Any])
            #expect((oldTags["current"] as? [[String: Any]])?.map { $0["tag"] as? String } == ["1.0"])
            let previous = try #require((oldTags["previous"] as? [[String: Any]])?.first)
            #expect(previous["tag"] as? String == "latest")
            #expect(previous["movedTo"] as? String == new)
            #expect(previous["movedAt"] as? String == "2026-02-01T00:00:00Z")
            #expect(previous["lastSeen"] as? String == "2026-01-15T00:00:00Z")
            let newTags = try #require(try await h.assessment(new)["tags"] as? [String: Any])
            #expect((newTags["current"] as? [[String: Any]])?.map { $0["tag"] as? String } == ["latest"])

            // The sub-assessments of the old digest carry its tags too, so the reused tag does not hide it.
            let (_, page) = try await h.get("\(h.assessments)/\(old)/subAssessments")
            let data = ((page["value"] as? [[String: Any]])?.first?["properties"] as? [String: Any])?["additionalData"] as? [String: Any]
            #expect(((data?["tags"] as? [String: Any])?["previous"] as? [[String: Any]])?.first?["tag"] as? String == "latest")

            // Deleting the image leaves no tag on it; the tag that moved keeps where it went.
            _ = try await h.submit(h.report(digest: old, findings: [], outcome: "notApplicable", reason: "ImageDeleted"))
            let deleted = try #require(try await h.assessment(old)["tags"] as? [String: Any])
            #expect((deleted["current"] as? [Any])?.isEmpty == true)
            #expect((deleted["previous"] as? [[String: Any]])?.map { $0["tag"] as? String } == ["1.0", "latest"])
            #expect((deleted["previous"] as? [[String: Any]])?.map { $0["movedTo"] as? String } == [nil, new])

            var bad = report(old, tag: "-bad tag", at: "2026-03-01T00:00:00Z")
            bad["messageId"] = "report:bad-tag"
            try expectProblem(try await h.submit(bad), status: 400)
        }
    }

    @Test("the recommendation and remediation exist for unhealthy images only")
    func recommendation() async throws {
        try await FindingsPolicyServiceTests.withService { h in
            let digest = Harness.digest(170)
            var wontFix = Harness.finding("CVE-2018-0001", package: "openssl", fixed: nil, severity: "Medium")
            wontFix["fixState"] = "wontFix"
            wontFix["statement"] = "Minor issue"
            _ = try await h.submit(h.report(digest: digest, findings: [
                Harness.finding("CVE-2019-14697", package: "musl", fixed: "1.1.18-r4", severity: "Critical"), wontFix]))
            let recommendation = try #require(try await h.assessment(digest)["recommendation"] as? [String: Any])
            #expect(recommendation["displayName"] as? String == "Container registry images should have vulnerability findings resolved")
            #expect(recommendation["severity"] as? String == "High")
            let remediations = try #require(recommendation["remediations"] as? [[String: Any]])
            #expect(remediations.map { $0["action"] as? String } == ["upgrade", "noFixAvailable"])
            #expect(remediations.map { $0["patchable"] as? Bool } == [true, false])
            #expect(remediations[0]["fixedVersion"] as? String == "1.1.18-r4")
            #expect(remediations[1]["statement"] as? String == "Minor issue")
            #expect((remediations[1]["text"] as? String)?.contains("base image") == true)
            // The remediation names the sub-assessment it belongs to.
            let name = try #require(remediations[0]["subAssessmentName"] as? String)
            #expect(try await TestHTTP.send(.GET, "\(h.assessments)/\(digest)/subAssessments/\(name)").status == 200)

            _ = try await h.submit(h.report(digest: digest, findings: []))
            #expect(try await h.assessment(digest)["recommendation"] == nil)
        }
    }

    @Test("Unknown severity is banded as GANTRY_UNKNOWN_SEVERITY_BAND says; a bad value stops the service")
    func unknownBand() async throws {
        try await FindingsPolicyServiceTests.withService(extra: ["GANTRY_UNKNOWN_SEVERITY_BAND": "High"]) { h in
            let digest = Harness.digest(180)
            _ = try await h.submit(h.report(digest: digest, findings: [Harness.finding("CVE-1", fixed: nil, severity: "Unknown")]))
            #expect(try await h.status(digest)["severity"] as? String == "High")
            let (_, scores) = try await h.get("\(h.subscriptionPath)/secureScore")
            #expect((scores["subscription"] as? [String: Any])?["unhealthyWeight"] as? Double == 4)
        }
        let configuration = try GantryConfiguration(service: .findingsPolicy, environment: [
            "GANTRY_SERVICE_KEY": String(repeating: "k", count: 40), "GANTRY_UNKNOWN_SEVERITY_BAND": "Critical"])
        await #expect(throws: ConfigurationError.self) {
            _ = try await buildFindingsPolicyApplication(configuration: configuration)
        }
    }

    @Test("assessments stored before this version get their findings rows from the periodic check")
    func storedAssessmentsAreEvaluated() async throws {
        try await FindingsPolicyServiceTests.withService(extra: ["GANTRY_RULE_EXPIRY_INTERVAL_MS": "100"]) { h in
            let digest = Harness.digest(190)
            _ = try await h.submit(h.report(digest: digest, findings: [Harness.finding("CVE-1", fixed: "2"),
                                                                       Harness.finding("CVE-2", fixed: nil)]))
            // As a row from before migration 0002 looks: no findings rows, not evaluated.
            _ = try await h.count("DELETE FROM findings_policy.findings")
            _ = try await h.count("UPDATE findings_policy.assessments SET evaluated = false, worst_severity = NULL")
            _ = try await eventually("the stored assessment to be evaluated", timeout: .seconds(10)) {
                try await h.count("SELECT count(*)::int FROM findings_policy.findings") == 2 ? true : nil
            }
            #expect(try await h.count("SELECT count(*)::int FROM findings_policy.assessments WHERE evaluated") == 1)
            let (_, page) = try await h.get("\(h.assessments)/\(digest)/subAssessments")
            #expect((page["value"] as? [Any])?.count == 2)
            // Evaluating a stored row is not a change to Unhealthy: no second alert.
            #expect(try await h.alerts().count == 1)
        }
    }
}
