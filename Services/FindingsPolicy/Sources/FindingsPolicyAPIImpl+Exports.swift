import FindingsPolicyAPI
import Foundation
import GantryModel
import GantryRuntime
import OpenAPIRuntime
import PostgresNIO

/// Exports of a subscription's (or one image digest's) findings: SARIF 2.1.0, CycloneDX 1.6 VEX, CSV (`FindingsExport`).
/// At most `maxInputRows` findings; each carries the tags pointing at its digest now and before.
extension FindingsPolicyAPIImpl {
    func exportSarif(_ input: Operations.ExportSarif.Input) async throws -> Operations.ExportSarif.Output {
        let rows = try await exportRows(tenant: input.path.tenantId, subscription: input.path.subscriptionId,
                                        digest: input.query.imageDigest, includeExempt: input.query.includeExempt ?? false)
        return .ok(.init(body: .applicationSarifJson(try Self.container(FindingsExport(policy: store.policy).sarif(rows)))))
    }

    func exportCycloneDX(_ input: Operations.ExportCycloneDX.Input) async throws -> Operations.ExportCycloneDX.Output {
        // Exempt findings belong in a VEX BOM: their analysis says why they do not count.
        let rows = try await exportRows(tenant: input.path.tenantId, subscription: input.path.subscriptionId,
                                        digest: input.query.imageDigest, includeExempt: true)
        return .ok(.init(body: .applicationVnd_cyclonedxJson(try Self.container(FindingsExport(policy: store.policy).cycloneDX(rows)))))
    }

    func exportCsv(_ input: Operations.ExportCsv.Input) async throws -> Operations.ExportCsv.Output {
        let rows = try await exportRows(tenant: input.path.tenantId, subscription: input.path.subscriptionId,
                                        digest: input.query.imageDigest, includeExempt: input.query.includeExempt ?? false)
        return .ok(.init(body: .csv(HTTPBody(FindingsExport(policy: store.policy).csv(rows)))))
    }

    private static func container(_ value: some Encodable) throws -> OpenAPIValueContainer {
        try JSONDecoder().decode(OpenAPIValueContainer.self, from: JSONEncoder().encode(value))
    }

    private func exportRows(tenant: String, subscription: String, digest: String?, includeExempt: Bool) async throws -> [ExportRow] {
        let tenantID = try Validate.uuid(tenant, field: "tenantId")
        let subscriptionID = try Validate.uuid(subscription, field: "subscriptionId")
        let digest = try digest.map { try Validate.digest($0, field: "imageDigest").description }
        let store = self.store
        let (rows, tags, vex) = try await runtime.database.withTenant(tenantID, logger: runtime.logger) { connection in
            let rows = try await store.subAssessments(
                tenantID: tenantID, subscriptionID: subscriptionID, registryID: nil, digest: digest, includeExempt: includeExempt,
                after: nil, limit: Self.maxInputRows + 1, on: connection)
            guard rows.count <= Self.maxInputRows else {
                throw ProblemError.tooLarge("more than \(Self.maxInputRows) findings; export one image at a time (imageDigest)")
            }
            let tags = try await store.tags(of: Array(Set(rows.map(\.image))), tenantID: tenantID, subscriptionID: subscriptionID,
                                            on: connection)
            let vex = rows.contains(where: \.byVEX)
                ? try await store.vexDocuments(tenantID: tenantID, subscriptionID: subscriptionID, on: connection).map(\.attached) : []
            return (rows, tags, vex)
        }
        return rows.map { row in
            var statement: VEXStatement?
            if row.byVEX, let document = row.exemptRuleID {
                statement = ScopedVEX(documents: vex.filter { $0.id == document }, image: row.image, registryHost: row.registryHost)
                    .statement(of: row.finding)?.1
            }
            return ExportRow(row: row, tags: tags[row.image], vexStatement: statement)
        }
    }
}
