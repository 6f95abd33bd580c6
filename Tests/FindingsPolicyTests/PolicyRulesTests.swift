@testable import FindingsPolicy
import FindingsPolicyAPI
import Foundation
import GantryRuntime
import HTTPTypes
import Testing

/// The policy's pure parts: rule matching and validation, severity banding, the secure score formula,
/// remediation text, sub-assessment names and paging tokens.
@Suite struct PolicyRulesTests {
    /// musl's CVE-2019-14697 as the scanner reports it on Alpine 3.7.
    static let musl = Finding(
        vulnerabilityId: "CVE-2019-14697", cves: ["CVE-2019-14697"], packageName: "musl", sourceName: "musl",
        installedVersion: "1.1.18-r3", fixedVersion: "1.1.18-r4", severity: .critical, patchable: true,
        source: "alpine-secdb:v3.7/main", namespace: "alpine:v3.7", ecosystem: "apk",
        aliases: ["CVE-2019-14697", "GHSA-xxxx-musl"], title: "musl libc x87 floating-point stack adjustment imbalance",
        cvssV3Score: 9.8)

    static let cases: [(String, RuleCriteria, Finding, Bool)] = {
        var unscored = musl
        unscored.cvssV3Score = nil
        var ghsa = musl
        ghsa.vulnerabilityId = "GHSA-aaaa-bbbb-cccc"
        ghsa.cves = []
        ghsa.aliases = ["CVE-2021-0001"]
        var utils = musl
        utils.packageName = "musl-utils"
        var untitled = musl
        untitled.title = nil
        return [
            ("finding ID, any case", .init(findingIds: ["cve-2019-14697"]), musl, true),
            ("other finding ID", .init(findingIds: ["CVE-2020-0001"]), musl, false),
            ("CVE as the ID", .init(cves: ["CVE-2019-14697"]), musl, true),
            ("CVE among the aliases", .init(cves: ["CVE-2021-0001"]), ghsa, true),
            ("CVE not on the finding", .init(cves: ["CVE-2021-0002"]), ghsa, false),
            ("category from the namespace", .init(categories: ["Alpine"]), musl, true),
            ("other category", .init(categories: ["debian", "ubuntu"]), musl, false),
            ("security check in the title", .init(securityChecks: ["FLOATING-point"]), musl, true),
            ("security check not in the title", .init(securityChecks: ["heap overflow"]), musl, false),
            ("security check in the fallback display name", .init(securityChecks: ["in musl 1.1.18"]), untitled, true),
            ("CVSS inside the range", .init(cvssV3: .init(min: 9, max: 10)), musl, true),
            ("CVSS on the inclusive bound", .init(cvssV3: .init(max: 9.8)), musl, true),
            ("CVSS above the range", .init(cvssV3: .init(min: 7, max: 9.7)), musl, false),
            ("no CVSS never matches a range", .init(cvssV3: .init(min: 0, max: 10)), unscored, false),
            ("High does not include Critical", .init(severities: [.high]), musl, false),
            ("one of the severities", .init(severities: [.low, .critical]), musl, true),
            ("patchable", .init(patchable: true), musl, true),
            ("not patchable", .init(patchable: false), musl, false),
            ("package name, any case", .init(packageNames: ["MUSL"]), musl, true),
            ("source package name", .init(packageNames: ["musl"]), utils, true),
            ("other package", .init(packageNames: ["busybox"]), musl, false),
            ("every criterion must hold", .init(severities: [.critical], patchable: false), musl, false),
            ("all criteria hold", .init(cves: ["CVE-2019-14697"], severities: [.critical], packageNames: ["musl"]), musl, true),
        ]
    }()

    @Test(arguments: cases.indices)
    func ruleMatching(_ index: Int) {
        let (name, criteria, finding, expected) = Self.cases[index]
        #expect(RuleMatcher.matches(criteria, finding) == expected, "\(name)")
    }

    static let badInputs: [(String, Components.Schemas.DisableRuleInput, String)] = {
        let scope = Components.Schemas.RuleScope(kind: .subscription)
        let criteria = RuleCriteria(severities: [.low])
        let past = Date().addingTimeInterval(-60)
        return [
            ("empty justification", .init(scope: scope, criteria: criteria, justification: "  "), "justification must not be empty"),
            ("inverted CVSS range", .init(scope: scope, criteria: .init(cvssV3: .init(min: 8, max: 5)), justification: "x"),
             "inverted"),
            ("CVSS out of range", .init(scope: scope, criteria: .init(cvssV3: .init(min: -1)), justification: "x"), "outside"),
            ("empty CVSS range", .init(scope: scope, criteria: .init(cvssV3: .init()), justification: "x"), "min, max or both"),
            ("expiry in the past", .init(scope: scope, criteria: criteria, justification: "x", expiresAt: past), "not in the future"),
            ("no criterion", .init(scope: scope, criteria: .init(findingIds: [], packageNames: []), justification: "x"),
             "at least one"),
            ("malformed CVE", .init(scope: scope, criteria: .init(cves: ["CVE-12"]), justification: "x"), "not a CVE ID"),
            ("blank value", .init(scope: scope, criteria: .init(packageNames: [" "]), justification: "x"), "packageNames"),
            ("registry scope without registry", .init(scope: .init(kind: .registry), criteria: criteria, justification: "x"),
             "requires scope.registryId"),
            ("repository scope without repository",
             .init(scope: .init(kind: .repository, registryId: UUID().uuidString), criteria: criteria, justification: "x"),
             "requires scope.repository"),
            ("subscription scope with a repository",
             .init(scope: .init(kind: .subscription, repository: "library/alpine"), criteria: criteria, justification: "x"),
             "does not belong"),
            ("image scope with a bad digest", .init(scope: .init(kind: .image, imageDigest: "sha256:zz"), criteria: criteria,
                                                    justification: "x"), "scope.imageDigest"),
            ("bad repository", .init(scope: .init(kind: .repository, registryId: UUID().uuidString, repository: "Bad/Name"),
                                     criteria: criteria, justification: "x"), "scope.repository"),
        ]
    }()

    @Test(arguments: badInputs.indices)
    func badRulesAreRefused(_ index: Int) {
        let (name, input, detail) = Self.badInputs[index]
        do {
            _ = try RuleValidation.validate(input)
            Issue.record("\(name): accepted")
        } catch let problem as ProblemError {
            #expect(problem.status.code == 400, "\(name)")
            #expect(problem.detail.contains(detail), "\(name): \(problem.detail)")
        } catch {
            Issue.record("\(name): \(error)")
        }
    }

    @Test func validationNormalises() throws {
        let input = Components.Schemas.DisableRuleInput(
            scope: .init(kind: .image, imageDigest: "sha256:" + String(repeating: "a", count: 64)),
            criteria: .init(cves: ["cve-2019-14697", "CVE-2019-14697"], categories: [], severities: [.low, .low]),
            justification: "  accepted by the platform team  ")
        let (scope, criteria, justification, _) = try RuleValidation.validate(input)
        #expect(scope == RuleScope(kind: .image, digest: "sha256:" + String(repeating: "a", count: 64)))
        #expect(criteria == RuleCriteria(cves: ["CVE-2019-14697"], severities: [.low]))
        #expect(justification == "accepted by the platform team")
    }

    @Test func scopes() {
        let registry = UUID()
        let image = ImageKey(registryID: registry, repository: "library/alpine", digest: "sha256:1")
        #expect(RuleScope(kind: .subscription).applies(to: image))
        #expect(RuleScope(kind: .registry, registryID: registry).applies(to: image))
        #expect(!RuleScope(kind: .registry, registryID: UUID()).applies(to: image))
        #expect(RuleScope(kind: .repository, registryID: registry, repository: "library/alpine").applies(to: image))
        #expect(!RuleScope(kind: .repository, registryID: registry, repository: "team/app").applies(to: image))
        #expect(RuleScope(kind: .image, digest: "sha256:1").applies(to: image))
        #expect(!RuleScope(kind: .image, digest: "sha256:2").applies(to: image))
    }

    @Test func severityBanding() throws {
        let standard = SeverityPolicy()
        #expect(Severity.allCases.map(standard.band) == [.low, .low, .low, .medium, .high, .high])
        let high = try SeverityPolicy(environment: ["GANTRY_UNKNOWN_SEVERITY_BAND": "High"])
        #expect(high.band(.unknown) == .high)
        #expect(high.weight(.unknown) == 4)
        // Critical outranks an Unknown banded High of the same weight class.
        #expect(high.worst([.unknown, .high]) == .high)
        #expect(high.worst([.unknown, .critical]) == .critical)
        #expect(standard.worst([.unknown, .negligible]) == .negligible)
        #expect(standard.worst([]) == nil)
        #expect(throws: ConfigurationError.self) { try SeverityPolicy(environment: ["GANTRY_UNKNOWN_SEVERITY_BAND": "Critical"]) }
    }

    @Test func secureScoreFormula() {
        let policy = SeverityPolicy()
        var score = SecureScore()
        #expect(score.score == nil)
        score.add(status: .healthy, worst: nil, count: 3, policy: policy)
        #expect(score.score == 100)
        score.add(status: .unhealthy, worst: .critical, policy: policy)
        score.add(status: .unhealthy, worst: .low, policy: policy)
        score.add(status: .notApplicable, worst: nil, count: 5, policy: policy)
        // 100 × 3 / (3 + 8 + 1)
        #expect(score.score == 25)
        #expect(score.unhealthyWeight == 9)
        score.add(status: .unhealthy, worst: .medium, policy: policy)
        // 100 × 3 / (3 + 11) = 21.428… → 21.43
        #expect(score.score == 21.43)
        var unhealthyOnly = SecureScore()
        unhealthyOnly.add(status: .unhealthy, worst: .unknown, policy: policy)
        #expect(unhealthyOnly.score == 0)
        var onlyNotApplicable = SecureScore()
        onlyNotApplicable.add(status: .notApplicable, worst: nil, policy: policy)
        #expect(onlyNotApplicable.score == nil)
    }

    @Test func evaluation() {
        let policy = SeverityPolicy()
        var low = Self.musl
        low.vulnerabilityId = "CVE-2020-0001"
        low.severity = .low
        low.fixedVersion = nil
        low.patchable = false
        let image = ReportedImage(outcome: .assessed, notes: [], findings: [Self.musl, low])
        let rule = DisableRule(id: UUID(), subscriptionID: UUID(), scope: .init(kind: .subscription),
                               criteria: .init(patchable: false), justification: "no fix upstream", createdAt: Date(),
                               createdBy: "t", updatedAt: Date(), updatedBy: "t")
        let some = Assessor.evaluate(image, rules: [rule], policy: policy)
        #expect(some.status.code == .unhealthy)
        #expect(some.status.severity == .high)
        #expect(some.exemptions == [1: rule.id])
        #expect(some.worstSeverity == .critical)
        #expect(some.status.description == "1 vulnerability findings (1 patchable) should be resolved; 1 more are disabled by rules")

        var everything = rule
        everything.criteria = .init(categories: ["alpine"])
        let all = Assessor.evaluate(image, rules: [everything, rule], policy: policy)
        #expect(all.status.code == .notApplicable)
        #expect(all.status.cause == "Exempt")
        // The first matching rule (oldest) is the one recorded.
        #expect(all.exemptions == [0: everything.id, 1: everything.id])

        let healthy = Assessor.evaluate(.init(outcome: .assessed, notes: [], findings: []), rules: [everything], policy: policy)
        #expect(healthy.status.code == .healthy)
        let unsupported = Assessor.evaluate(.init(outcome: .notApplicable, notApplicableReason: "WindowsImage",
                                                  notes: ["a Windows image"], findings: []), rules: [], policy: policy)
        #expect(unsupported.status == .init(code: .notApplicable, cause: "WindowsImage", description: "a Windows image"))
    }

    @Test func remediationText() {
        let os = Components.Schemas.OperatingSystem(id: "alpine", versionId: "3.7.3", prettyName: "Alpine Linux v3.7")
        let name = UUID()
        let upgrade = FindingText.remediation(of: Self.musl, subAssessmentName: name, operatingSystem: os)
        #expect(upgrade.action == .upgrade)
        #expect(upgrade.fixedVersion == "1.1.18-r4")
        #expect(upgrade.subAssessmentName == name.uuidString.lowercased())
        #expect(upgrade.text.hasPrefix("Upgrade musl from 1.1.18-r3 to 1.1.18-r4 or later (`apk add --no-cache --upgrade musl`"))
        #expect(upgrade.text.contains("Alpine Linux v3.7"))

        var wontFix = Self.musl
        wontFix.fixedVersion = nil
        wontFix.patchable = false
        wontFix.fixState = .wontFix
        wontFix.statement = "Minor issue; can be fixed in a point release"
        wontFix.ecosystem = "dpkg"
        let noFix = FindingText.remediation(of: wontFix, subAssessmentName: name, operatingSystem: os)
        #expect(noFix.action == .noFixAvailable)
        #expect(noFix.statement == "Minor issue; can be fixed in a point release")
        #expect(noFix.text.contains("No fixed version of musl is available: the publisher will not fix it"))
        #expect(noFix.text.contains("Publisher's statement: Minor issue"))
        #expect(noFix.text.contains("newer base image"))

        var endOfLife = wontFix
        endOfLife.fixState = .endOfLife
        endOfLife.statement = nil
        #expect(FindingText.remediation(of: endOfLife, subAssessmentName: name, operatingSystem: os).text
            .contains("supported release of its base image (it is Alpine Linux v3.7)"))

        var library = wontFix
        library.ecosystem = "pypi"
        library.namespace = "pypi"
        library.fixState = nil
        let dependency = FindingText.remediation(of: library, subAssessmentName: name, operatingSystem: os)
        #expect(dependency.text.contains("Replace or remove the dependency musl"))
        #expect(!dependency.text.contains("base image"))
        var fixedLibrary = library
        fixedLibrary.fixedVersion = "2.0"
        #expect(FindingText.remediation(of: fixedLibrary, subAssessmentName: name, operatingSystem: os).text
            .contains("in the application's dependency manifest"))
    }

    @Test func subAssessmentNamesAreStableAndDistinct() {
        let image = ImageKey(registryID: UUID(), repository: "library/alpine", digest: "sha256:1")
        let names = SubAssessmentName.names(for: [Self.musl, Self.musl], in: image)
        #expect(names == SubAssessmentName.names(for: [Self.musl, Self.musl], in: image))
        #expect(names[0] != names[1])
        #expect(names[0].uuidString.lowercased().dropFirst(14).first == "8")
        var moved = image
        moved.repository = "team/app"
        #expect(SubAssessmentName.names(for: [Self.musl], in: moved)[0] != names[0])
    }

    @Test func skipTokens() throws {
        let position = PostgresPolicyStore.PagePosition(registryID: UUID(), repository: "library/alpine",
                                                         digest: "sha256:1", ordinal: 7)
        let token = try SkipToken.encode(position)
        #expect(!token.contains("=") && !token.contains("+") && !token.contains("/"))
        #expect(try SkipToken.decode(token) == position)
        for bad in ["", "not-base64!", Data("{\"x\":1}".utf8).base64EncodedString()] {
            #expect(throws: ProblemError.self) { try SkipToken.decode(bad) }
        }
    }

    @Test func baseURLs() {
        #expect(RequestBaseURL.from(authority: "127.0.0.1:8084", forwardedHost: nil, forwardedProto: nil) == "http://127.0.0.1:8084")
        #expect(RequestBaseURL.from(authority: "internal:8084", forwardedHost: "gantry.example.com", forwardedProto: "https")
                == "https://gantry.example.com")
        #expect(RequestBaseURL.from(authority: "evil.com/path?", forwardedHost: nil, forwardedProto: nil) == nil)
        #expect(RequestBaseURL.from(authority: nil, forwardedHost: nil, forwardedProto: "https") == nil)
    }
}
