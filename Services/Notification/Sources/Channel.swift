import Foundation

/// Where alerts go: a channel of a subscription (notification.yaml, "Channels").
struct Channel: Sendable, Equatable {
    /// The payload format and transport of a channel.
    enum Kind: String, Sendable, CaseIterable {
        /// The alert JSON, signed with HMAC-SHA256 (`WebhookSignature`).
        case webhook
        /// A Slack incoming-webhook message (`text` plus Block Kit `blocks`).
        case slack
        /// A Microsoft Teams incoming-webhook message carrying an Adaptive Card.
        case teams
        /// A CloudEvents 1.0 event in structured JSON mode, signed when a secret is set.
        case cloudevents
        /// Plain-text e-mail over SMTP, one message per recipient.
        case email
    }

    var id: UUID
    var tenantID: UUID
    var subscriptionID: UUID
    var kind: Kind
    var name: String
    /// The receiver URL; nil for e-mail. For Slack and Teams, whose URL is itself the credential, only its masked
    /// form (`maskedURL`): the full URL is the channel's `secret`.
    var url: String?
    /// As stored: sealed with `SecretSealer` (`secretContext(id)`), or in clear in rows written before sealing
    /// existed (sealed by `DeliveryWorker.sealLegacySecrets` at start-up). For webhook and CloudEvents channels the
    /// HMAC signing secret; for Slack and Teams the full incoming-webhook URL (migration 4).
    var secret: String?

    /// The authenticated data a channel's secret is sealed with, so it opens only on its own row.
    static func secretContext(_ id: UUID) -> String { "notification.channel:\(id.uuidString.lowercased())" }

    /// Whether the receiver URL is a credential kept sealed in `secret` (Slack, Teams incoming webhooks).
    var urlIsSecret: Bool { Self.urlIsSecret(kind) }

    static func urlIsSecret(_ kind: Kind) -> Bool { kind == .slack || kind == .teams }

    /// Whether deliveries carry an HMAC signature: a signing secret is set.
    var signs: Bool { secret != nil && !urlIsSecret }

    /// A URL with its secret parts hidden, for storage beside the sealed URL and for API answers:
    /// `scheme://host[:port]`, then the first path segment when more segments follow it, then `/****`; query and
    /// fragment dropped (`https://hooks.slack.com/services/T0/B0/x` → `https://hooks.slack.com/services/****`).
    /// Migration 4 computes the same form in SQL.
    static func maskedURL(_ url: String) -> String {
        guard let separator = url.range(of: "://") else { return "****" }
        let afterScheme = url[separator.upperBound...]
        let authorityEnd = afterScheme.firstIndex { "/?#".contains($0) } ?? afterScheme.endIndex
        let origin = url[..<authorityEnd]
        let rest = afterScheme[authorityEnd...]
        let path = rest.prefix { $0 != "?" && $0 != "#" }
        let segments = path.split(separator: "/")
        return origin + (segments.count >= 2 ? "/" + segments[0] : "") + "/****"
    }
    var recipients: [String]
    var createdAt: Date

    /// The delivery targets: the URL, or one `mailto:` URL per recipient (RFC 6068).
    var targets: [String] {
        if kind == .email { return recipients.map { "mailto:" + $0 } }
        return url.map { [$0] } ?? []
    }
}

/// An alert rule (notification.yaml, "Rules").
struct AlertRule: Sendable, Equatable {
    var id: UUID
    var name: String
    var kind: AlertKind
    /// Finding kinds only: the lowest severity that alerts; nil means any.
    var minSeverity: FindingSeverity?
    /// `scansFailing` only: failures in a row that alert (3 when nil).
    var minConsecutiveFailures: Int?
    var channelIDs: [UUID]
    var createdAt: Date

    static let defaultConsecutiveFailures = 3
}

/// The conditions rules alert on, plus `imageHealthy`, a state signal no rule routes.
enum AlertKind: String, Sendable, CaseIterable {
    case imageUnhealthy
    case newFindings
    case scansFailing
    case feedsStale
    case registryUnreachable
    case imageHealthy

    /// Kinds about one image (`imageDigest`, `repositoryName`, `registryHost` required).
    var concernsImage: Bool {
        switch self {
        case .imageUnhealthy, .newFindings, .scansFailing, .imageHealthy: true
        case .feedsStale, .registryUnreachable: false
        }
    }

    /// Kinds whose findings carry severities a rule can filter on.
    var carriesFindings: Bool { self == .imageUnhealthy || self == .newFindings }

    /// Kinds that alert once per episode (`since`) rather than per image state.
    var isEpisodic: Bool { self == .scansFailing || self == .feedsStale || self == .registryUnreachable }

    /// Words for people: e-mail subjects, chat titles.
    var title: String {
        switch self {
        case .imageUnhealthy: "Image unhealthy"
        case .newFindings: "New findings on a scanned image"
        case .scansFailing: "Scans failing"
        case .feedsStale: "Vulnerability feed stale"
        case .registryUnreachable: "Registry unreachable"
        case .imageHealthy: "Image healthy"
        }
    }
}

/// Finding severities in order (the same scale as `GantryModel.Severity`), parsed in any letter case.
enum FindingSeverity: Int, Sendable, Comparable, CaseIterable {
    case unknown, negligible, low, medium, high, critical

    init?(name: String) {
        guard let match = Self.allCases.first(where: { $0.name.caseInsensitiveCompare(name) == .orderedSame }) else { return nil }
        self = match
    }

    /// The canonical spelling (notification.yaml `Severity`).
    var name: String {
        switch self {
        case .unknown: "Unknown"
        case .negligible: "Negligible"
        case .low: "Low"
        case .medium: "Medium"
        case .high: "High"
        case .critical: "Critical"
        }
    }

    static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// E-mail address checks for recipients and the sender (RFC 5321 section 4.1.2 `Mailbox`, ASCII dot-atoms only):
/// what passes can go on an SMTP command line and in a header without quoting or injection.
enum EmailAddress {
    private static let atomCharacters = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+/=?^_`{|}~-")
    private static let labelCharacters = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")

    static func isValid(_ address: String) -> Bool {
        guard address.utf8.count <= 254 else { return false }
        let parts = address.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].utf8.count <= 64 else { return false }
        let atoms = parts[0].split(separator: ".", omittingEmptySubsequences: false)
        guard atoms.allSatisfy({ !$0.isEmpty && $0.allSatisfy(atomCharacters.contains) }) else { return false }
        let labels = parts[1].split(separator: ".", omittingEmptySubsequences: false)
        return labels.allSatisfy {
            !$0.isEmpty && $0.count <= 63 && $0.allSatisfy(labelCharacters.contains) && $0.first != "-" && $0.last != "-"
        }
    }
}
