import FindingsPolicyAPI
import Foundation
import GantryModel
import GantryRuntime
import Logging
import PostgresNIO

/// Findings-policy's HTTP API (Shared/Contracts/specs/findings-policy.yaml): reports and assessments here;
/// sub-assessments, rules and scores in the `FindingsPolicyAPIImpl+…` files.
struct FindingsPolicyAPIImpl: FindingsPolicyAPI.APIProtocol {
    let runtime: ServiceRuntime
    let store: PostgresPolicyStore
    let engine: PolicyEngine

    var views: Views { Views(policy: store.policy) }

    func submitReport(_ input: Operations.SubmitReport.Input) async throws -> Operations.SubmitReport.Output {
        guard case .json(let report) = input.body else { throw ProblemError.badRequest("expected a JSON body") }
        let tenantID = try Validate.uuid(report.tenantId, field: "tenantId")
        let subscriptionID = try Validate.uuid(report.subscriptionId, field: "subscriptionId")
        let registryID = try Validate.uuid(report.registryId, field: "registryId")
        let scanID = try Validate.uuid(report.scanId, field: "scanId")
        let digest = try Validate.digest(report.digest, field: "digest")
        let repository = try Validate.repository(report.repository, field: "repository")
        let messageID = try Validate.text(report.messageId, field: "messageId")
        let tag = try report.tag.map { try Validate.tag($0, field: "tag") }
        let key = ImageKey(registryID: registryID, repository: repository, digest: digest.description)
        let image = StoredImage(
            tenantID: tenantID, subscriptionID: subscriptionID, key: key, registryHost: report.registryHost,
            report: ReportedImage(outcome: report.outcome, notApplicableReason: report.notApplicableReason, notes: report.notes,
                                  findings: report.outcome == .assessed ? report.findings : []),
            operatingSystem: report.operatingSystem, status: .init(code: .notApplicable), worstSeverity: nil, exemptions: [:],
            evaluated: true, scanID: scanID, timeGenerated: report.scannedAt)
        let store = self.store
        let logger = runtime.logger
        let inbox = runtime.inbox
        // The report's tenant (from the message body) scopes the transaction: row-level security hides and protects
        // every other tenant's rows.
        do {
            try await runtime.database.withTenant(tenantID, logger: logger) { connection in
                guard try await inbox.claim(messageID, on: connection, logger: logger) else { return }
                try await store.lock(subscription: subscriptionID, on: connection)
                let rules = try await store.rules(tenantID: tenantID, subscriptionID: subscriptionID, activeAt: Date(), on: connection)
                let previous = try await store.status(of: key, subscriptionID: subscriptionID, tenantID: tenantID, on: connection)
                let vex = try await store.vexDocuments(tenantID: tenantID, subscriptionID: subscriptionID, on: connection).map(\.attached)
                let evaluation = Assessor.evaluate(image.report, rules: rules.filter { $0.scope.applies(to: key) },
                                                   vex: ScopedVEX(documents: vex, image: key, registryHost: report.registryHost),
                                                   policy: store.policy)
                let countedBefore = previous == "Unhealthy"
                    ? try await store.countedFindingKeys(of: key, subscriptionID: subscriptionID, tenantID: tenantID, on: connection) : []
                try await store.store(image, evaluation: evaluation, on: connection)
                if let tag {
                    try await store.recordTag(tag, image: key, tenantID: tenantID, subscriptionID: subscriptionID,
                                              seenAt: report.scannedAt, on: connection)
                }
                // The scanner reports a deleted image as NotApplicable / ImageDeleted: no tag points at it any more.
                if report.outcome == .notApplicable && report.notApplicableReason == "ImageDeleted" {
                    try await store.retireTags(of: key, subscriptionID: subscriptionID, at: report.scannedAt, on: connection)
                }
                // Alert only on a change to Unhealthy: an unchanged rescan alerts nobody. One alert per change, so keyed
                // by the scan that found it; at most 194 characters, within notification's 200 for any repository name.
                if evaluation.status.code == .unhealthy && previous != "Unhealthy" {
                    try await store.alertUnhealthy(
                        image, evaluation: evaluation,
                        messageID: "alert:image-unhealthy:\(scanID.uuidString.lowercased()):\(digest)", on: connection)
                } else if evaluation.status.code == .unhealthy {
                    try await store.alertNewFindings(
                        image, evaluation: evaluation, before: countedBefore,
                        messageID: "alert:new-findings:\(scanID.uuidString.lowercased()):\(digest)", on: connection)
                } else if previous == "Unhealthy" && report.outcome == .assessed {
                    try await store.alertHealthy(
                        image, evaluation: evaluation,
                        messageID: "alert:image-healthy:\(scanID.uuidString.lowercased()):\(digest)", on: connection)
                }
                try await store.recordScores(tenantID: tenantID, subscriptionID: subscriptionID, on: connection)
            }
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "42501" {
            // The subscription's image or tag rows exist under another tenant: invisible to this one, so the
            // upsert may not update them (row-level security). Nothing was stored.
            throw ProblemError.conflict("subscription \(subscriptionID.uuidString.lowercased()) has images recorded for another tenant")
        }
        // A redelivered report changed nothing: either way the answer is what is stored.
        guard let assessment = try await assessments(tenantID: tenantID, subscriptionID: subscriptionID, image: key).first else {
            throw ProblemError.internal("the assessment of \(key) was not stored")
        }
        return .accepted(.init(body: .json(assessment)))
    }

    func listAssessments(_ input: Operations.ListAssessments.Input) async throws -> Operations.ListAssessments.Output {
        let tenantID = try Validate.uuid(input.path.tenantId, field: "tenantId")
        let subscriptionID = try Validate.uuid(input.path.subscriptionId, field: "subscriptionId")
        let items = try await assessments(tenantID: tenantID, subscriptionID: subscriptionID, status: input.query.status?.rawValue)
        return .ok(.init(body: .json(.init(items: items))))
    }

    func getAssessment(_ input: Operations.GetAssessment.Input) async throws -> Operations.GetAssessment.Output {
        let tenantID = try Validate.uuid(input.path.tenantId, field: "tenantId")
        let subscriptionID = try Validate.uuid(input.path.subscriptionId, field: "subscriptionId")
        let digest = try Validate.digest(input.path.imageDigest, field: "imageDigest")
        guard let item = try await assessments(tenantID: tenantID, subscriptionID: subscriptionID,
                                               digest: digest.description).first else {
            throw ProblemError.notFound("no assessment exists for image \(digest) in subscription \(subscriptionID.uuidString.lowercased())")
        }
        return .ok(.init(body: .json(item)))
    }

    /// Stored assessments as the API shows them, newest first.
    private func assessments(tenantID: UUID, subscriptionID: UUID, digest: String? = nil, status: String? = nil,
                             image: ImageKey? = nil) async throws -> [Components.Schemas.Assessment] {
        let store = self.store
        let views = self.views
        return try await runtime.database.withTenant(tenantID, logger: runtime.logger) { connection in
            let images = try await store.listImages(tenantID: tenantID, subscriptionID: subscriptionID, digest: digest,
                                                    status: status, image: image, on: connection)
            guard !images.isEmpty else { return [] }
            let rules = try await store.rules(tenantID: tenantID, subscriptionID: subscriptionID, on: connection)
            let justifications = Dictionary(uniqueKeysWithValues: rules.map { ($0.id, $0.justification) })
            let tags = try await store.tags(of: images.map(\.key), tenantID: tenantID, subscriptionID: subscriptionID,
                                            on: connection)
            return images.map { views.assessment($0, justifications: justifications, tags: tags[$0.key]) }
        }
    }

    /// The audit actor of a change: the `sub` of the caller's user token (`AuthenticatedUser.current`, set by
    /// `UserAuthMiddleware` on every `/v1/tenants/...` route). No request header can name it: a header is forgeable.
    /// - Throws: `ProblemError` 500 when no authenticated user is bound, which the middleware rules out (fail closed
    ///   rather than audit an anonymous change).
    static func actor() throws -> String {
        guard let user = AuthenticatedUser.current else {
            throw ProblemError.internal("no authenticated user is bound to this request; the change is not audited, so refused")
        }
        return user.subject
    }

    /// A page size or limit query parameter within 1...1000, `fallback` when absent.
    /// - Throws: `ProblemError` 400 naming `field`.
    static func count(_ value: Int?, field: String, fallback: Int = 100) throws -> Int {
        guard let value else { return fallback }
        guard (1...1000).contains(value) else { throw ProblemError.badRequest("\(field) \(value) is not within 1...1000") }
        return value
    }
}
