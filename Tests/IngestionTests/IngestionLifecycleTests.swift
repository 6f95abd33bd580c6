import Foundation
import GantryRuntime
import GantryTesting
@testable import Ingestion
import NIOHTTP1
import PostgresNIO
import Testing

/// Webhook secrets, the image inventory the events build, deletions and the recently-pulled rescan,
/// through ingestion's HTTP API on a real PostgreSQL database (discovery running beside it).
@Suite("Ingestion lifecycle")
struct IngestionLifecycleTests {
    @Test("a registry with a webhook secret: no or a wrong Authorization is 401 and writes nothing; Bearer or the bare secret is accepted")
    func webhookSecret() async throws {
        try await IngestionHarness.run { h in
            let secret = try await h.setSecret()
            #expect(secret.count >= 43)
            let event = h.event(id: "s1")
            let missing = try await h.post(events: [event])
            #expect(try expectProblem(missing, status: 401).contains("Authorization"))
            let wrong = try await h.post(events: [event], authorization: "Bearer not-the-secret")
            #expect(try expectProblem(wrong, status: 401).contains("does not match"))
            for refused in [missing, wrong] {
                #expect(refused.header("WWW-Authenticate") == #"Bearer realm="gantry-webhooks""#)
            }
            #expect(try await h.written() == [0, 0])
            #expect(try h.receipt(try await h.post(events: [event], authorization: "Bearer \(secret)")) == [1, 1, 0, 0])
            // Harbor sends its auth header verbatim.
            #expect(try h.receipt(try await h.post(events: [h.event(id: "s2", digest: IngestionHarness.digest("5e"))],
                                                   authorization: secret)) == [1, 1, 0, 0])
            // Rotation: the old secret stops working at once.
            let chosen = String(repeating: "k", count: 40)
            #expect(try await h.setSecret(chosen) == chosen)
            try expectProblem(try await h.post(events: [h.event(id: "s3")], authorization: "Bearer \(secret)"), status: 401)
            #expect(try h.receipt(try await h.post(events: [h.event(id: "s3")], authorization: "bearer \(chosen)")) == [1, 1, 0, 0])
            // Only its SHA-256 is stored.
            let stored = try await h.database.withSystemAccess { client in
                var values: [String] = []
                for try await value in try await client.query("SELECT secret_sha256 FROM ingestion.webhook_secrets").decode(String.self) {
                    values.append(value)
                }
                return values
            }
            #expect(stored == [Checksum.sha256Hex(Array(chosen.utf8))])
        }
    }

    @Test("an empty body is no body: PUT webhook-secret without one generates a secret; a required body sent empty is 400 'missing'")
    func emptyBodies() async throws {
        try await IngestionHarness.run { h in
            let url = "\(h.ingestion)/v1/tenants/\(h.tenantID)/registries/\(h.registryID)/webhook-secret"
            for headers in [[:], ["Content-Type": "application/json"]] {
                let reply = try await TestHTTP.send(.PUT, url, body: nil, headers: headers)
                #expect(reply.status == 200, "\(headers): \(reply.text)")
                #expect((try reply.object()["secret"] as? String)?.count ?? 0 >= 32, "\(reply.text)")
            }
            let missing = try await TestHTTP.send(.POST, "\(h.ingestion)/v1/tenants/\(h.tenantID)/registries/\(h.registryID)/imports",
                                                  body: Data())
            #expect(try expectProblem(missing, status: 400).lowercased().contains("missing required request body"), "\(missing.text)")
        }
    }

    @Test("setting a secret: too short, another tenant's registry, an unknown registry are refused")
    func webhookSecretErrors() async throws {
        try await IngestionHarness.run { h in
            let short = try await TestHTTP.json(
                .PUT, "\(h.ingestion)/v1/tenants/\(h.tenantID)/registries/\(h.registryID)/webhook-secret", ["secret": "short"])
            #expect(try expectProblem(short, status: 400).contains("32 to 200"))
            let otherTenant = try await TestHTTP.json(
                .PUT, "\(h.ingestion)/v1/tenants/\(UUID().uuidString)/registries/\(h.registryID)/webhook-secret", [:])
            try expectProblem(otherTenant, status: 404)
            let unknown = try await TestHTTP.json(
                .PUT, "\(h.ingestion)/v1/tenants/\(h.tenantID)/registries/\(UUID().uuidString)/webhook-secret", [:])
            try expectProblem(unknown, status: 404)
            #expect(try await h.database.withSystemAccess { client in
                var count = -1
                for try await value in try await client.query("SELECT count(*)::int FROM ingestion.webhook_secrets").decode(Int.self) {
                    count = value
                }
                return count
            } == 0)
        }
    }

    @Test("outside the development profile a registry without a secret is refused (401)")
    func secretRequiredInProduction() throws {
        let registration = WebhookRegistration(
            registry: RegisteredRegistry(registryID: UUID(), tenantID: UUID(), subscriptionID: UUID(),
                                         loginServer: "registry.example.com", planEnabled: true),
            secretSHA256: nil)
        #expect(throws: ProblemError.self) { try WebhookSecrets.verify(nil, registration: registration, allowUnset: false) }
        #expect(throws: Never.self) { try WebhookSecrets.verify(nil, registration: registration, allowUnset: true) }
    }

    @Test("100 pushes of one digest request one scan; a tag that moves keeps the old digest listed; tag and manifest deletes")
    func inventoryAndDeletes() async throws {
        try await IngestionHarness.run { h in
            let old = IngestionHarness.digest("0a"), new = IngestionHarness.digest("0b")
            var events = (0..<100).map { h.event(id: "p\($0)", digest: old, tag: "1.0") }
            events.append(h.event(id: "other-tag", digest: old, tag: "stable"))
            #expect(try h.receipt(try await h.post(events: events)) == [101, 101, 0, 0])
            try await h.processed()
            #expect(try await h.outbox().map(\.messageID) == ["scan-request:\(h.registryID):p0"])
            let outcomes = try await h.outcomes()
            #expect(outcomes["p0"] == "scan requested")
            #expect(outcomes["p1"] == "recorded; this digest was already sent for scanning")

            // The tag 1.0 moves to a new digest: the old one stays, pullable by digest, with its other tag.
            _ = try h.receipt(try await h.post(events: [h.event(id: "move", digest: new, tag: "1.0")]))
            try await h.processed()
            var images = try await h.images()
            #expect(images.count == 2)
            #expect(images.first { $0["digest"] as? String == old }?["tags"] as? [String] == ["stable"])
            #expect(images.first { $0["digest"] as? String == new }?["tags"] as? [String] == ["1.0"])

            // A tag delete (distribution sends only repository and tag): the digest stays.
            let tagDelete: [String: Any] = ["id": "untag", "action": "delete", "target": ["repository": "team/app", "tag": "stable"],
                                            "request": ["host": h.loginServer, "method": "DELETE"]]
            #expect(try h.receipt(try await h.post(events: [tagDelete])) == [1, 1, 0, 0])
            try await h.processed()
            images = try await h.images()
            #expect(images.count == 2)
            #expect(images.first { $0["digest"] as? String == old }?["tags"] as? [String] == [])

            // A manifest delete: the image leaves the list and the scanner is told.
            let manifestDelete: [String: Any] = ["id": "rm", "action": "delete", "timestamp": "2024-05-02T08:00:00Z",
                                                 "target": ["repository": "team/app", "digest": old],
                                                 "request": ["host": h.loginServer, "method": "DELETE"]]
            #expect(try h.receipt(try await h.post(events: [manifestDelete])) == [1, 1, 0, 0])
            try await h.processed()
            #expect(try await h.images().map { $0["digest"] as? String } == [new])
            let deletions = try await h.outbox().filter { $0.path == "/internal/v1/images/deletions" }
            #expect(deletions.map(\.messageID) == ["image-deletion:\(h.registryID):rm"])

            // Pushed again after its deletion: a new generation, scanned again.
            _ = try h.receipt(try await h.post(events: [h.event(id: "again", digest: old, tag: "1.1")]))
            try await h.processed()
            #expect(try await h.outbox().filter { $0.path == "/internal/v1/scans" }.map(\.messageID)
                    == ["scan-request:\(h.registryID):p0", "scan-request:\(h.registryID):move", "scan-request:\(h.registryID):again"])
            #expect(try await h.images().count == 2)
        }
    }

    @Test("a push, then a delete of the same digest in one envelope: processed in order, the image ends deleted")
    func orderWithinEnvelope() async throws {
        try await IngestionHarness.run { h in
            let digest = IngestionHarness.digest("0c")
            let delete: [String: Any] = ["id": "a-delete", "action": "delete",
                                         "target": ["repository": "team/app", "digest": digest,
                                                    "mediaType": "application/vnd.oci.image.manifest.v1+json"],
                                         "request": ["host": h.loginServer]]
            _ = try h.receipt(try await h.post(events: [h.event(id: "z-push", digest: digest), delete]))
            try await h.processed()
            #expect(try await h.images().isEmpty)
            #expect(try await h.images(includeDeleted: true).count == 1)
            #expect(try await h.outbox().map(\.path) == ["/internal/v1/scans", "/internal/v1/images/deletions"])
        }
    }

    @Test("recently pulled rescan: only images pulled within the window and not deleted, as trigger rescan; runs are listed")
    func recentlyPulledRescan() async throws {
        try await IngestionHarness.run(environment: ["GANTRY_RESCAN_PULLED_WITHIN_DAYS": "30"]) { h in
            let recent = IngestionHarness.digest("1a"), stale = IngestionHarness.digest("1b")
            let pushedOnly = IngestionHarness.digest("1c"), deleted = IngestionHarness.digest("1d")
            var events: [[String: Any]] = []
            for digest in [recent, stale, pushedOnly, deleted] { events.append(h.event(id: "push-\(digest.suffix(2))", digest: digest)) }
            var pullRecent = h.event(id: "pull-recent", action: "pull", digest: recent)
            pullRecent["timestamp"] = ISO8601DateFormatter().string(from: Date().addingTimeInterval(-86_400))
            var pullStale = h.event(id: "pull-stale", action: "pull", digest: stale)
            pullStale["timestamp"] = ISO8601DateFormatter().string(from: Date().addingTimeInterval(-40 * 86_400))
            let pullDeleted = h.event(id: "pull-deleted", action: "pull", digest: deleted)
            let delete: [String: Any] = ["id": "delete", "action": "delete", "target": ["repository": "team/app", "digest": deleted],
                                         "request": ["host": h.loginServer]]
            events += [pullRecent, pullStale, pullDeleted, delete]
            _ = try h.receipt(try await h.post(events: events))
            try await h.processed()

            let token = try await h.env.tokens(issuer: "gantry-cli").token(for: "ingestion")
            let run = try await TestHTTP.send(.POST, "\(h.ingestion)/internal/v1/rescans",
                                              headers: ["Authorization": "Bearer \(token)"])
            #expect(run.status == 202, "\(run.text)")
            let body = try run.object()
            #expect(body["images"] as? Int == 1)
            #expect(body["reason"] as? String == "request")
            let rescans = try await h.outbox().filter { $0.messageID.hasPrefix("rescan:") }
            #expect(rescans.count == 1)
            let payload = try #require(try JSONSerialization.jsonObject(with: Data(rescans[0].payload.utf8)) as? [String: Any])
            #expect(payload["digest"] as? String == recent)
            #expect(payload["trigger"] as? String == "rescan")
            #expect(payload["tenantId"] as? String == h.tenantID)
            #expect(payload["subscriptionId"] as? String == h.subscriptionID)
            #expect(payload["messageId"] as? String == rescans[0].messageID)

            let unauthorized = try await TestHTTP.send(.POST, "\(h.ingestion)/internal/v1/rescans")
            #expect(unauthorized.status == 401)
            let listed = try await TestHTTP.send(.GET, "\(h.ingestion)/v1/rescans")
            let listing = try listed.object()
            #expect((listing["items"] as? [[String: Any]])?.count == 1)
            #expect(listing["nextRunAt"] is String)
        }
    }

    @Test("event retention: processed events older than GANTRY_EVENT_RETENTION_DAYS are deleted; recent ones, and old ones not yet processed, are kept")
    func eventRetention() async throws {
        try await IngestionHarness.run(environment: ["GANTRY_EVENT_RETENTION_DAYS": "1",
                                                     "GANTRY_EVENT_RETENTION_CHECK_SECONDS": "1"]) { h in
            _ = try h.receipt(try await h.post(events: [h.event(id: "old"), h.event(id: "recent")]))
            try await h.processed()
            @Sendable func remaining() async throws -> [String] {
                try await h.database.withSystemAccess { client in
                    var ids: [String] = []
                    for try await id in try await client.query("SELECT event_id FROM ingestion.events ORDER BY event_id").decode(String.self) {
                        ids.append(id)
                    }
                    return ids
                }
            }
            // The processor's lock held here keeps "pending" unprocessed while its age passes the retention period.
            try await h.database.withClient { client in
                try await client.withTransaction(logger: IngestionHarness.testLogger) { lock in
                    try await lock.query("SELECT pg_advisory_xact_lock(hashtext('gantry.ingestion.events'))",
                                         logger: IngestionHarness.testLogger)
                    _ = try h.receipt(try await h.post(events: [h.event(id: "pending")]))
                    _ = try await h.database.withSystemAccess { client in
                        try await client.query("""
                            UPDATE ingestion.events SET received_at = now() - interval '2 days' WHERE event_id IN ('old', 'pending')
                            """)
                    }
                    _ = try await eventually("the old processed event to be deleted", timeout: .seconds(15)) {
                        try await remaining() == ["pending", "recent"] ? true : nil
                    }
                    try await Task.sleep(for: .seconds(2))
                    #expect(try await remaining() == ["pending", "recent"])
                    #expect(try await h.pendingEvents() == 1)
                }
            }
            // Processed once the lock is gone, then old enough to go.
            _ = try await eventually("the formerly pending event to be processed and deleted", timeout: .seconds(15)) {
                try await remaining() == ["recent"] ? true : nil
            }
        }
    }

    @Test("the weekly schedule: due runs happen once (a second replica's check finds nothing due), then the next is a week on")
    func schedule() async throws {
        try await IngestionHarness.run { h in
            var pull = h.event(id: "pull", action: "pull")
            pull["timestamp"] = ISO8601DateFormatter().string(from: Date())
            _ = try h.receipt(try await h.post(events: [h.event(id: "p"), pull]))
            try await h.processed()
            // The service created the schedule a week ahead; make it due now, as a week later would.
            _ = try await h.database.withClient { client in
                try await client.query("UPDATE ingestion.rescan_schedule SET next_run_at = now() - interval '1 second'")
            }
            let runtime = try await ServiceRuntime(configuration: try h.env.configuration(.ingestion), migrations: [])
            try await withRunningServices([runtime.database], readyPorts: []) {
                let directory = RegistryDirectory(discovery: HTTPDiscoveryPeer(runtime: runtime), database: runtime.database,
                                                  logger: runtime.logger)
                let scheduler = RescanScheduler(runtime: runtime, directory: directory, interval: .seconds(604_800), pulledWithinDays: 30)
                let other = RescanScheduler(runtime: runtime, directory: directory, interval: .seconds(604_800), pulledWithinDays: 30)
                async let first = scheduler.runIfDue()
                async let second = other.runIfDue()
                // The service's own scheduler checks every 30 s and may take this occurrence first.
                let runs = [try await first, try await second].compactMap { $0 }
                #expect(runs.count <= 1)
                #expect(runs.allSatisfy { $0.images == 1 && $0.reason == "schedule" })
                #expect(try await scheduler.runIfDue() == nil)
                let count = try await h.database.withClient { client in
                    var value = -1
                    for try await n in try await client.query("SELECT count(*)::int FROM ingestion.rescan_runs").decode(Int.self) {
                        value = n
                    }
                    return value
                }
                #expect(count == 1)
                let next = try await h.database.withClient { client in
                    var value = Date.distantPast
                    for try await date in try await client.query("SELECT next_run_at FROM ingestion.rescan_schedule").decode(Date.self) {
                        value = date
                    }
                    return value
                }
                #expect(abs(next.timeIntervalSinceNow - 604_800) < 120)
            }
            #expect(try await h.outbox().filter { $0.messageID.hasPrefix("rescan:") }.count == 1)
        }
    }
}
