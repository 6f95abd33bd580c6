import Crypto
import Foundation
import GantryModel
import GantryRuntime
import IngestionAPI

/// Validation of Docker distribution notification events (distribution `docs/notifications.md`, "Events")
/// and of ACR webhook events, which have the same shape (learn.microsoft.com, "Azure Container Registry
/// webhook reference").
enum DistributionEvents {
    /// Manifest media types; events for other targets are blob events.
    static let manifestMediaTypes: Set<String> = [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    ]

    static let actions: Set<String> = ["push", "pull", "delete", "mount"]

    /// Validates a whole envelope; any bad event rejects it (nothing is recorded).
    /// - Throws: `ProblemError` 400 naming the event and field.
    static func validate(_ envelope: Components.Schemas.Envelope) throws -> ValidatedWebhook {
        guard !envelope.events.isEmpty else { throw ProblemError.badRequest("the envelope holds no events") }
        guard envelope.events.count <= 1000 else { throw ProblemError.badRequest("an envelope holds at most 1000 events") }
        guard let host = registryHost(of: envelope.events) else {
            throw ProblemError.badRequest("the events do not name one registry host (request.host or target.url)")
        }
        var events: [IncomingEvent] = []
        var ignored = 0
        for (index, event) in envelope.events.enumerated() {
            guard actions.contains(event.action) else {
                throw ProblemError.badRequest("events[\(index)].action '\(event.action.prefix(50))' is not push, pull, delete or mount")
            }
            if let incoming = try incoming(event, action: event.action, source: .distribution, field: "events[\(index)]") {
                events.append(incoming)
            } else {
                ignored += 1
            }
        }
        return ValidatedWebhook(host: host, events: events, received: envelope.events.count, ignored: ignored)
    }

    /// Validates one ACR webhook event: `push`, `delete` and `quarantine` (an image held until scanned,
    /// recorded as a push) are recorded; `chart_push` and `chart_delete` (Helm charts) are ignored.
    /// - Throws: `ProblemError` 400 naming the field.
    static func validateACR(_ event: Components.Schemas.Event) throws -> ValidatedWebhook {
        guard let host = registryHost(of: [event]) else {
            throw ProblemError.badRequest("the event does not name its registry host (request.host or target.url)")
        }
        switch event.action {
        case "chart_push", "chart_delete":
            return ValidatedWebhook(host: host, events: [], received: 1, ignored: 1)
        case "push", "delete", "quarantine":
            var target = event
            // A quarantined image is a pushed image awaiting its scan (Azure/acr docs/preview/quarantine).
            if event.action == "quarantine" { target.action = "push" }
            guard let incoming = try incoming(target, action: target.action, source: .acr, field: "event",
                                              treatUntypedAsManifest: true) else {
                return ValidatedWebhook(host: host, events: [], received: 1, ignored: 1)
            }
            return ValidatedWebhook(host: host, events: [incoming], received: 1, ignored: 0)
        default:
            throw ProblemError.badRequest(
                "action '\(event.action.prefix(50))' is not push, delete, quarantine, chart_push or chart_delete")
        }
    }

    /// The event to record, or nil for a blob event.
    /// - Parameter treatUntypedAsManifest: ACR sends manifest events without `mediaType` (quarantine);
    ///   distribution sends a media type with every push and pull.
    private static func incoming(_ event: Components.Schemas.Event, action: String, source: IncomingEvent.Source,
                                 field: String, treatUntypedAsManifest: Bool = false) throws -> IncomingEvent? {
        let target = event.target
        let tag = WebhookFields.tag(target.tag)
        let isManifest: Bool
        if let mediaType = target.mediaType, !mediaType.isEmpty {
            isManifest = manifestMediaTypes.contains(mediaType)
        } else {
            // Deletes carry only the digest (or, for a tag delete, only the tag); treat them as manifest
            // events: a blob delete names an image ingestion does not know, and changes nothing.
            isManifest = action == "delete" || treatUntypedAsManifest
        }
        guard isManifest else { return nil }
        guard let repository = target.repository, !repository.isEmpty else {
            throw ProblemError.badRequest("\(field).target.repository is missing")
        }
        _ = try Validate.repository(repository, field: "\(field).target.repository")
        let digest = try target.digest.map { try Validate.digest($0, field: "\(field).target.digest") }
        if let tag { _ = try Validate.tag(tag, field: "\(field).target.tag") }
        if action != "delete" && digest == nil {
            throw ProblemError.badRequest("\(field) is a manifest \(action) without target.digest")
        }
        if action == "delete" && digest == nil && tag == nil && source == .distribution {
            throw ProblemError.badRequest("\(field) is a delete without target.digest or target.tag")
        }
        return IncomingEvent(id: event.id, source: source, action: action, mediaType: target.mediaType,
                             repository: repository, digest: digest, tag: tag, occurredAt: WebhookFields.date(event.timestamp))
    }

    /// The registry host events came from: every event's `request.host`, else its `target.url` host.
    /// - Returns: nil when events disagree or name no host.
    static func registryHost(of events: [Components.Schemas.Event]) -> String? {
        var hosts = Set<String>()
        for event in events {
            if let host = event.request?.host, !host.isEmpty {
                hosts.insert(host.lowercased())
            } else if let url = event.target.url, let host = WebhookFields.host(ofURL: url) {
                hosts.insert(host)
            } else {
                return nil
            }
        }
        return hosts.count == 1 ? hosts.first : nil
    }

    /// An outbox message ID for one event: deterministic, so a redelivered event cannot send twice, and
    /// scoped to the registry, whose event IDs need not be unique beyond it. `<kind>:<registry>:<event>`,
    /// or with `sha256:<hex of the event ID>` for the event when that would exceed the 200 characters
    /// scanner.yaml allows a message ID.
    static func messageID(_ kind: String, registryID: UUID, eventID: String) -> String {
        let prefix = "\(kind):\(registryID.uuidString.lowercased()):"
        if prefix.count + eventID.count <= 200 { return prefix + eventID }
        return prefix + "sha256:" + SHA256.hash(data: Data(eventID.utf8)).map { String(format: "%02x", $0) }.joined()
    }
}
