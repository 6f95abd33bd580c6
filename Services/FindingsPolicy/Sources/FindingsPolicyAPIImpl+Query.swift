import FindingsPolicyAPI
import Foundation
import GantryRuntime
import OpenAPIRuntime
import PostgresNIO

/// The query endpoint: the findings query language (`QueryParser`) over the subscription's `Findings` and
/// `Assessments`, read from PostgreSQL (at most `maxInputRows` findings) and evaluated in memory.
extension FindingsPolicyAPIImpl {
    static let maxInputRows = 100_000
    static let maxResultRows = 1000

    func runQuery(_ input: Operations.RunQuery.Input) async throws -> Operations.RunQuery.Output {
        let tenantID = try Validate.uuid(input.path.tenantId, field: "tenantId")
        let subscriptionID = try Validate.uuid(input.path.subscriptionId, field: "subscriptionId")
        guard case .json(let body) = input.body else { throw ProblemError.badRequest("expected a JSON body") }
        let query: FindingsQuery
        do {
            query = try QueryParser.parse(body.query)
        } catch {
            throw error.problem
        }
        // Only the table the query reads is fetched; the other stays empty but keeps its columns for checking.
        let wantsFindings = query.table.lowercased() == "findings"
        let (tables, inputTruncated) = try await queryTables(tenantID: tenantID, subscriptionID: subscriptionID,
                                                             findings: wantsFindings, assessments: !wantsFindings)
        let result: QueryTable
        do {
            result = try QueryEvaluator.run(query, tables: tables)
        } catch {
            throw error.problem
        }
        let rows = result.rows.prefix(Self.maxResultRows).map { row in
            row.map { value -> OpenAPIValueContainer in
                switch value {
                case .null: OpenAPIValueContainer(nilLiteral: ())
                case .bool(let value): OpenAPIValueContainer(booleanLiteral: value)
                case .number(let value): OpenAPIValueContainer(floatLiteral: value)
                case .string(let value): OpenAPIValueContainer(stringLiteral: value)
                }
            }
        }
        return .ok(.init(body: .json(.init(columns: result.columns.map(\.name), rows: Array(rows),
                                           truncated: inputTruncated || result.rows.count > Self.maxResultRows))))
    }

    /// The `Findings` and `Assessments` tables of a subscription (columns in `QueryTables`).
    func queryTables(tenantID: UUID, subscriptionID: UUID, findings: Bool, assessments: Bool)
        async throws -> ([String: QueryTable], Bool) {
        let store = self.store
        let views = self.views
        return try await runtime.database.withTenant(tenantID, logger: runtime.logger) { connection in
            var findingRows: [SubAssessmentRow] = []
            var images: [StoredImage] = []
            if findings {
                findingRows = try await store.subAssessments(
                    tenantID: tenantID, subscriptionID: subscriptionID, registryID: nil, digest: nil, includeExempt: true,
                    after: nil, limit: Self.maxInputRows + 1, on: connection)
            }
            if assessments {
                images = try await store.listImages(tenantID: tenantID, subscriptionID: subscriptionID, on: connection)
            }
            let truncated = findingRows.count > Self.maxInputRows
            findingRows = Array(findingRows.prefix(Self.maxInputRows))
            let keys = Array(Set(findingRows.map(\.image) + images.map(\.key)))
            let tags = try await store.tags(of: keys, tenantID: tenantID, subscriptionID: subscriptionID, on: connection)
            return ([
                "Findings": QueryTables.findings(findingRows, tags: tags, views: views),
                "Assessments": QueryTables.assessments(images, tags: tags),
            ], truncated)
        }
    }
}

/// The tables the query language reads, one row per finding or per assessed image.
enum QueryTables {
    /// `Findings` columns: id, package, version, fixedVersion, severity (Gantry's), band (Low/Medium/High), cvss (v3 base),
    /// cvss4, patchable, exempt, exemptBy (`rule` or `vex`), justification, category, title, source, knownExploited, epss,
    /// published, repository, digest, registry (host), registryId, tags and previousTags (comma-separated),
    /// timeGenerated (ISO 8601).
    static let findingColumns: [(name: String, type: QueryType)] = [
        ("id", .string), ("package", .string), ("version", .string), ("fixedVersion", .string), ("severity", .string),
        ("band", .string), ("cvss", .number), ("cvss4", .number), ("patchable", .bool), ("exempt", .bool),
        ("exemptBy", .string), ("justification", .string), ("category", .string), ("title", .string), ("source", .string),
        ("knownExploited", .bool), ("epss", .number), ("published", .string), ("repository", .string), ("digest", .string),
        ("registry", .string), ("registryId", .string), ("tags", .string), ("previousTags", .string), ("timeGenerated", .string),
    ]

    /// `Assessments` columns: digest, repository, registry, registryId, status, cause, severity (worst counted, Gantry's),
    /// findings (counted), exemptFindings, patchableFindings, os, tags, previousTags, timeGenerated.
    static let assessmentColumns: [(name: String, type: QueryType)] = [
        ("digest", .string), ("repository", .string), ("registry", .string), ("registryId", .string), ("status", .string),
        ("cause", .string), ("severity", .string), ("findings", .number), ("exemptFindings", .number),
        ("patchableFindings", .number), ("os", .string), ("tags", .string), ("previousTags", .string), ("timeGenerated", .string),
    ]

    static func string(_ value: String?) -> QueryValue { value.map(QueryValue.string) ?? .null }
    static func number(_ value: Double?) -> QueryValue { value.map(QueryValue.number) ?? .null }
    static func time(_ date: Date) -> QueryValue { .string(ISO8601DateFormatter().string(from: date)) }

    static func tagText(_ tags: Components.Schemas.ImageTags?) -> (QueryValue, QueryValue) {
        (.string((tags?.current ?? []).map(\.tag).joined(separator: ",")), .string((tags?.previous ?? []).map(\.tag).joined(separator: ",")))
    }

    static func findings(_ rows: [SubAssessmentRow], tags: [ImageKey: Components.Schemas.ImageTags], views: Views) -> QueryTable {
        QueryTable(columns: findingColumns, rows: rows.map { row in
            let finding = row.finding
            let (current, previous) = tagText(tags[row.image])
            return [
                .string(finding.vulnerabilityId), .string(finding.packageName), .string(finding.installedVersion),
                string(finding.fixedVersion), .string(finding.severity.rawValue), .string(views.policy.band(finding.severity).rawValue),
                number(finding.cvssV3Score), number(finding.cvssV4Score), .bool(finding.patchable), .bool(row.exemptRuleID != nil),
                row.exemptRuleID == nil ? .null : .string(row.byVEX ? "vex" : "rule"), string(row.justification),
                .string(FindingText.category(of: finding)), .string(FindingText.displayName(of: finding)), .string(finding.source),
                .bool(finding.knownExploited ?? false), number(finding.epss), string(finding.published), .string(row.image.repository),
                .string(row.image.digest), .string(row.registryHost), .string(row.image.registryID.uuidString.lowercased()),
                current, previous, time(row.timeGenerated),
            ]
        })
    }

    static func assessments(_ images: [StoredImage], tags: [ImageKey: Components.Schemas.ImageTags]) -> QueryTable {
        QueryTable(columns: assessmentColumns, rows: images.map { image in
            let (current, previous) = tagText(tags[image.key])
            let counted = image.report.findings.indices.filter { image.exemptions[$0] == nil }
            return [
                .string(image.key.digest), .string(image.key.repository), .string(image.registryHost),
                .string(image.key.registryID.uuidString.lowercased()), .string(image.status.code.rawValue), string(image.status.cause),
                string(image.worstSeverity?.rawValue), .number(Double(counted.count)), .number(Double(image.exemptions.count)),
                .number(Double(counted.filter { image.report.findings[$0].patchable }.count)), string(image.operatingSystem?.id),
                current, previous, time(image.timeGenerated),
            ]
        })
    }
}
