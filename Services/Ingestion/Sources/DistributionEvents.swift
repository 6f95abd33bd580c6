import Crypto
import Foundation
import GantryModel
import IngestionAPI

/// Classification of Docker distribution notification events (distribution `docs/notifications.md`, "Events").
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

    /// The registry host an envelope came from: every event's `request.host`, else its `target.url` host.
    /// - Returns: nil when events disagree or name no host.
    static func registryHost(of events: [Components.Schemas.Event]) -> String? {
        var hosts = Set<String>()
        for event in events {
            if let host = event.request?.host, !host.isEmpty {
                hosts.insert(host.lowercased())
            } else if let url = event.target.url.flatMap(URL.init(string:)), let host = url.host {
                hosts.insert((url.port.map { "\(host):\($0)" } ?? host).lowercased())
            } else {
                return nil
            }
        }
        return hosts.count == 1 ? hosts.first : nil
    }

    /// The outbox message ID of the scan request for one event: deterministic, so a redelivered event cannot
    /// queue a second scan, and scoped to the registry, whose event IDs need not be unique beyond it.
    /// `scan-request:<registry>:<event>`, or with `sha256:<hex of the event ID>` for the event when that would
    /// exceed the 200 characters scanner.yaml allows a message ID.
    static func scanRequestMessageID(registryID: UUID, eventID: String) -> String {
        let prefix = "scan-request:\(registryID.uuidString.lowercased()):"
        if prefix.count + eventID.count <= 200 { return prefix + eventID }
        return prefix + "sha256:" + SHA256.hash(data: Data(eventID.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    static func isManifest(_ event: Components.Schemas.Event) -> Bool {
        // A delete event carries only the digest; treat it as a manifest event when it names no blob media type.
        if let mediaType = event.target.mediaType { return manifestMediaTypes.contains(mediaType) }
        return event.action == "delete" && event.target.digest != nil
    }
}
