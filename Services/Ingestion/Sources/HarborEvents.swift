import Foundation
import GantryModel
import GantryRuntime
import IngestionAPI

/// Validation of Harbor webhooks (goharbor.io "Configure Webhooks"; Harbor's `src/pkg/notifier/formats`):
/// the default format (`type` PUSH_ARTIFACT…, `occur_at`, `event_data`) and CloudEvents 1.0 in structured
/// mode (`specversion`, `id`, `type` harbor.artifact.pushed…, `data`). Each artifact resource is one event.
enum HarborEvents {
    /// Harbor event types (both formats) that change what ingestion knows, with the action recorded.
    static let actions: [String: String] = [
        "PUSH_ARTIFACT": "push", "harbor.artifact.pushed": "push",
        "PULL_ARTIFACT": "pull", "harbor.artifact.pulled": "pull",
        "DELETE_ARTIFACT": "delete", "harbor.artifact.deleted": "delete",
    ]

    /// - Throws: `ProblemError` 400 naming the field.
    static func validate(_ webhook: Components.Schemas.HarborWebhook) throws -> ValidatedWebhook {
        let cloudEvent = webhook.specversion != nil
        guard let type = webhook._type, !type.isEmpty else { throw ProblemError.badRequest("type is missing") }
        if cloudEvent {
            guard webhook.specversion == "1.0" else {
                throw ProblemError.badRequest("specversion '\(webhook.specversion?.prefix(20) ?? "")' is not 1.0")
            }
            guard webhook.id?.isEmpty == false else { throw ProblemError.badRequest("id is missing (CloudEvents requires it)") }
        }
        let data = cloudEvent ? webhook.data : webhook.eventData
        let field = cloudEvent ? "data" : "event_data"
        let resources = data?.resources ?? []
        guard let action = actions[type] else {
            // Scanning, quota, replication and tag-retention events: nothing for Gantry to do. The sender is
            // still authenticated when they name its host.
            let host = resources.compactMap { $0.resourceUrl.flatMap(Self.host(ofResourceURL:)) }.first
            return ValidatedWebhook(host: host, events: [], received: max(resources.count, 1), ignored: max(resources.count, 1))
        }
        guard !resources.isEmpty else { throw ProblemError.badRequest("\(field).resources is empty") }
        guard resources.count <= 1000 else { throw ProblemError.badRequest("\(field).resources holds more than 1000 artifacts") }
        guard let repository = data?.repository?.repoFullName, !repository.isEmpty else {
            throw ProblemError.badRequest("\(field).repository.repo_full_name is missing")
        }
        _ = try Validate.repository(repository, field: "\(field).repository.repo_full_name")
        let occurredAt = cloudEvent ? WebhookFields.date(webhook.time)
            : webhook.occurAt.map { Date(timeIntervalSince1970: TimeInterval($0)) }
        var hosts = Set<String>()
        var events: [IncomingEvent] = []
        for (index, resource) in resources.enumerated() {
            let name = "\(field).resources[\(index)]"
            guard let url = resource.resourceUrl, let host = host(ofResourceURL: url) else {
                throw ProblemError.badRequest("\(name).resource_url is missing or names no host")
            }
            hosts.insert(host)
            guard let digestText = resource.digest else { throw ProblemError.badRequest("\(name).digest is missing") }
            let digest = try Validate.digest(digestText, field: "\(name).digest")
            let tag = WebhookFields.tag(resource.tag)
            if let tag { _ = try Validate.tag(tag, field: "\(name).tag") }
            events.append(IncomingEvent(
                id: eventID(webhook, cloudEvent: cloudEvent, type: type, repository: repository, resource: resource,
                            index: index, count: resources.count),
                source: .harbor, action: action, mediaType: nil, repository: repository, digest: digest, tag: tag,
                occurredAt: occurredAt))
        }
        guard hosts.count == 1, let host = hosts.first else {
            throw ProblemError.badRequest("\(field).resources name more than one registry host")
        }
        return ValidatedWebhook(host: host, events: events, received: resources.count, ignored: 0)
    }

    /// `host[:port]` of a resource URL, which Harbor writes without a scheme
    /// (`harbor.example.com/library/alpine:3.8`, `…/alpine@sha256:…`).
    static func host(ofResourceURL text: String) -> String? {
        let withoutScheme = text.range(of: "://").map { String(text[$0.upperBound...]) } ?? text
        guard let host = withoutScheme.split(separator: "/", maxSplits: 1).first, !host.isEmpty,
              withoutScheme.contains("/") else { return nil }
        return host.lowercased()
    }

    /// The CloudEvent's `id` (`#index` appended when it lists several artifacts); for the default format,
    /// which has no ID, `harbor-` + SHA-256 over what identifies the event. Harbor resends a failed
    /// webhook's payload unchanged (jobservice `WebhookJob`), so a retry gets the same ID.
    static func eventID(_ webhook: Components.Schemas.HarborWebhook, cloudEvent: Bool, type: String, repository: String,
                        resource: Components.Schemas.HarborResource, index: Int, count: Int) -> String {
        if cloudEvent, let id = webhook.id {
            let suffix = count > 1 ? "#\(index)" : ""
            if id.count + suffix.count <= 200 { return id + suffix }
            return "sha256:" + Checksum.sha256Hex(Array((id + suffix).utf8))
        }
        let identity = [type, String(webhook.occurAt ?? 0), webhook._operator ?? "", repository,
                        resource.digest ?? "", resource.tag ?? "", resource.resourceUrl ?? ""].joined(separator: "\u{0}")
        return "harbor-" + Checksum.sha256Hex(Array(identity.utf8))
    }
}
