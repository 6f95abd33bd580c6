import FindingsPolicyAPI
import Foundation

/// Builds the API's assessments and sub-assessments from stored images.
struct Views: Sendable {
    let policy: SeverityPolicy

    /// The assessment of `image`: the findings that count, the exempt ones with their rule's justification,
    /// and — for an Unhealthy image only — the recommendation with a remediation per finding that counts.
    func assessment(_ image: StoredImage, justifications: [UUID: String],
                    tags: Components.Schemas.ImageTags?) -> Components.Schemas.Assessment {
        let names = SubAssessmentName.names(for: image.report.findings, in: image.key)
        var counted: [(Int, Finding)] = []
        var exempt: [Components.Schemas.ExemptFinding] = []
        for (index, finding) in image.report.findings.enumerated() {
            if let document = image.exemptions[index], let words = image.vexJustifications[index] {
                exempt.append(.init(finding: finding, vexDocumentId: document.uuidString.lowercased(), justification: words))
            } else if let rule = image.exemptions[index] {
                exempt.append(.init(finding: finding, ruleId: rule.uuidString.lowercased(),
                                    justification: justifications[rule] ?? "the rule no longer exists"))
            } else {
                counted.append((index, finding))
            }
        }
        var recommendation: Components.Schemas.Recommendation?
        if image.status.code == .unhealthy {
            let worst = image.worstSeverity ?? policy.worst(counted.map(\.1.severity)) ?? .unknown
            recommendation = .init(
                displayName: FindingText.recommendation, severity: policy.band(worst),
                description: "Vulnerabilities in container images can be exploited by whoever runs or reaches them. "
                    + "Resolve them: \(counted.filter { $0.1.patchable }.count) of \(counted.count) have a fixed version to upgrade to.",
                remediations: counted.map { index, finding in
                    FindingText.remediation(of: finding, subAssessmentName: names[index], operatingSystem: image.operatingSystem)
                })
        }
        return .init(
            imageDigest: image.key.digest, repositoryName: image.key.repository, registryHost: image.registryHost,
            registryId: image.key.registryID.uuidString.lowercased(), subscriptionId: image.subscriptionID.uuidString.lowercased(),
            status: image.status, operatingSystem: image.operatingSystem, findings: counted.map(\.1),
            exemptFindings: exempt, worstSeverity: image.worstSeverity, recommendation: recommendation,
            tags: tags ?? .init(current: [], previous: []), notes: image.report.notes,
            scanId: image.scanID.uuidString.lowercased(), timeGenerated: image.timeGenerated)
    }

    /// Where a sub-assessment lives in this API (its `id`).
    static func path(tenantID: UUID, subscriptionID: UUID, digest: String, name: UUID) -> String {
        "/v1/tenants/\(tenantID.uuidString.lowercased())/subscriptions/\(subscriptionID.uuidString.lowercased())"
            + "/assessments/\(digest)/subAssessments/\(name.uuidString.lowercased())"
    }

    /// One finding of an image as an Azure-shaped sub-assessment: Unhealthy, or NotApplicable with cause
    /// `Exempt` when a rule disables it.
    func subAssessment(_ row: SubAssessmentRow, tenantID: UUID, subscriptionID: UUID,
                       tags: Components.Schemas.ImageTags?) -> Components.Schemas.SubAssessment {
        let finding = row.finding
        let band = policy.band(finding.severity)
        let status: Components.Schemas.SubAssessmentStatus
        if let document = row.exemptRuleID, row.byVEX {
            status = .init(code: .notApplicable, cause: "Exempt",
                           description: "suppressed by VEX document \(document.uuidString.lowercased()): \(row.justification ?? "")",
                           severity: band)
        } else if let rule = row.exemptRuleID {
            status = .init(code: .notApplicable, cause: "Exempt",
                           description: "disabled by rule \(rule.uuidString.lowercased()): \(row.justification ?? "")",
                           severity: band)
        } else {
            status = .init(code: .unhealthy,
                           description: "\(finding.packageName) \(finding.installedVersion) is affected by \(finding.vulnerabilityId)",
                           severity: band)
        }
        var cvss: [String: Components.Schemas.Cvss] = [:]
        if let score = finding.cvssV3Score { cvss["3.0"] = .init(base: score, vector: finding.cvssV3Vector) }
        if let score = finding.cvssV4Score { cvss["4.0"] = .init(base: score, vector: finding.cvssV4Vector) }
        let cves = Array(Set(finding.cves + [finding.vulnerabilityId] + (finding.aliases ?? []))
            .filter { $0.uppercased().hasPrefix("CVE-") }).sorted()
        let remediation = FindingText.remediation(of: finding, subAssessmentName: row.name, operatingSystem: row.operatingSystem)
        let key = row.image
        return .init(
            id: Self.path(tenantID: tenantID, subscriptionID: subscriptionID, digest: key.digest, name: row.name),
            name: row.name.uuidString.lowercased(), _type: "Microsoft.Security/assessments/subAssessments",
            properties: .init(
                id: finding.vulnerabilityId, displayName: FindingText.displayName(of: finding), status: status,
                remediation: remediation.text, impact: FindingText.impact(of: finding, band: band),
                category: FindingText.category(of: finding), description: finding.description ?? FindingText.displayName(of: finding),
                timeGenerated: row.timeGenerated,
                resourceDetails: .init(source: "ContainerRegistry", id: "\(row.registryHost)/\(key.repository)@\(key.digest)"),
                additionalData: .init(
                    assessedResourceType: .containerRegistryVulnerability, _type: "Vulnerability",
                    cvss: .init(additionalProperties: cvss), patchable: finding.patchable,
                    cve: cves.map { .init(title: $0, link: "https://nvd.nist.gov/vuln/detail/\($0)") },
                    publishedTime: finding.published.flatMap(Self.date),
                    vendorReferences: (finding.links ?? []).map { .init(title: Self.linkTitle($0), link: $0) },
                    repositoryName: key.repository, imageDigest: key.digest, registryHost: row.registryHost,
                    registryId: key.registryID.uuidString.lowercased(), packageName: finding.packageName,
                    installedVersion: finding.installedVersion, fixedVersion: finding.fixedVersion, severity: finding.severity,
                    knownExploited: finding.knownExploited, epss: finding.epss,
                    exemptByRuleId: row.byVEX ? nil : row.exemptRuleID?.uuidString.lowercased(),
                    exemptByVexDocumentId: row.byVEX ? row.exemptRuleID?.uuidString.lowercased() : nil,
                    tags: tags ?? .init(current: [], previous: []))))
    }

    /// A feed's publication time: ISO 8601 with or without fractional seconds, or a bare date (midnight UTC).
    static func date(_ text: String) -> Date? {
        let full = ISO8601DateFormatter()
        if let date = full.date(from: text) { return date }
        full.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = full.date(from: text) { return date }
        full.formatOptions = [.withFullDate]
        return full.date(from: String(text.prefix(10)))
    }

    /// A reference's title: its host and the last path component (`security-tracker.debian.org: CVE-2019-14697`).
    static func linkTitle(_ link: String) -> String {
        guard let url = URL(string: link), let host = url.host else { return link }
        let last = url.lastPathComponent
        return last.isEmpty || last == "/" ? host : "\(host): \(last)"
    }
}

/// A stored finding with its image's details, as the sub-assessment queries return it.
struct SubAssessmentRow: Sendable {
    var image: ImageKey
    var ordinal: Int
    var name: UUID
    var finding: Finding
    var exemptRuleID: UUID?
    var justification: String?
    var registryHost: String
    var timeGenerated: Date
    var operatingSystem: Components.Schemas.OperatingSystem?
    /// True when `exemptRuleID` is a VEX document's ID and `justification` its statement's words.
    var byVEX: Bool = false
}
