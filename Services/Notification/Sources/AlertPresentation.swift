import Foundation
import NotificationAPI

/// One alert as one channel sees it: the findings at or above the channel's severity floor, in words for
/// people (chat messages and e-mail). All findings of an image go into one message.
struct AlertPresentation: Sendable {
    /// The alert with `findings` narrowed to the floor.
    let alert: Components.Schemas.Alert
    let kind: AlertKind
    /// How many findings the floor left out.
    let belowFloor: Int

    init(alert: Components.Schemas.Alert, floor: FindingSeverity?) {
        var alert = alert
        let all = alert.findings ?? []
        if let floor, alert.findings != nil {
            alert.findings = all.filter { $0.rank >= floor }
        }
        self.alert = alert
        kind = AlertKind(rawValue: alert.kind.rawValue) ?? .imageUnhealthy
        belowFloor = all.count - (alert.findings ?? []).count
    }

    var findings: [Components.Schemas.AlertFinding] { alert.findings ?? [] }

    /// `registryHost/repository@sha256:0123456789ab`, or nil for alerts not about an image.
    var imageReference: String? {
        guard let digest = alert.imageDigest, let repository = alert.repositoryName else { return nil }
        let short = digest.split(separator: ":").last.map { "\(digest.prefix(while: { $0 != ":" })):\($0.prefix(12))" } ?? digest
        return [alert.registryHost, repository].compactMap { $0 }.joined(separator: "/") + "@" + short
    }

    /// One line: the kind and what it is about.
    var title: String {
        let about = imageReference ?? alert.feed ?? alert.registryHost
        return about.map { "\(kind.title): \($0)" } ?? kind.title
    }

    /// "3 findings: 1 Critical, 2 High", or nil without findings.
    var severityCounts: String? {
        guard !findings.isEmpty else { return nil }
        let counts = Dictionary(grouping: findings, by: \.rank).mapValues(\.count)
        let parts = FindingSeverity.allCases.reversed().compactMap { severity in counts[severity].map { "\($0) \(severity.name)" } }
        return "\(findings.count) finding\(findings.count == 1 ? "" : "s"): " + parts.joined(separator: ", ")
    }

    /// Labelled facts, in display order.
    var facts: [(String, String)] {
        var facts: [(String, String)] = []
        if let host = alert.registryHost { facts.append(("Registry", host)) }
        if let repository = alert.repositoryName { facts.append(("Repository", repository)) }
        if let digest = alert.imageDigest { facts.append(("Digest", digest)) }
        if let feed = alert.feed { facts.append(("Feed", feed)) }
        if let since = alert.since { facts.append(("Since", since.formatted(.iso8601))) }
        if let failures = alert.consecutiveFailures { facts.append(("Consecutive failures", String(failures))) }
        if let detail = alert.detail { facts.append(("Detail", detail)) }
        if let counts = severityCounts { facts.append(("Findings", counts)) }
        if belowFloor > 0 { facts.append(("Below this channel's severity floor", "\(belowFloor) more finding(s) not listed")) }
        return facts
    }

    /// Finding lines, most severe first, at most `limit`; and how many were left out for length.
    func findingLines(limit: Int) -> (lines: [String], more: Int) {
        let sorted = findings.enumerated().sorted { lhs, rhs in
            lhs.element.rank != rhs.element.rank ? lhs.element.rank > rhs.element.rank : lhs.offset < rhs.offset
        }.map(\.element)
        let lines = sorted.prefix(limit).map { finding in
            let fix = finding.fixedVersion.map { ", fixed in \($0)" } ?? ", no fix yet"
            return "\(finding.vulnerabilityId) [\(finding.rank.name)] \(finding.packageName) \(finding.installedVersion)\(fix)"
        }
        return (Array(lines), max(0, sorted.count - limit))
    }
}
