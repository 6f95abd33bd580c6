import Foundation
import GantryTesting
@testable import Ingestion
import Testing
import Yams

/// `WebhookRoutes` serves three operations of ingestion.yaml outside the generated server; its paths, operation IDs
/// and media types must stay those of the contract.
@Suite struct WebhookRoutesContractTests {
    @Test("each webhook route has the path, operation ID and request media types ingestion.yaml gives it, and 202/413/415")
    func routesMatchTheContract() throws {
        let file = Corpus.repositoryRoot.appendingPathComponent("Shared/Contracts/specs/ingestion.yaml")
        let document = try #require(try Yams.load(yaml: String(contentsOf: file, encoding: .utf8)) as? [String: Any])
        let paths = try #require(document["paths"] as? [String: Any])
        var documented: [String] = []
        for (path, item) in paths {
            guard let post = (item as? [String: Any])?["post"] as? [String: Any],
                  (post["operationId"] as? String)?.hasPrefix("receive") == true else { continue }
            documented.append(path)
        }
        #expect(Set(documented) == Set(WebhookRoutes.operations.map(\.path)), "webhook operations in the spec: \(documented)")
        for operation in WebhookRoutes.operations {
            let post = try #require((paths[operation.path] as? [String: Any])?["post"] as? [String: Any], "\(operation.path)")
            #expect(post["operationId"] as? String == operation.operationID)
            let content = try #require((post["requestBody"] as? [String: Any])?["content"] as? [String: Any])
            #expect(Set(content.keys) == Set(operation.mediaTypes), "\(operation.operationID)")
            let responses = try #require(post["responses"] as? [String: Any])
            #expect(Set(["202", "400", "401", "404", "413", "415"]).isSubset(of: Set(responses.keys)), "\(operation.operationID)")
        }
    }
}
