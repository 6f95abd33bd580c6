import FindingsPolicy
import Foundation
import GantryRuntime
import GantryTesting
import Logging
import NIOHTTP1
import PostgresNIO
import Testing

/// The findings-policy service in-process on a real PostgreSQL, driven over real HTTP.
@Suite struct FindingsPolicyServiceTests {
    static let logger = Logger(label: "findings-policy-test")

    /// One running service, a tenant and subscription to report into, and helpers.
    struct Harness: Sendable {
        let env: TestEnvironment
        let token: String
        let tenantID: String
        let subscriptionID: String
        let registryID = UUID().uuidString.lowercased()

        /// - Parameter subscription: registered in the discovery beside the service (its public routes check it).
        init(env: TestEnvironment, token: String, subscription: TestSubscription) {
            self.env = env
            self.token = token
            tenantID = subscription.tenantID
            subscriptionID = subscription.subscriptionID
        }

        /// A harness for another tenant with its own subscription, registered in the same discovery.
        func otherTenant() async throws -> Harness {
            Harness(env: env, token: token, subscription: try await TestSubscription.create(in: env))
        }

        var base: String { env.url(.findingsPolicy).absoluteString }
        var assessments: String { "\(base)/v1/tenants/\(tenantID)/subscriptions/\(subscriptionID)/assessments" }

        static func digest(_ seed: Int) -> String {
            "sha256:" + Checksum.sha256Hex(Array("image-\(seed)".utf8))
        }

        static func finding(_ id: String, fixed: String?, severity: String = "High") -> [String: Any] {
            var finding: [String: Any] = [
                "vulnerabilityId": id, "cves": [id], "packageName": "musl", "sourceName": "musl",
                "installedVersion": "1.1.18-r3", "severity": severity, "patchable": fixed != nil,
                "source": "alpine-secdb:v3.7/main",
            ]
            if let fixed { finding["fixedVersion"] = fixed }
            return finding
        }

        func report(messageID: String = "report:\(UUID().uuidString.lowercased())", digest: String,
                    repository: String = "library/alpine", findings: [[String: Any]], outcome: String = "assessed",
                    reason: String? = nil, notes: [String] = []) -> [String: Any] {
            var report: [String: Any] = [
                "messageId": messageID, "scanId": UUID().uuidString.lowercased(), "tenantId": tenantID,
                "subscriptionId": subscriptionID, "registryId": registryID, "registryHost": "registry.example.com",
                "repository": repository, "digest": digest, "scannedAt": "2026-11-29T09:00:00Z", "outcome": outcome,
                "operatingSystem": ["id": "alpine", "versionId": "3.7.3", "prettyName": "Alpine Linux v3.7"],
                "findings": findings, "notes": notes,
            ]
            if let reason { report["notApplicableReason"] = reason }
            return report
        }

        func submit(_ report: [String: Any]) async throws -> TestHTTP.Reply {
            try await TestHTTP.json(.POST, "\(base)/internal/v1/reports", report, headers: [
                "Content-Type": "application/json", "Authorization": "Bearer \(token)"])
        }

        func submitRaw(_ body: String) async throws -> TestHTTP.Reply {
            try await TestHTTP.send(.POST, "\(base)/internal/v1/reports", body: Data(body.utf8), headers: [
                "Content-Type": "application/json", "Authorization": "Bearer \(token)"])
        }

        func get(_ url: String) async throws -> (Int, [String: Any]) {
            let reply = try await TestHTTP.send(.GET, url)
            return (reply.status, (try? reply.json() as? [String: Any]) ?? [:])
        }

        /// The alert payloads queued for notification, oldest first.
        func alerts() async throws -> [[String: Any]] {
            try await env.database.withClient { client in
                let rows = try await client.query("""
                    SELECT payload FROM findings_policy.outbox
                    WHERE destination = 'notification' AND path = '/internal/v1/alerts' ORDER BY id
                    """, logger: FindingsPolicyServiceTests.logger)
                var payloads: [String] = []
                for try await payload in rows.decode(String.self) { payloads.append(payload) }
                return payloads
            }.map { (try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) ?? [:] }
        }

        /// Runs `sql` with system access (every tenant's rows; row-level security) and returns its first integer.
        func count(_ sql: String) async throws -> Int {
            try await env.database.withClient { client in
                try await client.withSystemAccess(logger: FindingsPolicyServiceTests.logger) { connection in
                    let rows = try await connection.query(PostgresQuery(unsafeSQL: sql), logger: FindingsPolicyServiceTests.logger)
                    for try await value in rows.decode(Int.self) { return value }
                    return 0
                }
            }
        }
    }

    /// - Parameter extra: more `GANTRY_*` variables for the service.
    static func withService(extra: [String: String] = [:], _ body: @Sendable (Harness) async throws -> Void) async throws {
        let database = try await TestDatabase.create()
        do {
            let env = try TestEnvironment(database: database, extra: extra)
            let app = try await buildFindingsPolicyApplication(configuration: env.configuration(.findingsPolicy))
            let token = try await env.tokens().token(for: "findings-policy")
            // Public routes ask discovery whether the path's subscription is the tenant's: run the real one beside.
            try await withRunningServices([try await env.discoveryApplication(), app],
                                          readyPorts: [env.discoveryPort, env.ports[.findingsPolicy]!]) {
                try await body(Harness(env: env, token: token, subscription: try await TestSubscription.create(in: env)))
            }
            await database.drop()
        } catch {
            await database.drop()
            throw error
        }
    }

    @Test func reportWithFindingsIsUnhealthy() async throws {
        try await Self.withService { h in
            let digest = Harness.digest(1)
            let reply = try await h.submit(h.report(digest: digest, findings: [
                Harness.finding("CVE-2019-14697", fixed: "1.1.18-r4", severity: "Critical"),
                Harness.finding("CVE-2020-0001", fixed: nil, severity: "Low"),
            ]))
            #expect(reply.status == 202)
            let body = try #require(try reply.json() as? [String: Any])
            let status = try #require(body["status"] as? [String: Any])
            #expect(status["code"] as? String == "Unhealthy")
            #expect((status["description"] as? String)?.contains("2 vulnerability findings (1 patchable)") == true)

            let (code, stored) = try await h.get("\(h.assessments)/\(digest)")
            #expect(code == 200)
            #expect(stored["imageDigest"] as? String == digest)
            #expect(stored["repositoryName"] as? String == "library/alpine")
            #expect(stored["registryId"] as? String == h.registryID)
            #expect((stored["status"] as? [String: Any])?["code"] as? String == "Unhealthy")
            #expect((stored["operatingSystem"] as? [String: Any])?["versionId"] as? String == "3.7.3")
            let findings = try #require(stored["findings"] as? [[String: Any]])
            #expect(findings.map { $0["vulnerabilityId"] as? String } == ["CVE-2019-14697", "CVE-2020-0001"])
            #expect(findings.map { $0["patchable"] as? Bool } == [true, false])
            #expect(findings.map { $0["fixedVersion"] as? String } == ["1.1.18-r4", nil])
            #expect(findings.map { $0["severity"] as? String } == ["Critical", "Low"])
        }
    }

    @Test func emptyFindingsIsHealthy() async throws {
        try await Self.withService { h in
            let digest = Harness.digest(2)
            #expect(try await h.submit(h.report(digest: digest, findings: [])).status == 202)
            let (code, stored) = try await h.get("\(h.assessments)/\(digest)")
            #expect(code == 200)
            #expect((stored["status"] as? [String: Any])?["code"] as? String == "Healthy")
            #expect((stored["findings"] as? [Any])?.isEmpty == true)
            #expect(try await h.alerts().isEmpty)
        }
    }

    @Test func notApplicableCarriesItsCause() async throws {
        try await Self.withService { h in
            let digest = Harness.digest(3)
            let reply = try await h.submit(h.report(digest: digest, findings: [], outcome: "notApplicable",
                                                    reason: "WindowsImage", notes: ["the image is a Windows image"]))
            #expect(reply.status == 202)
            let (_, stored) = try await h.get("\(h.assessments)/\(digest)")
            let status = try #require(stored["status"] as? [String: Any])
            #expect(status["code"] as? String == "NotApplicable")
            #expect(status["cause"] as? String == "WindowsImage")
            #expect(status["description"] as? String == "the image is a Windows image")
            #expect(stored["notes"] as? [String] == ["the image is a Windows image"])
            #expect(try await h.alerts().isEmpty)
        }
    }

    @Test func listFiltersAndGetReturns404ForUnknownDigest() async throws {
        try await Self.withService { h in
            _ = try await h.submit(h.report(digest: Harness.digest(10), findings: [Harness.finding("CVE-1", fixed: "2")]))
            _ = try await h.submit(h.report(digest: Harness.digest(11), findings: []))
            _ = try await h.submit(h.report(digest: Harness.digest(12), findings: [], outcome: "notApplicable",
                                            reason: "NoPackageDatabase"))

            let (code, list) = try await h.get(h.assessments)
            #expect(code == 200)
            let items = try #require(list["items"] as? [[String: Any]])
            #expect(Set(items.compactMap { $0["imageDigest"] as? String })
                    == [Harness.digest(10), Harness.digest(11), Harness.digest(12)])

            let (_, unhealthy) = try await h.get("\(h.assessments)?status=Unhealthy")
            #expect((unhealthy["items"] as? [[String: Any]])?.compactMap { $0["imageDigest"] as? String } == [Harness.digest(10)])

            // Another subscription of the same tenant sees nothing.
            let sibling = try await TestSubscription.create(in: h.env, tenantID: h.tenantID)
            let (_, other) = try await h.get("\(h.base)\(sibling.path)/assessments")
            #expect((other["items"] as? [Any])?.isEmpty == true)
            // An unknown subscription, and this one asked for under another tenant, are 404 (discovery's word).
            let unknownSubscription = try await TestHTTP.send(.GET,
                "\(h.base)/v1/tenants/\(h.tenantID)/subscriptions/\(UUID().uuidString.lowercased())/assessments")
            #expect(try expectProblem(unknownSubscription, status: 404).contains("not found in tenant \(h.tenantID)"))
            let foreign = try await TestHTTP.send(.GET,
                "\(h.base)/v1/tenants/\(UUID().uuidString.lowercased())/subscriptions/\(h.subscriptionID)/assessments")
            #expect(try expectProblem(foreign, status: 404).contains("subscription \(h.subscriptionID) not found"))

            let unknown = try await TestHTTP.send(.GET, "\(h.assessments)/\(Harness.digest(99))")
            #expect(unknown.status == 404)
            #expect(unknown.header("Content-Type") == "application/problem+json")
            #expect(unknown.text.contains(Harness.digest(99)))

            let malformed = try await TestHTTP.send(.GET, "\(h.assessments)/sha256:nothex")
            #expect(malformed.status == 400)
            let badTenant = try await TestHTTP.send(.GET, "\(h.base)/v1/tenants/not-a-uuid/subscriptions/\(h.subscriptionID)/assessments")
            #expect(badTenant.status == 400)
            #expect(badTenant.header("Content-Type") == "application/problem+json")
        }
    }

    @Test func sameMessageIDHasOneEffect() async throws {
        try await Self.withService { h in
            let digest = Harness.digest(20)
            let first = h.report(messageID: "report:dup", digest: digest, findings: [Harness.finding("CVE-1", fixed: "2")])
            #expect(try await h.submit(first).status == 202)
            // The redelivery differs (Healthy now) but carries the same messageId: it must change nothing.
            let redelivered = h.report(messageID: "report:dup", digest: digest, findings: [])
            #expect(try await h.submit(redelivered).status == 202)
            let (_, stored) = try await h.get("\(h.assessments)/\(digest)")
            #expect((stored["status"] as? [String: Any])?["code"] as? String == "Unhealthy")
            #expect(try await h.alerts().count == 1)
            #expect(try await h.count("SELECT count(*)::int FROM findings_policy.inbox") == 1)
            #expect(try await h.count("SELECT count(*)::int FROM findings_policy.assessments") == 1)
        }
    }

    @Test("imageUnhealthy only on a change to Unhealthy; imageHealthy when it ends; newFindings for findings new on an unhealthy image")
    func alertsOnlyOnChange() async throws {
        try await Self.withService { h in
            let digest = Harness.digest(30)
            let vulnerable = [Harness.finding("CVE-2019-14697", fixed: "1.1.18-r4", severity: "Critical")]
            @Sendable func ofKind(_ kind: String) async throws -> [[String: Any]] {
                try await h.alerts().filter { $0["kind"] as? String == kind }
            }

            _ = try await h.submit(h.report(digest: digest, findings: vulnerable))
            var alerts = try await ofKind("imageUnhealthy")
            #expect(alerts.count == 1)
            let alert = try #require(alerts.first)
            #expect(alert["imageDigest"] as? String == digest)
            #expect(alert["repositoryName"] as? String == "library/alpine")
            #expect(alert["tenantId"] as? String == h.tenantID)
            #expect(alert["subscriptionId"] as? String == h.subscriptionID)
            #expect((alert["findings"] as? [[String: Any]])?.first?["vulnerabilityId"] as? String == "CVE-2019-14697")
            // The CLI demo finds deliveries by an alert ID ending in the digest.
            #expect((alert["messageId"] as? String)?.hasSuffix(digest) == true)

            // Unhealthy → Unhealthy with the same findings (a rescan, new messageId): nothing at all.
            _ = try await h.submit(h.report(digest: digest, findings: vulnerable))
            #expect(try await h.alerts().count == 1)

            // Unhealthy → Unhealthy with one more finding (a feed update): newFindings with only the new one.
            let more = vulnerable + [Harness.finding("CVE-2020-28928", fixed: "1.1.24-r3", severity: "Medium")]
            _ = try await h.submit(h.report(digest: digest, findings: more))
            let new = try await ofKind("newFindings")
            #expect(new.count == 1)
            #expect((new.first?["findings"] as? [[String: Any]])?.compactMap { $0["vulnerabilityId"] as? String } == ["CVE-2020-28928"])
            #expect(try await ofKind("imageUnhealthy").count == 1)

            // Unhealthy → Healthy: imageHealthy, which notification records without delivering.
            _ = try await h.submit(h.report(digest: digest, findings: []))
            #expect(try await ofKind("imageHealthy").count == 1)
            #expect(try await ofKind("imageUnhealthy").count == 1)
            // Healthy → Healthy: nothing.
            _ = try await h.submit(h.report(digest: digest, findings: []))
            #expect(try await ofKind("imageHealthy").count == 1)

            // Healthy → Unhealthy again: a new alert.
            _ = try await h.submit(h.report(digest: digest, findings: vulnerable))
            alerts = try await ofKind("imageUnhealthy")
            #expect(alerts.count == 2)
            let all = try await h.alerts()
            #expect(Set(all.compactMap { $0["messageId"] as? String }).count == all.count)

            // NotApplicable → Unhealthy on another image: an alert.
            let other = Harness.digest(31)
            _ = try await h.submit(h.report(digest: other, findings: [], outcome: "notApplicable", reason: "NotAnImage"))
            #expect(try await ofKind("imageUnhealthy").count == 2)
            _ = try await h.submit(h.report(digest: other, findings: vulnerable))
            #expect(try await ofKind("imageUnhealthy").count == 3)

            // The same digest in another repository is another image: its own alert.
            _ = try await h.submit(h.report(digest: digest, repository: "team/app", findings: vulnerable))
            #expect(try await ofKind("imageUnhealthy").count == 4)
        }
    }

    /// Notification accepts alert message IDs of at most 200 characters (notification.yaml, `Alert.messageId`).
    @Test func alertMessageIDFitsNotificationContract() async throws {
        try await Self.withService { h in
            let repository = "org/" + String(repeating: "a", count: 200)
            let digest = "sha512:" + String(repeating: "ab", count: 64)
            let reply = try await h.submit(h.report(digest: digest, repository: repository,
                                                    findings: [Harness.finding("CVE-1", fixed: nil)]))
            #expect(reply.status == 202)
            let alert = try #require(try await h.alerts().first)
            let messageID = try #require(alert["messageId"] as? String)
            #expect(messageID.count <= 200)
        }
    }

    @Test func malformedReportsAre400Problems() async throws {
        try await Self.withService { h in
            let valid = h.report(digest: Harness.digest(40), findings: [])
            var badDigest = valid
            badDigest["digest"] = "sha256:ABC"
            var badTenant = valid
            badTenant["tenantId"] = "tenant-1"
            var badRepository = valid
            badRepository["repository"] = "Library/Alpine"
            var missingFindings = valid
            missingFindings.removeValue(forKey: "findings")
            var badSeverity = valid
            badSeverity["findings"] = [Harness.finding("CVE-1", fixed: nil, severity: "Apocalyptic")]
            var emptyMessageID = valid
            emptyMessageID["messageId"] = "   "
            for (name, report) in [("digest", badDigest), ("tenantId", badTenant), ("repository", badRepository),
                                   ("findings", missingFindings), ("severity", badSeverity), ("messageId", emptyMessageID)] {
                let reply = try await h.submit(report)
                #expect(reply.status == 400, "\(name): \(reply.text)")
                #expect(reply.header("Content-Type") == "application/problem+json", "\(name)")
                #expect(reply.text.contains(name), "\(name): \(reply.text)")
            }
            let notJSON = try await h.submitRaw("{not json")
            #expect(notJSON.status == 400)
            #expect(notJSON.header("Content-Type") == "application/problem+json")
            #expect(try await h.count("SELECT count(*)::int FROM findings_policy.assessments") == 0)
            #expect(try await h.count("SELECT count(*)::int FROM findings_policy.inbox") == 0)
        }
    }

    @Test func reportsNeedAServiceToken() async throws {
        try await Self.withService { h in
            let report = h.report(digest: Harness.digest(50), findings: [])
            let anonymous = try await TestHTTP.json(.POST, "\(h.base)/internal/v1/reports", report)
            #expect(anonymous.status == 401)
            let wrongAudience = try await h.env.tokens().token(for: "billing")
            let misaddressed = try await TestHTTP.json(.POST, "\(h.base)/internal/v1/reports", report, headers: [
                "Content-Type": "application/json", "Authorization": "Bearer \(wrongAudience)"])
            #expect(misaddressed.status == 401)
            #expect(try await h.count("SELECT count(*)::int FROM findings_policy.assessments") == 0)
        }
    }
}
