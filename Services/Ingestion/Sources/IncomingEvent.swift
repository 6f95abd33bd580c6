import Foundation
import GantryModel

/// One registry event as ingestion records it, whatever webhook format it arrived in.
///
/// `action` is distribution's vocabulary (`docs/notifications.md`, "Events"): `push`, `pull`, `delete` or
/// `mount`. A delete names a digest (manifest deleted), a tag (tag deleted, the digest stays pullable), or
/// neither (ACR's repository delete: every image of the repository).
struct IncomingEvent: Sendable, Equatable {
    /// The webhook format, stored with the event (`ingestion.events.source`).
    enum Source: String, Sendable {
        case distribution, acr, harbor
    }

    var id: String
    var source: Source
    var action: String
    var mediaType: String?
    var repository: String
    var digest: Digest?
    var tag: String?
    /// The registry's own time for the event, when it sent one.
    var occurredAt: Date?
}

/// What a webhook request carried, after validation: the registry host its events name, the events to
/// record, and how many needed nothing (blobs, Helm charts, other Harbor event types). The host is nil
/// only when there is nothing to record and the payload names no registry (Harbor quota events).
struct ValidatedWebhook: Sendable {
    var host: String?
    var events: [IncomingEvent]
    var received: Int
    var ignored: Int
}

/// Registry hosts and timestamps as webhooks spell them.
enum WebhookFields {
    /// `host[:port]`, lowercased, of an absolute URL; nil when it has none.
    static func host(ofURL text: String) -> String? {
        guard let url = URL(string: text), let host = url.host, !host.isEmpty else { return nil }
        return (url.port.map { "\(host):\($0)" } ?? host).lowercased()
    }

    /// RFC 3339 with or without fractional seconds (distribution writes nanoseconds); nil when absent or
    /// unreadable, since the time is informational.
    static func date(_ text: String?) -> Date? {
        guard let text, !text.isEmpty else { return nil }
        return (try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text))
            ?? (try? Date.ISO8601FormatStyle().parse(text))
    }

    /// A tag as registries send it: empty, or a digest repeated in the tag field (Harbor does that for
    /// pulls and pushes by digest), is no tag.
    static func tag(_ text: String?) -> String? {
        guard let text, !text.isEmpty, !text.hasPrefix("sha256:"), !text.hasPrefix("sha512:") else { return nil }
        return text
    }

}
