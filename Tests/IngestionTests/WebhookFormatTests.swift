import Foundation
import GantryRuntime
import GantryTesting
import NIOHTTP1
import Testing

/// ACR and Harbor webhooks, from the real samples in the corpus (`4-registry-payloads`), through the real
/// ingestion service on a real PostgreSQL database.
@Suite("Ingestion webhook formats", .enabled(if: Corpus.isAvailable, "the test corpus (../shared/corpus) is missing"))
struct WebhookFormatTests {
    static func sample(_ path: String) throws -> Data {
        try Data(contentsOf: try Corpus.file("4-registry-payloads/\(path)"))
    }

    static func json(_ path: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: try sample(path)) as? [String: Any])
    }

    @Test("ACR push (2017 reference sample): recorded, a push scan requested with the tag; redelivery is a duplicate")
    func acrPush() async throws {
        try await IngestionHarness.run(loginServer: "myregistry.azurecr.io") { h in
            let body = try Self.sample("acr-webhooks/acr-push.2017-doc.json")
            #expect(try h.receipt(try await h.post(body, contentType: "application/json", kind: "acr")) == [1, 1, 0, 0])
            try await h.processed()
            let rows = try await h.outbox()
            #expect(rows.map(\.messageID) == ["scan-request:\(h.registryID):cb8c3971-9adc-488b-bdd8-43cbb4974ff5"])
            let payload = try #require(try JSONSerialization.jsonObject(with: Data(rows[0].payload.utf8)) as? [String: Any])
            #expect(payload["digest"] as? String == "sha256:80f0d5c8786bb9e621a45ece0db56d11cdc624ad20da9fe62e9d25490f331d7d")
            #expect(payload["repository"] as? String == "hello-world")
            #expect(payload["tag"] as? String == "v1")
            #expect(payload["trigger"] as? String == "push")
            let listed = try await TestHTTP.send(.GET, "\(h.ingestion)/v1/events?registryId=\(h.registryID)")
            let item = try #require((try listed.object()["items"] as? [[String: Any]])?.first)
            #expect(item["source"] as? String == "acr")
            #expect(item["outcome"] as? String == "scan requested")
            #expect(item["occurredAt"] as? String == "2017-11-17T16:52:01Z")

            #expect(try h.receipt(try await h.post(body, contentType: "application/json", kind: "acr")) == [1, 0, 1, 0])
            try await h.processed()
            #expect(try await h.written() == [1, 1])
        }
    }

    @Test("ACR delete after push: the image is deleted and the scanner told, through the outbox")
    func acrDelete() async throws {
        try await IngestionHarness.run(loginServer: "myregistry.azurecr.io") { h in
            _ = try h.receipt(try await h.post(try Self.sample("acr-webhooks/acr-push.2017-doc.json"),
                                               contentType: "application/json", kind: "acr"))
            #expect(try h.receipt(try await h.post(try Self.sample("acr-webhooks/acr-delete.2017-doc.json"),
                                                   contentType: "application/json", kind: "acr")) == [1, 1, 0, 0])
            try await h.processed()
            let rows = try await h.outbox()
            #expect(rows.map(\.path) == ["/internal/v1/scans", "/internal/v1/images/deletions"])
            let deletion = try #require(try JSONSerialization.jsonObject(with: Data(rows[1].payload.utf8)) as? [String: Any])
            #expect(deletion["messageId"] as? String == "image-deletion:\(h.registryID):afc359ce-df7f-4e32-bdde-1ff8aa80927b")
            #expect(deletion["digest"] as? String == "sha256:80f0d5c8786bb9e621a45ece0db56d11cdc624ad20da9fe62e9d25490f331d7d")
            #expect(deletion["registryHost"] as? String == "myregistry.azurecr.io")
            #expect(deletion["deletedAt"] as? String == "2017-11-17T16:54:53Z")
            #expect(try await h.images().isEmpty)
            let all = try await h.images(includeDeleted: true)
            #expect(all.count == 1)
            #expect(all.first?["deletedAt"] as? String == "2017-11-17T16:54:53Z")
            #expect(all.first?["tags"] as? [String] == [])
        }
    }

    @Test("ACR quarantine: the documented sample (truncated digest) is 400; a complete one is scanned like a push")
    func acrQuarantine() async throws {
        try await IngestionHarness.run(loginServer: "myregistry.azurecr.io") { h in
            let sample = try Self.sample("acr-webhooks/acr-quarantine.json")
            let detail = try expectProblem(try await h.post(sample, contentType: "application/json", kind: "acr"), status: 400)
            #expect(detail.contains("event.target.digest"), "\(detail)")
            var event = try Self.json("acr-webhooks/acr-quarantine.json")
            var target = try #require(event["target"] as? [String: Any])
            target["digest"] = IngestionHarness.digest("9e")
            event["target"] = target
            event["request"] = ["id": "978fc988", "host": "myregistry.azurecr.io", "method": "PUT"]
            let body = try JSONSerialization.data(withJSONObject: event)
            #expect(try h.receipt(try await h.post(body, contentType: "application/json", kind: "acr")) == [1, 1, 0, 0])
            try await h.processed()
            #expect(try await h.recordedEvents() == ["0d799b14-404b-4859-b2f6-50c5ee2a2c3a push \(IngestionHarness.digest("9e")) true"])
        }
    }

    @Test("ACR samples Microsoft redacted (digests with xxxx) are 400 naming the digest; Helm chart events are ignored",
          arguments: ["acr-push.2023-doc.json", "acr-delete.2023-doc.json"])
    func acrRedacted(_ file: String) async throws {
        try await IngestionHarness.run(loginServer: "myregistry.azurecr.io") { h in
            let reply = try await h.post(try Self.sample("acr-webhooks/\(file)"), contentType: "application/json", kind: "acr")
            #expect(try expectProblem(reply, status: 400).contains("target.digest"))
            var chart = try Self.json("acr-webhooks/acr-chart_push.2023-doc.json")
            chart["request"] = ["host": "myregistry.azurecr.io"]
            let ignored = try await h.post(try JSONSerialization.data(withJSONObject: chart), contentType: "application/json", kind: "acr")
            #expect(try h.receipt(ignored) == [1, 0, 0, 1])
            #expect(try await h.written() == [0, 0])
        }
    }

    @Test("Harbor default format: push (digest in the tag field is no tag), pull, delete; idempotent by the derived ID")
    func harborDefault() async throws {
        try await IngestionHarness.run(loginServer: "localhost") { h in
            let push = try Self.sample("harbor-webhooks/artifact-pushed.default.json")
            #expect(try h.receipt(try await h.post(push, contentType: "application/json", kind: "harbor")) == [1, 1, 0, 0])
            #expect(try h.receipt(try await h.post(push, contentType: "application/json", kind: "harbor")) == [1, 0, 1, 0])
            let pull = try Self.sample("harbor-webhooks/artifact-pulled.default.json")
            #expect(try h.receipt(try await h.post(pull, contentType: "application/json", kind: "harbor")) == [1, 1, 0, 0])
            try await h.processed()
            let digest = "sha256:954b378c375d852eb3c63ab88978f640b4348b01c1b3456a024a81536dafbbf4"
            let rows = try await h.outbox()
            #expect(rows.count == 1)
            let payload = try #require(try JSONSerialization.jsonObject(with: Data(rows[0].payload.utf8)) as? [String: Any])
            #expect(payload["digest"] as? String == digest)
            #expect(payload["repository"] as? String == "harbor/alpine")
            #expect(payload["tag"] == nil)
            let images = try await h.images()
            #expect(images.count == 1)
            #expect(images.first?["lastPushedAt"] as? String == "2023-04-03T06:04:53Z")
            #expect(images.first?["lastPulledAt"] as? String == "2023-04-03T06:12:52Z")
            let events = try await h.recordedEvents()
            #expect(events.count == 2)
            #expect(events.allSatisfy { $0.hasPrefix("harbor-") })
        }
    }

    @Test("Harbor CloudEvents: push (the documented sample without its // comments), delete; idempotent by id")
    func harborCloudEvents() async throws {
        try await IngestionHarness.run(loginServer: "localhost") { h in
            // The documentation annotates the payload with // comments; Harbor sends plain JSON.
            let annotated = String(decoding: try Self.sample("harbor-webhooks/artifact-pushed.cloudevents.json"), as: UTF8.self)
            let push = Data(annotated.split(separator: "\n").filter { !$0.trimmingCharacters(in: .whitespaces).hasPrefix("//") }
                .joined(separator: "\n").utf8)
            let contentType = "application/cloudevents+json"
            #expect(try h.receipt(try await h.post(push, contentType: contentType, kind: "harbor")) == [1, 1, 0, 0])
            #expect(try h.receipt(try await h.post(push, contentType: contentType, kind: "harbor")) == [1, 0, 1, 0])
            try await h.processed()
            #expect(try await h.recordedEvents() == [
                "66e18103-09c1-41f6-982f-37df223f3eeb push sha256:954b378c375d852eb3c63ab88978f640b4348b01c1b3456a024a81536dafbbf4 true",
            ])
            // Deleting another digest (the sample's) that was never pushed: recorded, nothing to delete.
            let delete = try Self.sample("harbor-webhooks/artifact-deleted.cloudevents.json")
            #expect(try h.receipt(try await h.post(delete, contentType: contentType, kind: "harbor")) == [1, 1, 0, 0])
            try await h.processed()
            #expect(try await h.outcomes()["343f1623-7cba-487c-88f1-c5ebf55e93aa"] == "image deleted")
            // A delete names a manifest: the scanner is told even though ingestion never saw the push.
            #expect(try await h.outbox().map(\.path) == ["/internal/v1/scans", "/internal/v1/images/deletions"])
        }
    }

    @Test("Harbor's malformed sample (missing comma) is 400 and writes nothing; scanning and quota events are ignored")
    func harborMalformedAndIgnored() async throws {
        try await IngestionHarness.run(loginServer: "localhost") { h in
            let malformed = try await h.post(try Self.sample("harbor-webhooks/artifact-pulled.cloudevents.json"),
                                             contentType: "application/cloudevents+json", kind: "harbor")
            try expectProblem(malformed, status: 400)
            for file in ["scanning-completed.default.json", "scanning-failed.cloudevents.json", "quota-exceeded.default.json",
                         "replication-status-changed.cloudevents.json", "tag-retention-finished.default.json"] {
                let reply = try await h.post(try Self.sample("harbor-webhooks/\(file)"),
                                             contentType: file.contains("cloudevents") ? "application/cloudevents+json" : "application/json",
                                             kind: "harbor")
                #expect(reply.status == 202, "\(file): \(reply.text)")
                let receipt = try reply.object()
                #expect(receipt["recorded"] as? Int == 0, "\(file)")
                #expect((receipt["ignored"] as? Int ?? 0) >= 1, "\(file)")
            }
            #expect(try await h.written() == [0, 0])
        }
    }

    @Test("invalid Harbor webhooks are 400 naming the field, nothing written",
          arguments: ["no type", "no resources", "bad digest", "no resource_url", "bad repository", "two hosts", "bad specversion"])
    func harborInvalid(_ name: String) async throws {
        try await IngestionHarness.run(loginServer: "localhost") { h in
            var body = try Self.json("harbor-webhooks/artifact-pushed.default.json")
            var data = try #require(body["event_data"] as? [String: Any])
            var resources = try #require(data["resources"] as? [[String: Any]])
            var expected = ""
            switch name {
            case "no type": body["type"] = nil; expected = "type"
            case "no resources": resources = []; expected = "resources"
            case "bad digest": resources[0]["digest"] = "sha256:zz"; expected = "event_data.resources[0].digest"
            case "no resource_url": resources[0]["resource_url"] = nil; expected = "resource_url"
            case "bad repository":
                data["repository"] = ["repo_full_name": "Harbor/../x"]; expected = "repo_full_name"
            case "two hosts":
                resources.append(["digest": IngestionHarness.digest("ab"), "resource_url": "other.example.com/harbor/alpine:1"])
                expected = "more than one registry host"
            case "bad specversion": body["specversion"] = "0.3"; body["id"] = "x"; expected = "specversion"
            default: Issue.record("unknown case \(name)")
            }
            data["resources"] = resources
            body["event_data"] = data
            let reply = try await h.post(try JSONSerialization.data(withJSONObject: body), contentType: "application/json", kind: "harbor")
            #expect(try expectProblem(reply, status: 400).contains(expected), "\(name)")
            #expect(try await h.written() == [0, 0])
        }
    }
}
