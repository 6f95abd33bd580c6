import Foundation
import GantryTesting
import NIOHTTP1
import Testing

/// Ingestion honours discovery's network-access mode: a private registry without trusted access is not
/// applicable, so its pushes are recorded but never sent for scanning (and so never billed).
@Suite("Ingestion and not-applicable registries")
struct NotApplicableRegistryTests {
    @Test("pushes to a privateNoAccess registry request no scan, while the public registry's do",
          .enabled(if: Corpus.isAvailable, "the test corpus (../shared/corpus) is missing"))
    func privateNoAccessRequestsNoScan() async throws {
        let sample = try String(contentsOf: try Corpus.file(
            "4-registry-payloads/distribution-notifications/event-envelope-push-3-events.json"), encoding: .utf8)
        try await IngestionHarness.run(loginServer: "registrycluster.local") { h in
            let registries = "\(h.discovery)/v1/tenants/\(h.tenantID)/subscriptions/\(h.subscriptionID)/registries"
            let registered = try await TestHTTP.json(.POST, registries, ["loginServer": "private.example.com",
                                                                         "networkAccess": "privateNoAccess"])
            try #require(registered.status == 201, "\(registered.text)")
            #expect(try registered.object()["applicable"] as? Bool == false)

            let closed = try await h.post(Data(sample.replacingOccurrences(of: "registrycluster.local", with: "private.example.com").utf8))
            #expect(closed.status == 202, "\(closed.text)")
            try await h.processed()
            #expect(try await h.outbox().isEmpty, "no scan request for the not-applicable registry")

            let open = try await h.post(Data(sample.utf8))
            #expect(open.status == 202, "\(open.text)")
            try await h.processed()
            let payloads = try await h.outbox().map { String(decoding: Data($0.payload.utf8), as: UTF8.self) }
            #expect(payloads.count == 1)
            #expect(payloads.allSatisfy { $0.contains(h.registryID) })
        }
    }
}
