@testable import FindingsPolicy
import FindingsPolicyAPI
import Foundation
import GantryRuntime
import GantryTesting
import HTTPTypes
import Testing

/// VEX parsing (OpenVEX 0.2.0, CSAF 2.0 VEX) on publishers' documents from the corpus and on hand-written ones
/// following the specs, statement matching, and the export formats' shapes.
@Suite struct VEXTests {
    static let image = ImageKey(registryID: UUID(), repository: "library/alpine", digest: "sha256:" + String(repeating: "ab", count: 32))
    static let host = "registry.example.com"

    static func curl(_ package: String, _ version: String, arch: String = "amd64", distro: String) -> Finding {
        Finding(vulnerabilityId: "CVE-2023-38545", cves: ["CVE-2023-38545"], packageName: package, sourceName: "curl",
                installedVersion: version, severity: .high, patchable: false, source: "ubuntu-osv",
                purl: "pkg:deb/ubuntu/\(package)@\(version)?arch=\(arch)&distro=\(distro)")
    }

    static func corpus(_ path: String) throws -> Data? {
        guard let root = Corpus.rootIfPresent else { return nil }
        return try Data(contentsOf: root.appendingPathComponent(path))
    }

    @Test(.enabled(if: Corpus.isAvailable, "the test corpus is missing"))
    func ubuntuOpenVEX() throws {
        let data = try #require(try Self.corpus("3-vuln-feeds/ubuntu/ubuntu-vex-CVE-2023-38545.json"))
        let parsed = try VEXParser.parse(data)
        #expect(parsed.format == .openvex)
        #expect(parsed.documentID == "https://github.com/canonical/ubuntu-security-notices/blob/main/vex/cve/2023/CVE-2023-38545")
        #expect(parsed.author == "Canonical Ltd.")
        #expect(parsed.statements.map(\.status) == [.fixed, .affected, .notAffected])
        #expect(parsed.statements[0].aliases.contains("https://ubuntu.com/security/notices/USN-6429-1"))
        let vex = ScopedVEX(documents: [AttachedVEX(id: UUID(), documentID: parsed.documentID, statements: parsed.statements)],
                            image: Self.image, registryHost: Self.host)
        // jammy's fixed version: "fixed" suppresses it.
        let jammy = try #require(vex.suppression(of: Self.curl("libcurl4", "7.81.0-1ubuntu1.24", distro: "ubuntu-22.04")))
        #expect(jammy.justification.hasPrefix("VEX https://github.com/canonical/ubuntu-security-notices/blob/main/vex/cve/2023/CVE-2023-38545: fixed"))
        // trusty's not_affected statement names the source package curl (arch=source) at this version.
        let trusty = try #require(vex.suppression(of: Self.curl("libcurl3", "7.35.0-1ubuntu2.20+esm19", distro: "ubuntu-14.04")))
        #expect(trusty.justification.contains("not_affected (vulnerable_code_not_present): This package"))
        // xenial is affected: nothing is suppressed; nor is another version, another CVE or another architecture.
        #expect(vex.suppression(of: Self.curl("libcurl3-gnutls", "7.47.0-1ubuntu2.19", distro: "ubuntu-16.04")) == nil)
        #expect(vex.suppression(of: Self.curl("libcurl4", "7.81.0-1ubuntu1.23", distro: "ubuntu-22.04")) == nil)
        var other = Self.curl("libcurl4", "7.81.0-1ubuntu1.24", distro: "ubuntu-22.04")
        other.vulnerabilityId = "CVE-2023-38546"
        other.cves = ["CVE-2023-38546"]
        #expect(vex.suppression(of: other) == nil)
        // A binary statement holds for its architecture only; the source package's covers every binary built from it.
        var mips = Self.curl("libcurl4", "7.81.0-1ubuntu1.24", arch: "mips", distro: "ubuntu-22.04")
        mips.sourceName = "curl-variant"
        #expect(vex.suppression(of: mips) == nil)
        mips.sourceName = "curl"
        #expect(vex.suppression(of: mips) != nil)
    }

    @Test(.enabled(if: Corpus.isAvailable, "the test corpus is missing"))
    func redHatCSAFVEX() throws {
        let data = try #require(try Self.corpus("3-vuln-feeds/redhat/claircore-cve-2023-4154.vex.json"))
        let parsed = try VEXParser.parse(data)
        #expect(parsed.format == .csaf)
        #expect(parsed.documentID == "CVE-2023-4154")
        #expect(parsed.author == "Red Hat Product Security")
        let notAffected = parsed.statements.filter { $0.status == .notAffected }
        #expect(notAffected.reduce(0) { $0 + $1.products.count } == 165)
        #expect(notAffected.allSatisfy { $0.justification == "vulnerable_code_not_present" && $0.impactStatement != nil })
        let samba = try #require(notAffected.flatMap(\.products).first { $0.id == "red_hat_enterprise_linux_6:samba" })
        #expect(samba.purls == ["pkg:rpm/redhat/samba"])
        let finding = Finding(vulnerabilityId: "CVE-2023-4154", cves: ["CVE-2023-4154"], packageName: "samba", sourceName: "samba",
                              installedVersion: "3.6.23-53.el6_10", severity: .medium, patchable: false, source: "redhat-csaf",
                              purl: "pkg:rpm/rhel/samba@3.6.23-53.el6_10?arch=x86_64&distro=rhel-6")
        let vex = ScopedVEX(documents: [AttachedVEX(id: UUID(), documentID: parsed.documentID, statements: parsed.statements)],
                            image: Self.image, registryHost: Self.host)
        #expect(vex.suppression(of: finding)?.justification.hasPrefix("VEX CVE-2023-4154: not_affected (vulnerable_code_not_present): ") == true)
        // samba4 is listed on RHEL 6 only: on RHEL 7 (or another platform's namespace) the finding stays.
        var samba4 = finding
        samba4.packageName = "samba4"
        samba4.sourceName = "samba4"
        samba4.purl = "pkg:rpm/rhel/samba4@4.2.10-15.el6?arch=x86_64&distro=rhel-6"
        samba4.namespace = "rhel:7"
        #expect(vex.suppression(of: samba4) == nil)
        samba4.namespace = "alpine:v3.7"
        #expect(vex.suppression(of: samba4) == nil)
        samba4.namespace = "rhel:6"
        #expect(vex.suppression(of: samba4) != nil)
        #expect(VEXMatcher.platformNamespace("cpe:2.3:o:redhat:enterprise_linux:9:*:baseos:*:*:*:*:*") == "rhel:9")
        #expect(VEXMatcher.platformNamespace("cpe:/a:redhat:openshift:4.16::el9") == nil)
        var unrelated = finding
        unrelated.packageName = "openssl"
        unrelated.sourceName = "openssl"
        unrelated.purl = "pkg:rpm/rhel/openssl@1.0.1e?arch=x86_64"
        #expect(vex.suppression(of: unrelated) == nil)

        let fixed = try VEXParser.parse(try #require(try Self.corpus("3-vuln-feeds/redhat/claircore-cve-2024-24786-simple.vex.json")))
        #expect(fixed.statements.map(\.status) == [.fixed])
        #expect(fixed.statements[0].products.first?.purls == ["pkg:rpm/redhat/cri-tools@1.29.0-3.1.el9?arch=aarch64"])
        // A CSAF advisory (category csaf_security_advisory) is not a VEX document.
        let advisory = try #require(try Self.corpus("3-vuln-feeds/redhat/claircore-rhsa-2022_0011.csaf.json"))
        #expect(throws: ProblemError.self) { try VEXParser.parse(advisory) }
    }

    /// An image-level OpenVEX document as a vendor of the image would write it (OpenVEX spec v0.2.0 examples).
    static func imageDocument(digest: String, statements: String) -> Data {
        Data("""
            {
              "@context": "https://openvex.dev/ns/v0.2.0",
              "@id": "https://example.com/vex/alpine-2026-11-29",
              "author": "Example Security Team <security@example.com>",
              "role": "Document Creator",
              "timestamp": "2026-11-29T10:00:00Z",
              "version": 2,
              "statements": [\(statements)]
            }
            """.utf8)
    }

    @Test func imageProductsAndSubcomponents() throws {
        let digestHex = String(Self.image.digest.dropFirst(7))
        let data = Self.imageDocument(digest: Self.image.digest, statements: """
            {
              "vulnerability": {"name": "CVE-2019-14697", "aliases": ["GHSA-xxxx-musl"]},
              "products": [{
                "@id": "pkg:oci/alpine@sha256%3A\(digestHex)?repository_url=registry.example.com/library/alpine",
                "subcomponents": [{"@id": "pkg:apk/alpine/musl@1.1.18-r3?arch=x86_64"}]
              }],
              "status": "not_affected",
              "justification": "vulnerable_code_not_in_execute_path",
              "impact_statement": "the x87 code path is never used on x86_64"
            },
            {
              "vulnerability": {"name": "CVE-2018-0732"},
              "products": [{"@id": "sha256:\(digestHex)"}],
              "status": "fixed"
            },
            {
              "vulnerability": {"name": "CVE-2020-0001"},
              "products": [{"@id": "pkg:oci/alpine?repository_url=registry.example.com/library/alpine"}],
              "status": "under_investigation"
            }
            """)
        let parsed = try VEXParser.parse(data)
        let vex = ScopedVEX(documents: [AttachedVEX(id: UUID(), documentID: parsed.documentID, statements: parsed.statements)],
                            image: Self.image, registryHost: Self.host)
        var musl = PolicyRulesTests.musl
        musl.purl = "pkg:apk/alpine/musl@1.1.18-r3?arch=x86_64"
        #expect(vex.suppression(of: musl)?.justification
            == "VEX https://example.com/vex/alpine-2026-11-29: not_affected (vulnerable_code_not_in_execute_path): the x87 code path is never used on x86_64")
        // A subcomponent list narrows the image to those packages.
        var utils = musl
        utils.packageName = "musl-utils"
        utils.purl = "pkg:apk/alpine/musl-utils@1.1.18-r3?arch=x86_64"
        #expect(vex.suppression(of: utils) == nil)
        // The same statement on another image does not apply.
        let elsewhere = ScopedVEX(documents: vex.documents, image: ImageKey(registryID: UUID(), repository: "library/alpine",
                                                                          digest: "sha256:" + String(repeating: "cd", count: 32)),
                                  registryHost: Self.host)
        #expect(elsewhere.suppression(of: musl) == nil)
        // A bare digest product covers every package of the image; under_investigation suppresses nothing.
        var openssl = musl
        openssl.vulnerabilityId = "CVE-2018-0732"
        openssl.cves = ["CVE-2018-0732"]
        openssl.packageName = "libssl1.0"
        openssl.aliases = nil
        openssl.purl = "pkg:apk/alpine/libssl1.0@1.0.2t-r0?arch=x86_64"
        #expect(vex.suppression(of: openssl)?.justification == "VEX https://example.com/vex/alpine-2026-11-29: fixed")
        openssl.vulnerabilityId = "CVE-2020-0001"
        openssl.cves = ["CVE-2020-0001"]
        #expect(vex.suppression(of: openssl) == nil)
    }

    /// (what, document, words of the problem)
    static let badDocuments: [(String, String, String)] = [
        ("not JSON", "{\"@context\": ", "not JSON"),
        ("an array", "[]", "not a JSON object"),
        ("neither format", #"{"hello": "world"}"#, "neither OpenVEX"),
        ("old OpenVEX", #"{"@context": "https://openvex.dev/ns/v0.0.1", "@id": "x", "author": "a", "timestamp": "2023-01-01T00:00:00Z", "statements": []}"#,
         "is not OpenVEX v0.2.0"),
        ("no author", #"{"@context": "https://openvex.dev/ns/v0.2.0", "@id": "x", "timestamp": "2023-01-01T00:00:00Z", "statements": []}"#,
         "author is missing"),
        ("no statements", #"{"@context": "https://openvex.dev/ns/v0.2.0", "@id": "x", "author": "a", "timestamp": "2023-01-01T00:00:00Z", "statements": []}"#,
         "at least one"),
        ("unknown status", statement(#""status": "maybe", "products": [{"@id": "pkg:apk/alpine/musl"}]"#), "statements[0].status 'maybe'"),
        ("not_affected without justification", statement(#""status": "not_affected", "products": [{"@id": "pkg:apk/alpine/musl"}]"#),
         "needs a justification or an impact_statement"),
        ("unknown justification",
         statement(#""status": "not_affected", "justification": "trust_me", "products": [{"@id": "pkg:apk/alpine/musl"}]"#),
         "not an OpenVEX justification"),
        ("no products", statement(#""status": "fixed""#), "statements[0].products"),
        ("vulnerability as a string", #"{"@context": "https://openvex.dev/ns/v0.2.0", "@id": "x", "author": "a", "timestamp": "2023-01-01T00:00:00Z", "statements": [{"vulnerability": "CVE-1", "status": "fixed", "products": []}]}"#,
         "statements[0].vulnerability"),
        ("CSAF 2.1", csaf(version: "2.1", category: "csaf_vex", status: #"{"fixed": ["p"]}"#), "is not 2.0"),
        ("CSAF advisory", csaf(version: "2.0", category: "csaf_security_advisory", status: #"{"fixed": ["p"]}"#), "is not csaf_vex"),
        ("CSAF unknown product", csaf(version: "2.0", category: "csaf_vex", status: #"{"fixed": ["nope"]}"#),
         "product 'nope' is not in the product_tree"),
        ("CSAF without product_status", csaf(version: "2.0", category: "csaf_vex", status: nil), "product_status is missing"),
    ]

    static func statement(_ body: String) -> String {
        #"{"@context": "https://openvex.dev/ns/v0.2.0", "@id": "x", "author": "a", "timestamp": "2023-01-01T00:00:00Z", "statements": [{"vulnerability": {"name": "CVE-2019-14697"}, "#
            + body + "}]}"
    }

    static func csaf(version: String, category: String, status: String?) -> String {
        """
        {"document": {"category": "\(category)", "csaf_version": "\(version)", "publisher": {"name": "Example", "category": "vendor", "namespace": "https://example.com"},
          "title": "t", "tracking": {"id": "EX-1", "version": "1", "status": "final", "current_release_date": "2026-01-01T00:00:00Z",
          "initial_release_date": "2026-01-01T00:00:00Z", "revision_history": []}},
         "product_tree": {"branches": [{"category": "product_version", "name": "musl", "product": {"name": "musl 1.1.18-r3", "product_id": "p",
            "product_identification_helper": {"purl": "pkg:apk/alpine/musl@1.1.18-r3"}}}]},
         "vulnerabilities": [{"cve": "CVE-2019-14697"\(status.map { ", \"product_status\": \($0)" } ?? "")}]}
        """
    }

    @Test(arguments: badDocuments.indices)
    func badDocumentsAreRefused(_ index: Int) {
        let (what, document, words) = Self.badDocuments[index]
        do {
            _ = try VEXParser.parse(Data(document.utf8))
            Issue.record("\(what) parsed")
        } catch let problem as ProblemError {
            #expect(problem.status == .badRequest)
            #expect(problem.detail.contains(words), "\(what): \(problem.detail)")
        } catch {
            Issue.record("\(what): \(error)")
        }
    }

    @Test func packageURLs() throws {
        let purl = try #require(ParsedPackageURL("pkg:deb/ubuntu/curl@7.81.0-1ubuntu1.24?arch=source&distro=esm-infra%2Fbionic"))
        #expect(purl.type == "deb" && purl.namespace == "ubuntu" && purl.name == "curl" && purl.version == "7.81.0-1ubuntu1.24")
        #expect(purl.qualifiers == ["arch": "source", "distro": "esm-infra/bionic"])
        let scoped = try #require(ParsedPackageURL("pkg:npm/%40angular/core@16.0.0"))
        #expect(scoped.namespace == "@angular" && scoped.name == "core")
        let go = try #require(ParsedPackageURL("pkg:golang/google.golang.org/protobuf@v1.33.0#encoding"))
        #expect(go.namespace == "google.golang.org" && go.name == "protobuf" && go.version == "v1.33.0")
        #expect(ParsedPackageURL("sha256:abc") == nil)
        #expect(ParsedPackageURL("pkg:deb") == nil)
    }

    // MARK: Exports

    static func rows() -> [ExportRow] {
        var musl = PolicyRulesTests.musl
        musl.purl = "pkg:apk/alpine/musl@1.1.18-r3?arch=x86_64"
        musl.cvssV3Vector = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
        var busybox = musl
        busybox.vulnerabilityId = "CVE-2018-1000517"
        busybox.cves = ["CVE-2018-1000517"]
        busybox.packageName = "busybox"
        busybox.severity = .medium
        busybox.title = "busybox: wget, \"heap\" overflow\nin 1.28"
        busybox.purl = nil
        let tags = Components.Schemas.ImageTags(current: [.init(tag: "3.7", firstSeen: Date(), lastSeen: Date())], previous: [])
        func row(_ finding: Finding, ordinal: Int, exempt: UUID? = nil, byVEX: Bool = false, justification: String? = nil) -> SubAssessmentRow {
            SubAssessmentRow(image: image, ordinal: ordinal, name: UUID(), finding: finding, exemptRuleID: exempt,
                             justification: justification, registryHost: host, timeGenerated: Date(), operatingSystem: nil, byVEX: byVEX)
        }
        let statement = VEXStatement(vulnerability: "CVE-2018-1000517", aliases: [], status: .notAffected,
                                     justification: "vulnerable_code_not_in_execute_path", products: [])
        return [
            ExportRow(row: row(musl, ordinal: 0), tags: tags),
            ExportRow(row: row(busybox, ordinal: 1, exempt: UUID(), byVEX: true, justification: "VEX x: not_affected, \"wget\" unused"),
                      tags: tags, vexStatement: statement),
        ]
    }

    @Test func csvFollowsRFC4180() {
        let text = FindingsExport(policy: SeverityPolicy()).csv(Self.rows())
        let records = text.components(separatedBy: "\r\n")
        #expect(records.count == 4 && records.last == "")
        #expect(records[0] == FindingsExport.csvHeader.joined(separator: ","))
        #expect(records[1].hasPrefix("registry.example.com,library/alpine,sha256:abab"))
        #expect(records[1].contains(",3.7,,CVE-2019-14697,musl,1.1.18-r3,1.1.18-r4,Critical,High,9.8,true,Unhealthy,,,"))
        // Quotes doubled, fields with commas, quotes or line breaks quoted.
        #expect(records[2].contains(#","VEX x: not_affected, ""wget"" unused","busybox: wget, ""heap"" overflow"#))
        #expect(FindingsExport.csvRecord(["a", "b,c", "d\"e", "f\ng", "h\r"]) == "a,\"b,c\",\"d\"\"e\",\"f\ng\",\"h\r\"\r\n")
    }

    @Test func sarifHasTheRequiredProperties() throws {
        let log = FindingsExport(policy: SeverityPolicy()).sarif(Self.rows())
        let json = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(log)) as? [String: Any])
        #expect(json["version"] as? String == "2.1.0")
        let run = try #require((json["runs"] as? [[String: Any]])?.first)
        let driver = try #require((run["tool"] as? [String: Any])?["driver"] as? [String: Any])
        #expect(driver["name"] as? String == "Gantry")
        let rules = try #require(driver["rules"] as? [[String: Any]])
        #expect(rules.map { $0["id"] as? String } == ["CVE-2019-14697", "CVE-2018-1000517"])
        #expect((rules[0]["properties"] as? [String: Any])?["security-severity"] as? String == "9.8")
        let results = try #require(run["results"] as? [[String: Any]])
        #expect(results.map { $0["level"] as? String } == ["error", "warning"])
        #expect(results.map { $0["ruleIndex"] as? Int } == [0, 1])
        for result in results {
            // SARIF 2.1.0 section 3.27: a result requires message (with text); ruleId names a rule of the driver.
            #expect(((result["message"] as? [String: Any])?["text"] as? String)?.isEmpty == false)
            let location = try #require((result["locations"] as? [[String: Any]])?.first)
            let uri = ((location["physicalLocation"] as? [String: Any])?["artifactLocation"] as? [String: Any])?["uri"] as? String
            #expect(uri?.hasPrefix("pkg:oci/alpine@sha256%3Aabab") == true && uri?.hasSuffix("?repository_url=registry.example.com/library/alpine") == true)
        }
        #expect(results[0]["suppressions"] == nil)
        let suppression = try #require((results[1]["suppressions"] as? [[String: Any]])?.first)
        #expect(suppression["kind"] as? String == "external" && suppression["status"] as? String == "accepted")
        let logical = ((results[0]["locations"] as? [[String: Any]])?.first?["logicalLocations"] as? [[String: Any]])?.first
        #expect(logical?["fullyQualifiedName"] as? String == "pkg:apk/alpine/musl@1.1.18-r3?arch=x86_64")
    }

    @Test func cycloneDXReflectsExemptions() throws {
        let bom = FindingsExport(policy: SeverityPolicy()).cycloneDX(Self.rows())
        let json = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(bom)) as? [String: Any])
        #expect(json["bomFormat"] as? String == "CycloneDX" && json["specVersion"] as? String == "1.6")
        #expect((json["serialNumber"] as? String)?.hasPrefix("urn:uuid:") == true)
        let components = try #require(json["components"] as? [[String: Any]])
        #expect(components.map { $0["type"] as? String } == ["container", "library", "library"])
        let refs = Set(components.compactMap { $0["bom-ref"] as? String })
        let vulnerabilities = try #require(json["vulnerabilities"] as? [[String: Any]])
        for vulnerability in vulnerabilities {
            let affects = try #require(vulnerability["affects"] as? [[String: Any]])
            #expect(affects.allSatisfy { refs.contains($0["ref"] as? String ?? "") }, "affects names a component")
        }
        let analyses = vulnerabilities.map { $0["analysis"] as? [String: Any] ?? [:] }
        #expect(analyses[0]["state"] as? String == "in_triage")
        #expect(analyses[1]["state"] as? String == "not_affected")
        #expect(analyses[1]["justification"] as? String == "code_not_reachable")
        let rating = (vulnerabilities[0]["ratings"] as? [[String: Any]])?.first
        #expect(rating?["method"] as? String == "CVSSv31" && rating?["severity"] as? String == "critical")
    }
}
