import Foundation
import GantryModel
import GantryRuntime
import NotificationAPI

/// An alert from `POST /internal/v1/alerts` that passed every check of its kind, with canonical severities.
struct ValidatedAlert: Sendable {
    var alert: Components.Schemas.Alert
    var kind: AlertKind
    var messageID: String
    /// Both nil only for a `feedsStale` alert meant for every subscription with a `feedsStale` rule.
    var scope: (tenantID: UUID, subscriptionID: UUID)?
    /// `registryHost/repository@digest`, for image kinds.
    var image: String?
    var findings: [Components.Schemas.AlertFinding] { alert.findings ?? [] }

    /// - Throws: `ProblemError` 400 naming the field that is missing or malformed for the alert's kind.
    init(_ alert: Components.Schemas.Alert) throws {
        var alert = alert
        messageID = try Validate.text(alert.messageId, field: "messageId")
        alert.messageId = messageID
        guard let kind = AlertKind(rawValue: alert.kind.rawValue) else {
            throw ProblemError.badRequest("kind '\(alert.kind.rawValue)' is not supported")
        }
        self.kind = kind
        alert.summary = try Validate.text(alert.summary, field: "summary", maxLength: 2000)
        switch (alert.tenantId, alert.subscriptionId) {
        case let (tenant?, subscription?):
            scope = (try Validate.uuid(tenant, field: "tenantId"), try Validate.uuid(subscription, field: "subscriptionId"))
        case (nil, nil) where kind == .feedsStale:
            scope = nil
        case (nil, _):
            throw ProblemError.badRequest("tenantId is required for \(kind.rawValue) alerts")
        case (_, nil):
            throw ProblemError.badRequest("subscriptionId is required for \(kind.rawValue) alerts")
        }
        if kind.concernsImage {
            guard let digest = alert.imageDigest else { throw ProblemError.badRequest("imageDigest is required for \(kind.rawValue) alerts") }
            guard let repository = alert.repositoryName else {
                throw ProblemError.badRequest("repositoryName is required for \(kind.rawValue) alerts")
            }
            let parsed = try Validate.digest(digest, field: "imageDigest")
            let name = try Validate.repository(repository, field: "repositoryName")
            let host = try Self.registryHost(alert.registryHost, kind: kind)
            image = "\(host)/\(name)@\(parsed)"
            alert.imageDigest = parsed.description
        } else {
            image = nil
        }
        switch kind {
        case .registryUnreachable:
            _ = try Self.registryHost(alert.registryHost, kind: kind)
            guard alert.since != nil else { throw ProblemError.badRequest("since is required for registryUnreachable alerts") }
        case .feedsStale:
            alert.feed = try Validate.text(alert.feed ?? "", field: "feed")
            guard alert.since != nil else { throw ProblemError.badRequest("since is required for feedsStale alerts") }
        case .newFindings:
            guard !(alert.findings ?? []).isEmpty else { throw ProblemError.badRequest("newFindings alerts need at least one finding") }
        case .scansFailing:
            if let count = alert.consecutiveFailures, count < 1 {
                throw ProblemError.badRequest("consecutiveFailures must be at least 1")
            }
        case .imageUnhealthy, .imageHealthy:
            break
        }
        if let findings = alert.findings {
            alert.findings = try findings.enumerated().map { index, finding in
                var finding = finding
                guard let severity = FindingSeverity(name: finding.severity) else {
                    throw ProblemError.badRequest(
                        "findings[\(index)].severity '\(finding.severity.prefix(40))' is not one of Unknown, Negligible, Low, Medium, High, Critical")
                }
                finding.severity = severity.name
                finding.vulnerabilityId = try Validate.text(finding.vulnerabilityId, field: "findings[\(index)].vulnerabilityId")
                finding.packageName = try Validate.text(finding.packageName, field: "findings[\(index)].packageName", maxLength: 500)
                return finding
            }
        }
        self.alert = alert
    }

    private static func registryHost(_ host: String?, kind: AlertKind) throws -> String {
        guard let host, CloudProfile.host(ofLoginServer: host) != nil else {
            throw ProblemError.badRequest("registryHost must be a host name with an optional port for \(kind.rawValue) alerts")
        }
        return host.lowercased()
    }
}

extension Components.Schemas.AlertFinding {
    /// What makes a finding the same finding on the same image across rescans and feed updates.
    var noiseKey: String { "\(vulnerabilityId) \(packageName) \(installedVersion)" }

    /// The canonical severity (validated on the way in; `unknown` for a stored value that is not one).
    var rank: FindingSeverity { FindingSeverity(name: severity) ?? .unknown }
}
