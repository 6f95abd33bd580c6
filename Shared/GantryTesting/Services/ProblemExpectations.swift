import Foundation
import Testing

extension TestHTTP.Reply {
    /// The body as a JSON object.
    /// - Throws: when the body is not a JSON object (recorded as a test issue with the body).
    package func object() throws -> [String: Any] {
        try #require(try json() as? [String: Any], "not a JSON object: \(text)")
    }
}

/// Checks an RFC 9457 problem response: the status, `application/problem+json`, and a body repeating
/// the status with a non-empty detail whose UUIDs are lower case (RFC 4122, section 3).
/// - Returns: the detail.
@discardableResult
package func expectProblem(_ reply: TestHTTP.Reply, status: Int,
                           sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
    #expect(reply.status == status, "\(reply.text)", sourceLocation: sourceLocation)
    #expect(reply.header("Content-Type") == "application/problem+json", sourceLocation: sourceLocation)
    let problem = try reply.object()
    #expect(problem["status"] as? Int == status, sourceLocation: sourceLocation)
    let detail = problem["detail"] as? String ?? ""
    #expect(!detail.isEmpty, "problem without detail: \(reply.text)", sourceLocation: sourceLocation)
    let uuids = detail.matches(of: #/[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}/#)
        .map { String(detail[$0.range]) }
    #expect(uuids.allSatisfy { $0 == $0.lowercased() }, "RFC 4122 section 3: UUIDs are output in lower case: \(detail)",
            sourceLocation: sourceLocation)
    return detail
}
