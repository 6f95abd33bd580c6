import Foundation
import GantryRuntime
import GantryTesting
import NIOHTTP1
import Testing

/// Ingestion (with discovery beside it) run in-process on a real PostgreSQL database, called over HTTP.
@Suite("Ingestion service")
struct IngestionServiceTests {
    static let corpusDigest = "sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf"

    @Test("distribution's documented push envelope: one manifest scan requested through the outbox; redelivery is a duplicate",
          .enabled(if: Corpus.isAvailable, "the test corpus (../shared/corpus) is missing"))
    func corpusPushEnvelope() async throws {
        // The sample's events all name request.host "registrycluster.local", registered here as is.
        let envelope = try Data(contentsOf: try Corpus.file(
            "4-registry-payloads/distribution-notifications/event-envelope-push-3-events.json"))
        try await IngestionHarness.run(loginServer: "registrycluster.local") { h in
            let first = try await h.post(envelope)
            #expect(try h.receipt(first) == [3, 1, 0, 2])
            try await h.processed()

            let rows = try await h.outbox()
            #expect(rows.count == 1)
            let row = try #require(rows.first)
            #expect(row.destination == "scanner")
            #expect(row.path == "/internal/v1/scans")
            #expect(row.messageID == "scan-request:\(h.registryID):asdf-asdf-asdf-asdf-0")
            #expect(!row.delivered)
            let payload = try #require(try JSONSerialization.jsonObject(with: Data(row.payload.utf8)) as? [String: Any])
            #expect(payload["messageId"] as? String == "scan-request:\(h.registryID):asdf-asdf-asdf-asdf-0")
            #expect(payload["digest"] as? String == Self.corpusDigest)
            #expect(payload["repository"] as? String == "library/test")
            #expect(payload["trigger"] as? String == "push")
            #expect(payload["tenantId"] as? String == h.tenantID)
            #expect(payload["subscriptionId"] as? String == h.subscriptionID)
            #expect(payload["registryId"] as? String == h.registryID)
            #expect(payload["tag"] == nil)
            #expect(try await h.recordedEvents() == ["asdf-asdf-asdf-asdf-0 push \(Self.corpusDigest) true"])

            // Delivered again (distribution retries until it gets a 2xx): counted as a duplicate, nothing new.
            let again = try await h.post(envelope)
            #expect(try h.receipt(again) == [3, 0, 1, 2])
            try await h.processed()
            #expect(try await h.outbox().map(\.messageID) == ["scan-request:\(h.registryID):asdf-asdf-asdf-asdf-0"])
            #expect(try await h.written() == [1, 1])

            // The recorded event is listed for its registry.
            let listed = try await TestHTTP.send(.GET, "\(h.ingestion)/v1/events?registryId=\(h.registryID)")
            #expect(listed.status == 200, "\(listed.text)")
            let items = try #require(try listed.object()["items"] as? [[String: Any]])
            #expect(items.count == 1)
            #expect(items.first?["eventId"] as? String == "asdf-asdf-asdf-asdf-0")
            #expect(items.first?["scanRequested"] as? Bool == true)
            #expect(items.first?["mediaType"] as? String == "application/vnd.docker.distribution.manifest.v2+json")
        }
    }

    @Test("distribution's documented pull envelope, pointed at the registered host: recorded, no scan",
          .enabled(if: Corpus.isAvailable, "the test corpus (../shared/corpus) is missing"))
    func corpusPullEnvelope() async throws {
        let sample = try String(contentsOf: try Corpus.file(
            "4-registry-payloads/distribution-notifications/event-envelope-pull-manifest.json"), encoding: .utf8)
        // The sample's registry is on a private address, which discovery refuses; loopback stands in for it.
        let envelope = sample.replacingOccurrences(of: "192.168.100.227:5000", with: "127.0.0.1:5000")
        #expect(envelope != sample)
        try await IngestionHarness.run(loginServer: "127.0.0.1:5000") { h in
            let reply = try await h.post(Data(envelope.utf8), contentType: "application/json")
            #expect(try h.receipt(reply) == [1, 1, 0, 0])
            try await h.processed()
            #expect(try await h.recordedEvents() == ["320678d8-ca14-430f-8bb6-4ca139cd83f7 pull \(Self.corpusDigest) false"])
            #expect(try await h.outbox().isEmpty)
        }
    }

    @Test("a manifest delete carrying only digest and repository (distribution's delete target) is recorded without a scan",
          .enabled(if: Corpus.isAvailable, "the test corpus (../shared/corpus) is missing"))
    func corpusDeleteTarget() async throws {
        try await IngestionHarness.run { h in
            let sample = try JSONSerialization.jsonObject(with: Data(contentsOf: try Corpus.file(
                "4-registry-payloads/distribution-notifications/event-target-delete.json")))
            let target = try #require(sample as? [String: Any])
            let event: [String: Any] = ["id": "delete-1", "timestamp": "2024-05-01T10:00:00Z", "action": "delete",
                                        "target": try #require(target["target"]),
                                        "request": ["host": h.loginServer, "method": "DELETE"]]
            let reply = try await h.post(events: [event])
            #expect(try h.receipt(reply) == [1, 1, 0, 0])
            try await h.processed()
            #expect(try await h.outcomes()["delete-1"] == "ignored: no image with this digest is known")
            #expect(try await h.recordedEvents()
                    == ["delete-1 delete sha256:d89e1bee20d9cb344674e213b581f14fbd8e70274ecf9d10c514bab78a307845 false"])
            #expect(try await h.outbox().isEmpty)
        }
    }

    @Test("blob events are ignored: 202 with nothing recorded")
    func blobEventsIgnored() async throws {
        try await IngestionHarness.run { h in
            let layers = [
                h.event(mediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip", digest: IngestionHarness.digest("01"), tag: nil),
                h.event(mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: IngestionHarness.digest("02"), tag: nil),
                h.event(action: "mount", mediaType: "application/vnd.oci.image.config.v1+json", digest: IngestionHarness.digest("03"), tag: nil),
            ]
            let reply = try await h.post(events: layers)
            #expect(try h.receipt(reply) == [3, 0, 0, 3])
            #expect(try await h.written() == [0, 0])
        }
    }

    @Test("several manifest pushes in one envelope each request a scan; a pull beside them does not")
    func severalManifests() async throws {
        try await IngestionHarness.run { h in
            let events = [
                h.event(id: "m1", mediaType: "application/vnd.oci.image.index.v1+json", digest: IngestionHarness.digest("11")),
                h.event(id: "m2", mediaType: "application/vnd.oci.image.manifest.v1+json", digest: IngestionHarness.digest("22"),
                        repository: "team/other", tag: nil),
                h.event(id: "m3", action: "pull", digest: IngestionHarness.digest("11")),
                h.event(id: "b1", mediaType: "application/octet-stream", digest: IngestionHarness.digest("33")),
            ]
            let reply = try await h.post(events: events, contentType: "application/json")
            #expect(try h.receipt(reply) == [4, 3, 0, 1])
            try await h.processed()
            let rows = try await h.outbox()
            #expect(rows.map(\.messageID) == ["scan-request:\(h.registryID):m1", "scan-request:\(h.registryID):m2"])
            #expect(rows.allSatisfy { $0.destination == "scanner" && $0.path == "/internal/v1/scans" })
            let payloads = try rows.map { try #require(try JSONSerialization.jsonObject(with: Data($0.payload.utf8)) as? [String: Any]) }
            #expect(payloads.map { $0["digest"] as? String } == [IngestionHarness.digest("11"), IngestionHarness.digest("22")])
            #expect(payloads.map { $0["repository"] as? String } == ["team/app", "team/other"])
            #expect(payloads.map { $0["tag"] as? String } == ["1.0", nil])
            #expect(try await h.recordedEvents() == [
                "m1 push \(IngestionHarness.digest("11")) true",
                "m2 push \(IngestionHarness.digest("22")) true",
                "m3 pull \(IngestionHarness.digest("11")) false",
            ])
        }
    }

    @Test("with the plan disabled, a manifest push is recorded but no scan is requested")
    func planDisabled() async throws {
        try await IngestionHarness.run(planEnabled: false) { h in
            let reply = try await h.post(events: [h.event(id: "p1")])
            #expect(try h.receipt(reply) == [1, 1, 0, 0])
            try await h.processed()
            #expect(try await h.recordedEvents() == ["p1 push \(IngestionHarness.digest("ab")) false"])
            #expect(try await h.outbox().isEmpty)
        }
    }

    @Test("the registry is found from target.url when the events carry no request.host")
    func hostFromTargetURL() async throws {
        try await IngestionHarness.run(loginServer: "127.0.0.1:5000") { h in
            var event = h.event(id: "u1")
            event["request"] = nil
            #expect((event["target"] as? [String: Any])?["url"] as? String
                    == "https://127.0.0.1:5000/v2/team/app/manifests/\(IngestionHarness.digest("ab"))")
            let reply = try await h.post(events: [event])
            #expect(try h.receipt(reply) == [1, 1, 0, 0])
            try await h.processed()
            #expect(try await h.outbox().map(\.messageID) == ["scan-request:\(h.registryID):u1"])
        }
    }

    @Test("two registries that send the same event IDs each get their events recorded and scanned",
          .enabled(if: Corpus.isAvailable, "the test corpus (../shared/corpus) is missing"))
    func eventIDsArePerRegistry() async throws {
        // Event IDs are the sending registry's; every registry that posts distribution's documented sample
        // uses the same ones. One registry's events must not shadow another tenant's.
        let sample = try String(contentsOf: try Corpus.file(
            "4-registry-payloads/distribution-notifications/event-envelope-push-3-events.json"), encoding: .utf8)
        try await IngestionHarness.run(loginServer: "registrycluster.local") { h in
            let secondID = try await h.secondTenant(loginServer: "second.example.com").registry

            let first = try await h.post(Data(sample.utf8))
            #expect(try h.receipt(first) == [3, 1, 0, 2])
            let second = try await h.post(Data(sample.replacingOccurrences(of: "registrycluster.local", with: "second.example.com").utf8))
            #expect(second.status == 202, "\(second.text)")
            let receipt = try second.object()
            #expect(receipt["registryId"] as? String == secondID)
            #expect(["received", "recorded", "duplicates", "ignored"].map { receipt[$0] as? Int } == [3, 1, 0, 2])
            try await h.processed()

            let rows = try await h.outbox()
            #expect(rows.count == 2)
            let payloads = try rows.map { try #require(try JSONSerialization.jsonObject(with: Data($0.payload.utf8)) as? [String: Any]) }
            #expect(Set(payloads.compactMap { $0["registryId"] as? String }) == [h.registryID, secondID])
            #expect(Set(rows.map(\.messageID)).count == 2)
            #expect(try await h.written() == [2, 2])
        }
    }

    @Test("an event ID of the maximum length (200) still yields a scan request the scanner accepts (messageId ≤ 200)")
    func longEventID() async throws {
        try await IngestionHarness.run { h in
            let id = String(repeating: "e", count: 200)
            let reply = try await h.post(events: [h.event(id: id)])
            #expect(try h.receipt(reply) == [1, 1, 0, 0])
            try await h.processed()
            let row = try #require(try await h.outbox().first)
            // scanner.yaml, ScanRequest.messageId: minLength 1, maxLength 200.
            #expect((1...200).contains(row.messageID.count), "\(row.messageID.count) characters")
            let payload = try #require(try JSONSerialization.jsonObject(with: Data(row.payload.utf8)) as? [String: Any])
            #expect(payload["messageId"] as? String == row.messageID)
            // Redelivered: still one request.
            let again = try await h.post(events: [h.event(id: id)])
            #expect(try h.receipt(again) == [1, 0, 1, 0])
            try await h.processed()
            #expect(try await h.written() == [1, 1])
        }
    }

    @Test("events from an unregistered registry host are 404 and nothing is written")
    func unknownRegistry() async throws {
        try await IngestionHarness.run { h in
            let reply = try await h.post(events: [h.event(host: "unknown.example.com")])
            #expect(try expectProblem(reply, status: 404).contains("unknown.example.com"))
            #expect(try await h.written() == [0, 0])
        }
    }

    @Test("invalid envelopes are 400 problem+json with a detail and leave nothing written",
          arguments: [
              "malformed JSON", "missing events", "no events", "bad digest", "bad action", "push without digest",
              "bad repository", "two hosts", "no host", "event without id", "events not an array",
          ])
    func invalidEnvelope(_ name: String) async throws {
        try await IngestionHarness.run { h in
            // A valid manifest push rides along where possible: validation must reject the whole envelope.
            let valid = h.event(id: "valid-1")
            var events: [[String: Any]]? = nil
            var raw: Data? = nil
            var expected = ""
            switch name {
            case "malformed JSON":
                raw = Data(#"{"events": [{"id": "x", "action": "push""#.utf8)
                expected = "malformed JSON"
            case "missing events":
                raw = Data(#"{"evnts": []}"#.utf8)
                expected = "events"
            case "no events":
                events = []
                expected = "no events"
            case "bad digest":
                events = [valid, h.event(digest: "sha256:not-hex")]
                expected = "events[1].target.digest"
            case "bad action":
                events = [valid, h.event(action: "tag")]
                expected = "events[1].action"
            case "push without digest":
                events = [valid, h.event(digest: nil)]
                expected = "events[1]"
            case "bad repository":
                events = [valid, h.event(repository: "Team/../App")]
                expected = "events[1].target.repository"
            case "two hosts":
                events = [valid, h.event(host: "other.example.com")]
                expected = "host"
            case "no host":
                var event = h.event(digest: nil)
                event["request"] = nil
                events = [event]
                expected = "host"
            case "event without id":
                var event = h.event()
                event["id"] = nil
                events = [valid, event]
                expected = "id"
            case "events not an array":
                raw = Data(#"{"events": {"id": "x"}}"#.utf8)
                expected = "events"
            default:
                Issue.record("unknown case \(name)")
                return
            }
            let before = try await h.written()
            #expect(before == [0, 0])
            let reply = if let events { try await h.post(events: events) } else { try await h.post(raw ?? Data()) }
            let detail = try expectProblem(reply, status: 400)
            #expect(detail.contains(expected), "\(name): \(detail)")
            #expect(try await h.written() == before, "\(name) wrote rows")
        }
    }

    @Test("both application/json and application/vnd.docker.distribution.events.v1+json are accepted")
    func contentTypes() async throws {
        try await IngestionHarness.run { h in
            let vendor = try await h.post(events: [h.event(id: "c1", digest: IngestionHarness.digest("c1"))],
                                          contentType: "application/vnd.docker.distribution.events.v1+json")
            #expect(try h.receipt(vendor) == [1, 1, 0, 0])
            let json = try await h.post(events: [h.event(id: "c2", digest: IngestionHarness.digest("c2"))],
                                        contentType: "application/json; charset=utf-8")
            #expect(try h.receipt(json) == [1, 1, 0, 0])
            try await h.processed()
            #expect(try await h.outbox().map(\.messageID) == ["scan-request:\(h.registryID):c1", "scan-request:\(h.registryID):c2"])
            let plain = try await h.post(events: [h.event(id: "c3", digest: IngestionHarness.digest("c3"))],
                                         contentType: "text/plain")
            let detail = try expectProblem(plain, status: 415)
            #expect(detail.components(separatedBy: "text/plain").count == 2, "said once: \(detail)")
            #expect(detail.contains("application/vnd.docker.distribution.events.v2+json"), "names what is accepted: \(detail)")
            // Parameters and case do not matter; no Content-Type at all is refused like a wrong one.
            let upper = try await h.post(events: [h.event(id: "c4", digest: IngestionHarness.digest("c4"))],
                                         contentType: "Application/VND.Docker.Distribution.Events.V1+JSON ; charset=utf-8")
            #expect(try h.receipt(upper) == [1, 1, 0, 0])
            let missing = try await h.post(events: [h.event(id: "c5", digest: IngestionHarness.digest("c5"))], contentType: nil)
            #expect(try expectProblem(missing, status: 415).contains("Content-Type missing"))
            try await h.processed()
            #expect(try await h.written() == [3, 3])
        }
    }

    @Test("the documented notification request, headers and all (distribution 3 sends events.v2+json)",
          .enabled(if: Corpus.isAvailable, "the test corpus (../shared/corpus) is missing"))
    func corpusRawRequest() async throws {
        let raw = try String(contentsOf: try Corpus.file(
            "4-registry-payloads/distribution-notifications/event-envelope-push-http-request.txt"), encoding: .utf8)
        let parts = raw.components(separatedBy: "\n\n")
        let headers = try #require(parts.first).split(separator: "\n")
        let contentType = try #require(headers.first { $0.lowercased().hasPrefix("content-type:") })
            .dropFirst("content-type:".count).trimmingCharacters(in: .whitespaces)
        #expect(contentType == "application/vnd.docker.distribution.events.v2+json")
        let body = Data(parts.dropFirst().joined(separator: "\n\n").utf8)
        try await IngestionHarness.run(loginServer: "registrycluster.local") { h in
            let reply = try await h.post(body, contentType: contentType)
            // Distribution 3 sends the v2 envelope media type (2.8 sends v1); ingestion.yaml accepts both.
            #expect(reply.status == 202, "\(reply.text)")
            #expect(try h.receipt(reply) == [3, 1, 0, 2])
            // The same body as application/json is a duplicate of what was recorded.
            let json = try await h.post(body, contentType: "application/json")
            #expect(try h.receipt(json) == [3, 0, 1, 2])
        }
    }
}
