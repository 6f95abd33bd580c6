import FindingsPolicyAPI
import Foundation
import GantryModel
import GantryRuntime
import PostgresNIO

/// The Sub-Assessments-compatible API: one sub-assessment per finding of an image, paged with `value` and
/// `nextLink` as Azure's "Sub Assessments - List" is.
extension FindingsPolicyAPIImpl {
    func listSubAssessments(_ input: Operations.ListSubAssessments.Input) async throws -> Operations.ListSubAssessments.Output {
        let tenantID = try Validate.uuid(input.path.tenantId, field: "tenantId")
        let subscriptionID = try Validate.uuid(input.path.subscriptionId, field: "subscriptionId")
        let registryID = try input.query.registryId.map { try Validate.uuid($0, field: "registryId") }
        let page = try await subAssessmentPage(
            tenantID: tenantID, subscriptionID: subscriptionID, registryID: registryID, digest: nil,
            includeExempt: input.query.includeExempt ?? false, top: input.query.top, skipToken: input.query.skipToken,
            path: "/v1/tenants/\(tenantID.uuidString.lowercased())/subscriptions/\(subscriptionID.uuidString.lowercased())/subAssessments")
        return .ok(.init(body: .json(page)))
    }

    func listImageSubAssessments(_ input: Operations.ListImageSubAssessments.Input) async throws
        -> Operations.ListImageSubAssessments.Output {
        let tenantID = try Validate.uuid(input.path.tenantId, field: "tenantId")
        let subscriptionID = try Validate.uuid(input.path.subscriptionId, field: "subscriptionId")
        let digest = try Validate.digest(input.path.imageDigest, field: "imageDigest").description
        let page = try await subAssessmentPage(
            tenantID: tenantID, subscriptionID: subscriptionID, registryID: nil, digest: digest,
            includeExempt: input.query.includeExempt ?? false, top: input.query.top, skipToken: input.query.skipToken,
            path: "/v1/tenants/\(tenantID.uuidString.lowercased())/subscriptions/\(subscriptionID.uuidString.lowercased())"
                + "/assessments/\(digest)/subAssessments")
        // An empty page of an image the subscription never had is a 404, as `getAssessment` answers (issue 6:
        // another tenant's digest named under one's own subscription looks unknown, not empty).
        if page.value.isEmpty {
            let logger = runtime.logger
            let assessed = try await runtime.database.withTenant(tenantID, logger: logger) { connection in
                let rows = try await connection.query("""
                    SELECT 1 FROM findings_policy.assessments
                    WHERE tenant_id = \(tenantID) AND subscription_id = \(subscriptionID) AND digest = \(digest) LIMIT 1
                    """, logger: logger)
                for try await _ in rows { return true }
                return false
            }
            guard assessed else {
                throw ProblemError.notFound("no assessment exists for image \(digest) in subscription \(subscriptionID.uuidString.lowercased())")
            }
        }
        return .ok(.init(body: .json(page)))
    }

    func getSubAssessment(_ input: Operations.GetSubAssessment.Input) async throws -> Operations.GetSubAssessment.Output {
        let tenantID = try Validate.uuid(input.path.tenantId, field: "tenantId")
        let subscriptionID = try Validate.uuid(input.path.subscriptionId, field: "subscriptionId")
        let digest = try Validate.digest(input.path.imageDigest, field: "imageDigest").description
        let name = try Validate.uuid(input.path.subAssessmentName, field: "subAssessmentName")
        let store = self.store
        let found = try await runtime.database.withTenant(tenantID, logger: runtime.logger) { connection -> (SubAssessmentRow, Components.Schemas.ImageTags?)? in
            guard let row = try await store.subAssessment(tenantID: tenantID, subscriptionID: subscriptionID, digest: digest,
                                                          name: name, on: connection) else { return nil }
            let tags = try await store.tags(of: [row.image], tenantID: tenantID, subscriptionID: subscriptionID, on: connection)
            return (row, tags[row.image])
        }
        guard let (row, tags) = found else {
            throw ProblemError.notFound("no sub-assessment \(name.uuidString.lowercased()) exists for image \(digest)")
        }
        return .ok(.init(body: .json(views.subAssessment(row, tenantID: tenantID, subscriptionID: subscriptionID, tags: tags))))
    }

    private func subAssessmentPage(tenantID: UUID, subscriptionID: UUID, registryID: UUID?, digest: String?,
                                   includeExempt: Bool, top: Int?, skipToken: String?,
                                   path: String) async throws -> Components.Schemas.SubAssessmentList {
        let limit = try Self.count(top, field: "top")
        let position = try skipToken.map(SkipToken.decode)
        let store = self.store
        let (rows, tags) = try await runtime.database.withTenant(tenantID, logger: runtime.logger) { connection in
            // One more than the page: whether it exists decides nextLink.
            let rows = try await store.subAssessments(
                tenantID: tenantID, subscriptionID: subscriptionID, registryID: registryID, digest: digest,
                includeExempt: includeExempt, after: position, limit: limit + 1, on: connection)
            let page = Array(rows.prefix(limit))
            let tags = try await store.tags(of: Array(Set(page.map(\.image))), tenantID: tenantID, subscriptionID: subscriptionID,
                                            on: connection)
            return (rows, tags)
        }
        let page = rows.prefix(limit)
        var nextLink: String?
        if rows.count > limit, let last = page.last {
            let token = try SkipToken.encode(.init(registryID: last.image.registryID, repository: last.image.repository,
                                                   digest: last.image.digest, ordinal: last.ordinal))
            var components = URLComponents()
            components.path = path
            components.queryItems = [
                registryID.map { URLQueryItem(name: "registryId", value: $0.uuidString.lowercased()) },
                includeExempt ? URLQueryItem(name: "includeExempt", value: "true") : nil,
                top.map { URLQueryItem(name: "top", value: String($0)) },
                URLQueryItem(name: "skipToken", value: token),
            ].compactMap { $0 }
            nextLink = (RequestBaseURL.current ?? "") + (components.string ?? path)
        }
        let views = self.views
        return .init(value: page.map { views.subAssessment($0, tenantID: tenantID, subscriptionID: subscriptionID, tags: tags[$0.image]) },
                     nextLink: nextLink)
    }
}

/// The opaque continuation of a sub-assessment listing: the last finding's position, as base64url JSON.
enum SkipToken {
    static func encode(_ position: PostgresPolicyStore.PagePosition) throws -> String {
        try JSONEncoder().encode(position).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// - Throws: `ProblemError` 400 for anything this service did not issue.
    static func decode(_ token: String) throws -> PostgresPolicyStore.PagePosition {
        var base64 = token.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        guard token.count <= 2048, let data = Data(base64Encoded: base64),
              let position = try? JSONDecoder().decode(PostgresPolicyStore.PagePosition.self, from: data) else {
            throw ProblemError.badRequest("skipToken is not a continuation this service issued; start again without it")
        }
        return position
    }
}
