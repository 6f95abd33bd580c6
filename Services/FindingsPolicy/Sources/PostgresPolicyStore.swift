import FindingsPolicyAPI
import Foundation
import GantryRuntime
import Logging
import NotificationAPI
import PostgresNIO

/// One stored assessment with what re-evaluating it needs.
struct StoredImage: Sendable {
    var tenantID: UUID
    var subscriptionID: UUID
    var key: ImageKey
    var registryHost: String
    var report: ReportedImage
    var operatingSystem: Components.Schemas.OperatingSystem?
    var status: Components.Schemas.AssessmentStatus
    var worstSeverity: Severity?
    /// Rule ID by finding position, exempt findings only.
    var exemptions: [Int: UUID]
    /// False for rows stored before findings rows existed: they have none yet.
    var evaluated: Bool
    var scanID: UUID
    var timeGenerated: Date
    /// The statement's words by finding position, for findings a VEX document suppresses (their `exemptions`
    /// entry is the document's ID).
    var vexJustifications: [Int: String] = [:]
}

/// findings-policy's tables (schema `findings_policy`): assessments and their findings rows, disable rules,
/// their audit log, secure score history and tag history. Every method takes the tenant it works for and runs
/// on a connection of the caller's `withTenant` transaction (row-level security, migration 4); the cross-tenant
/// scans of the expiry worker (`dueExpiries`, `unevaluatedImages`) run under `withSystemAccess`. The mutating
/// ones run after `lock(subscription:)`.
struct PostgresPolicyStore: Sendable {
    let logger: Logger
    let outbox: Outbox
    let policy: SeverityPolicy

    // MARK: Serialisation

    /// Serialises every change to one subscription's assessments and rules (reports, rule changes, expiry) until
    /// the transaction ends, so that a rule change and a report for the same image never interleave.
    func lock(subscription subscriptionID: UUID, on connection: PostgresConnection) async throws {
        try await connection.query("""
            SELECT pg_advisory_xact_lock(hashtextextended(\("findings_policy.subscription:" + subscriptionID.uuidString.lowercased()), 0))
            """, logger: logger)
    }

    // MARK: Rules

    private static let ruleColumns = """
        id, subscription_id, scope_kind, registry_id, repository, digest, criteria, justification, expires_at, expired_at,
        created_at, created_by, updated_at, updated_by
        """

    /// The subscription's rules, oldest first; only those in force at `now` when `activeAt` is given.
    func rules(tenantID: UUID, subscriptionID: UUID, activeAt now: Date? = nil,
               on connection: PostgresConnection) async throws -> [DisableRule] {
        let rows = try await connection.query("""
            SELECT \(unescaped: Self.ruleColumns) FROM findings_policy.disable_rules
            WHERE tenant_id = \(tenantID) AND subscription_id = \(subscriptionID)
              AND (\(now)::timestamptz IS NULL OR (expired_at IS NULL AND (expires_at IS NULL OR expires_at > \(now))))
            ORDER BY created_at, id
            """, logger: logger)
        return try await decodeRules(rows)
    }

    /// One rule of the subscription; nil when it does not exist there.
    func rule(tenantID: UUID, subscriptionID: UUID, id: UUID, on connection: PostgresConnection) async throws -> DisableRule? {
        let rows = try await connection.query("""
            SELECT \(unescaped: Self.ruleColumns) FROM findings_policy.disable_rules
            WHERE tenant_id = \(tenantID) AND subscription_id = \(subscriptionID) AND id = \(id)
            """, logger: logger)
        return try await decodeRules(rows).first
    }

    private func decodeRules(_ rows: PostgresRowSequence) async throws -> [DisableRule] {
        var rules: [DisableRule] = []
        let decoder = JSONDecoder()
        for try await (id, subscription, kind, registry, repository, digest, criteria, justification, expiresAt, expiredAt,
                       createdAt, createdBy, updatedAt, updatedBy)
            in rows.decode((UUID, UUID, String, UUID?, String?, String?, String, String, Date?, Date?, Date, String, Date, String).self) {
            rules.append(DisableRule(
                id: id, subscriptionID: subscription,
                scope: RuleScope(kind: .init(rawValue: kind) ?? .image, registryID: registry, repository: repository, digest: digest),
                criteria: try decoder.decode(RuleCriteria.self, from: Data(criteria.utf8)), justification: justification,
                expiresAt: expiresAt, expiredAt: expiredAt, createdAt: createdAt, createdBy: createdBy,
                updatedAt: updatedAt, updatedBy: updatedBy))
        }
        return rules
    }

    /// Inserts or replaces `rule` (by ID).
    func save(_ rule: DisableRule, tenantID: UUID, on connection: PostgresConnection) async throws {
        try await connection.query("""
            INSERT INTO findings_policy.disable_rules (id, tenant_id, subscription_id, scope_kind, registry_id, repository, digest,
              criteria, justification, expires_at, expired_at, created_at, created_by, updated_at, updated_by)
            VALUES (\(rule.id), \(tenantID), \(rule.subscriptionID), \(rule.scope.kind.rawValue), \(rule.scope.registryID),
              \(rule.scope.repository), \(rule.scope.digest), \(try Self.json(rule.criteria)), \(rule.justification),
              \(rule.expiresAt), \(rule.expiredAt), \(rule.createdAt), \(rule.createdBy), \(rule.updatedAt), \(rule.updatedBy))
            ON CONFLICT (id) DO UPDATE SET scope_kind = EXCLUDED.scope_kind, registry_id = EXCLUDED.registry_id,
              repository = EXCLUDED.repository, digest = EXCLUDED.digest, criteria = EXCLUDED.criteria,
              justification = EXCLUDED.justification, expires_at = EXCLUDED.expires_at, expired_at = EXCLUDED.expired_at,
              updated_at = EXCLUDED.updated_at, updated_by = EXCLUDED.updated_by
            """, logger: logger)
    }

    func delete(ruleID: UUID, tenantID: UUID, on connection: PostgresConnection) async throws {
        try await connection.query("DELETE FROM findings_policy.disable_rules WHERE tenant_id = \(tenantID) AND id = \(ruleID)",
                                   logger: logger)
    }

    /// Rules whose expiry has passed but whose images were not re-evaluated yet, oldest expiry first. Replicas may
    /// see the same ones: processing re-checks under the subscription's lock.
    func dueExpiries(limit: Int, on connection: PostgresConnection) async throws -> [(tenantID: UUID, subscriptionID: UUID, ruleID: UUID)] {
        let rows = try await connection.query("""
            SELECT tenant_id, subscription_id, id FROM findings_policy.disable_rules
            WHERE expired_at IS NULL AND expires_at <= now()
            ORDER BY expires_at LIMIT \(limit)
            """, logger: logger)
        var due: [(UUID, UUID, UUID)] = []
        for try await row in rows.decode((UUID, UUID, UUID).self) { due.append(row) }
        return due.map { (tenantID: $0.0, subscriptionID: $0.1, ruleID: $0.2) }
    }

    // MARK: Audit

    /// Records a change of a rule.
    /// - Returns: the event's ID.
    @discardableResult
    func audit(_ action: Components.Schemas.AuditEvent.ActionPayload, rule: DisableRule, tenantID: UUID, actor: String,
               affectedImages: Int, on connection: PostgresConnection) async throws -> UUID {
        let id = UUID()
        try await connection.query("""
            INSERT INTO findings_policy.rule_audit (id, tenant_id, subscription_id, rule_id, action, actor, rule, affected_images)
            VALUES (\(id), \(tenantID), \(rule.subscriptionID), \(rule.id), \(action.rawValue), \(actor),
              \(try Self.json(rule.schema())), \(affectedImages))
            """, logger: logger)
        return id
    }

    func auditEvents(tenantID: UUID, subscriptionID: UUID, ruleID: UUID?, limit: Int,
                     on connection: PostgresConnection) async throws -> [Components.Schemas.AuditEvent] {
        let rows = try await connection.query("""
            SELECT id, rule_id, action, actor, at, rule, affected_images FROM findings_policy.rule_audit
            WHERE tenant_id = \(tenantID) AND subscription_id = \(subscriptionID) AND (\(ruleID)::uuid IS NULL OR rule_id = \(ruleID))
            ORDER BY at DESC, id LIMIT \(limit)
            """, logger: logger)
        var events: [Components.Schemas.AuditEvent] = []
        for try await (id, rule, action, actor, at, snapshot, affected)
            in rows.decode((UUID, UUID, String, String, Date, String?, Int).self) {
            events.append(.init(id: id.uuidString.lowercased(), ruleId: rule.uuidString.lowercased(),
                                action: .init(rawValue: action) ?? .replaced, actor: actor, at: at,
                                rule: try snapshot.map { try Self.decoder.decode(Components.Schemas.DisableRule.self, from: Data($0.utf8)) },
                                affectedImages: affected))
        }
        return events
    }

    // MARK: Assessments

    private static let imageColumns = """
        tenant_id, registry_id, repository, digest, registry_host, outcome, not_applicable_reason, notes, findings,
        operating_system, status, cause, description, worst_severity, evaluated, scan_id, time_generated
        """

    /// The subscription's stored images inside any of `scopes` (all of them for a subscription scope).
    func images(tenantID: UUID, subscriptionID: UUID, in scopes: [RuleScope],
                on connection: PostgresConnection) async throws -> [StoredImage] {
        var images: [ImageKey: StoredImage] = [:]
        for scope in Set(scopes) {
            let rows = try await connection.query("""
                SELECT \(unescaped: Self.imageColumns) FROM findings_policy.assessments
                WHERE tenant_id = \(tenantID) AND subscription_id = \(subscriptionID)
                  AND (\(scope.registryID)::uuid IS NULL OR registry_id = \(scope.registryID))
                  AND (\(scope.repository)::text IS NULL OR repository = \(scope.repository))
                  AND (\(scope.digest)::text IS NULL OR digest = \(scope.digest))
                """, logger: logger)
            for image in try await decodeImages(rows, subscriptionID: subscriptionID) { images[image.key] = image }
            let exempt = try await connection.query("""
                SELECT registry_id, repository, digest, ordinal, exempt_rule_id, exempt_vex_justification FROM findings_policy.findings
                WHERE tenant_id = \(tenantID) AND subscription_id = \(subscriptionID) AND exempt_rule_id IS NOT NULL
                  AND (\(scope.registryID)::uuid IS NULL OR registry_id = \(scope.registryID))
                  AND (\(scope.repository)::text IS NULL OR repository = \(scope.repository))
                  AND (\(scope.digest)::text IS NULL OR digest = \(scope.digest))
                """, logger: logger)
            for try await (registry, repository, digest, ordinal, rule, vex)
                in exempt.decode((UUID, String, String, Int, UUID, String?).self) {
                let key = ImageKey(registryID: registry, repository: repository, digest: digest)
                images[key]?.exemptions[ordinal] = rule
                if let vex { images[key]?.vexJustifications[ordinal] = vex }
            }
        }
        return images.values.sorted { ($0.key.registryID.uuidString, $0.key.repository, $0.key.digest)
            < ($1.key.registryID.uuidString, $1.key.repository, $1.key.digest) }
    }

    /// The subscription's assessments, newest first, optionally only one digest, status or image, with exemptions.
    func listImages(tenantID: UUID, subscriptionID: UUID, digest: String? = nil, status: String? = nil, image: ImageKey? = nil,
                    on connection: PostgresConnection) async throws -> [StoredImage] {
        let digest = image?.digest ?? digest
        let rows = try await connection.query("""
            SELECT \(unescaped: Self.imageColumns) FROM findings_policy.assessments
            WHERE tenant_id = \(tenantID) AND subscription_id = \(subscriptionID)
              AND (\(digest)::text IS NULL OR digest = \(digest)) AND (\(status)::text IS NULL OR status = \(status))
              AND (\(image?.registryID)::uuid IS NULL OR registry_id = \(image?.registryID))
              AND (\(image?.repository)::text IS NULL OR repository = \(image?.repository))
            ORDER BY time_generated DESC, repository, digest, registry_id
            """, logger: logger)
        var images = try await decodeImages(rows, subscriptionID: subscriptionID)
        guard !images.isEmpty else { return [] }
        let exempt = try await connection.query("""
            SELECT registry_id, repository, digest, ordinal, exempt_rule_id, exempt_vex_justification FROM findings_policy.findings
            WHERE tenant_id = \(tenantID) AND subscription_id = \(subscriptionID) AND exempt_rule_id IS NOT NULL
              AND (\(digest)::text IS NULL OR digest = \(digest))
            """, logger: logger)
        var exemptions: [ImageKey: [Int: UUID]] = [:]
        var vexJustifications: [ImageKey: [Int: String]] = [:]
        for try await (registry, repository, digest, ordinal, rule, vex)
            in exempt.decode((UUID, String, String, Int, UUID, String?).self) {
            let key = ImageKey(registryID: registry, repository: repository, digest: digest)
            exemptions[key, default: [:]][ordinal] = rule
            if let vex { vexJustifications[key, default: [:]][ordinal] = vex }
        }
        for index in images.indices {
            images[index].exemptions = exemptions[images[index].key] ?? [:]
            images[index].vexJustifications = vexJustifications[images[index].key] ?? [:]
        }
        return images
    }

    /// Up to `limit` images stored before findings rows existed, for the worker to evaluate.
    func unevaluatedImages(limit: Int, on connection: PostgresConnection) async throws -> [(tenantID: UUID, subscriptionID: UUID, key: ImageKey)] {
        let rows = try await connection.query("""
            SELECT tenant_id, subscription_id, registry_id, repository, digest FROM findings_policy.assessments
            WHERE NOT evaluated LIMIT \(limit)
            """, logger: logger)
        var keys: [(UUID, UUID, ImageKey)] = []
        for try await (tenant, subscription, registry, repository, digest) in rows.decode((UUID, UUID, UUID, String, String).self) {
            keys.append((tenant, subscription, ImageKey(registryID: registry, repository: repository, digest: digest)))
        }
        return keys.map { (tenantID: $0.0, subscriptionID: $0.1, key: $0.2) }
    }

    private func decodeImages(_ rows: PostgresRowSequence, subscriptionID: UUID) async throws -> [StoredImage] {
        var images: [StoredImage] = []
        for try await (tenant, registry, repository, digest, host, outcome, reason, notes, findings, os, status, cause, description,
                       worst, evaluated, scan, time)
            in rows.decode((UUID, UUID, String, String, String, String, String?, String, String, String?, String, String?, String?,
                            String?, Bool, UUID, Date).self) {
            let code = Components.Schemas.StatusCode(rawValue: status) ?? .notApplicable
            let worstSeverity = worst.flatMap(Severity.init(rawValue:))
            images.append(StoredImage(
                tenantID: tenant, subscriptionID: subscriptionID,
                key: ImageKey(registryID: registry, repository: repository, digest: digest), registryHost: host,
                report: ReportedImage(outcome: .init(rawValue: outcome) ?? .assessed, notApplicableReason: reason,
                                      notes: try Self.decoder.decode([String].self, from: Data(notes.utf8)),
                                      findings: try Self.decoder.decode([Finding].self, from: Data(findings.utf8))),
                operatingSystem: try os.map { try Self.decoder.decode(Components.Schemas.OperatingSystem.self, from: Data($0.utf8)) },
                status: .init(code: code, cause: cause, description: description,
                              severity: code == .unhealthy ? worstSeverity.map(policy.band) : nil),
                worstSeverity: worstSeverity, exemptions: [:], evaluated: evaluated, scanID: scan, timeGenerated: time))
        }
        return images
    }

    /// Stores a report's image with its evaluation: the assessment row and its findings rows, replaced.
    func store(_ image: StoredImage, evaluation: Evaluation, on connection: PostgresConnection) async throws {
        try await connection.query("""
            INSERT INTO findings_policy.assessments (tenant_id, subscription_id, registry_id, registry_host, repository,
              digest, status, cause, description, operating_system, findings, notes, scan_id, time_generated,
              outcome, not_applicable_reason, worst_severity, evaluated)
            VALUES (\(image.tenantID), \(image.subscriptionID), \(image.key.registryID), \(image.registryHost), \(image.key.repository),
              \(image.key.digest), \(evaluation.status.code.rawValue), \(evaluation.status.cause), \(evaluation.status.description),
              \(try image.operatingSystem.map(Self.json)), \(try Self.json(image.report.findings)), \(try Self.json(image.report.notes)),
              \(image.scanID), \(image.timeGenerated), \(image.report.outcome.rawValue), \(image.report.notApplicableReason),
              \(evaluation.worstSeverity?.rawValue), true)
            ON CONFLICT (subscription_id, registry_id, repository, digest) DO UPDATE SET
              status = EXCLUDED.status, cause = EXCLUDED.cause, description = EXCLUDED.description,
              operating_system = EXCLUDED.operating_system, findings = EXCLUDED.findings, notes = EXCLUDED.notes,
              scan_id = EXCLUDED.scan_id, time_generated = EXCLUDED.time_generated, registry_host = EXCLUDED.registry_host,
              outcome = EXCLUDED.outcome, not_applicable_reason = EXCLUDED.not_applicable_reason,
              worst_severity = EXCLUDED.worst_severity, evaluated = true
            """, logger: logger)
        try await replaceFindings(of: image, evaluation: evaluation, on: connection)
    }

    /// Writes a re-evaluation of a stored image. Returns whether anything changed.
    func update(_ image: StoredImage, evaluation: Evaluation, on connection: PostgresConnection) async throws -> Bool {
        let changed = !image.evaluated || evaluation.status != image.status || evaluation.exemptions != image.exemptions
            || evaluation.worstSeverity != image.worstSeverity || evaluation.vexJustifications != image.vexJustifications
        guard changed else { return false }
        let key = image.key
        try await connection.query("""
            UPDATE findings_policy.assessments SET status = \(evaluation.status.code.rawValue), cause = \(evaluation.status.cause),
              description = \(evaluation.status.description), worst_severity = \(evaluation.worstSeverity?.rawValue), evaluated = true
            WHERE subscription_id = \(image.subscriptionID) AND registry_id = \(key.registryID)
              AND repository = \(key.repository) AND digest = \(key.digest)
            """, logger: logger)
        if !image.evaluated {
            try await replaceFindings(of: image, evaluation: evaluation, on: connection)
        } else if evaluation.exemptions != image.exemptions || evaluation.vexJustifications != image.vexJustifications {
            struct Exemption: Encodable {
                let ordinal: Int
                let rule: UUID?
                let vex: String?
            }
            let rows = image.report.findings.indices.map {
                Exemption(ordinal: $0, rule: evaluation.exemptions[$0], vex: evaluation.vexJustifications[$0])
            }
            try await connection.query("""
                UPDATE findings_policy.findings f SET exempt_rule_id = r.rule, exempt_vex_justification = r.vex
                FROM jsonb_to_recordset(\(try Self.json(rows))::jsonb) AS r(ordinal integer, rule uuid, vex text)
                WHERE f.subscription_id = \(image.subscriptionID) AND f.registry_id = \(key.registryID)
                  AND f.repository = \(key.repository) AND f.digest = \(key.digest) AND f.ordinal = r.ordinal
                  AND (f.exempt_rule_id IS DISTINCT FROM r.rule OR f.exempt_vex_justification IS DISTINCT FROM r.vex)
                """, logger: logger)
        }
        return true
    }

    private func replaceFindings(of image: StoredImage, evaluation: Evaluation, on connection: PostgresConnection) async throws {
        let key = image.key
        try await connection.query("""
            DELETE FROM findings_policy.findings WHERE subscription_id = \(image.subscriptionID) AND registry_id = \(key.registryID)
              AND repository = \(key.repository) AND digest = \(key.digest)
            """, logger: logger)
        guard !image.report.findings.isEmpty else { return }
        struct Row: Encodable {
            let ordinal: Int
            let name: UUID
            let vulnerability: String
            let package: String
            let severity: String
            let patchable: Bool
            let finding: String
            let rule: UUID?
            let vex: String?
        }
        let names = SubAssessmentName.names(for: image.report.findings, in: key)
        let rows = try image.report.findings.enumerated().map { index, finding in
            Row(ordinal: index, name: names[index], vulnerability: finding.vulnerabilityId, package: finding.packageName,
                severity: finding.severity.rawValue, patchable: finding.patchable, finding: try Self.json(finding),
                rule: evaluation.exemptions[index], vex: evaluation.vexJustifications[index])
        }
        try await connection.query("""
            INSERT INTO findings_policy.findings (tenant_id, subscription_id, registry_id, repository, digest, ordinal,
              sub_assessment_id, vulnerability_id, package_name, severity, patchable, finding, exempt_rule_id,
              exempt_vex_justification)
            SELECT \(image.tenantID), \(image.subscriptionID), \(key.registryID), \(key.repository), \(key.digest), r.ordinal,
              r.name, r.vulnerability, r.package, r.severity, r.patchable, r.finding, r.rule, r.vex
            FROM jsonb_to_recordset(\(try Self.json(rows))::jsonb) AS r(ordinal integer, name uuid, vulnerability text,
              package text, severity text, patchable boolean, finding text, rule uuid, vex text)
            """, logger: logger)
    }

    /// The previous status of an image; nil when it was never assessed.
    func status(of key: ImageKey, subscriptionID: UUID, tenantID: UUID, on connection: PostgresConnection) async throws -> String? {
        let rows = try await connection.query("""
            SELECT status FROM findings_policy.assessments
            WHERE tenant_id = \(tenantID) AND subscription_id = \(subscriptionID) AND registry_id = \(key.registryID)
              AND repository = \(key.repository) AND digest = \(key.digest)
            """, logger: logger)
        for try await status in rows.decode(String.self) { return status }
        return nil
    }

    /// Queues the alert for an image that became Unhealthy, listing the findings that count.
    /// - Parameter messageID: unique per change to Unhealthy (notification's limit: 200 characters).
    func alertUnhealthy(_ image: StoredImage, evaluation: Evaluation, messageID: String,
                        on connection: PostgresConnection) async throws {
        let counted = image.report.findings.enumerated().filter { evaluation.exemptions[$0.offset] == nil }.map(\.element)
        let alert = NotificationAPI.Components.Schemas.Alert(
            messageId: messageID, tenantId: image.tenantID.uuidString.lowercased(),
            subscriptionId: image.subscriptionID.uuidString.lowercased(), kind: .imageUnhealthy,
            imageDigest: image.key.digest, repositoryName: image.key.repository, registryHost: image.registryHost,
            summary: evaluation.status.description ?? "image is unhealthy",
            findings: counted.map {
                .init(vulnerabilityId: $0.vulnerabilityId, packageName: $0.packageName, installedVersion: $0.installedVersion,
                      fixedVersion: $0.fixedVersion, severity: $0.severity.rawValue)
            })
        try await outbox.enqueue(alert, messageID: messageID, to: .notification, path: "/internal/v1/alerts",
                                 on: connection, logger: logger)
    }

    // MARK: Sub-assessments

    /// Where a page of sub-assessments starts: after this finding, in (registry, repository, digest, ordinal) order.
    struct PagePosition: Codable, Sendable, Equatable {
        var registryID: UUID
        var repository: String
        var digest: String
        var ordinal: Int
    }

    private static let subAssessmentSelect = """
        SELECT f.registry_id, f.repository, f.digest, f.ordinal, f.sub_assessment_id, f.finding, f.exempt_rule_id,
               COALESCE(f.exempt_vex_justification, r.justification), a.registry_host, a.time_generated, a.operating_system,
               f.exempt_vex_justification IS NOT NULL
        FROM findings_policy.findings f
        JOIN findings_policy.assessments a ON a.subscription_id = f.subscription_id AND a.registry_id = f.registry_id
          AND a.repository = f.repository AND a.digest = f.digest
        LEFT JOIN findings_policy.disable_rules r ON r.id = f.exempt_rule_id
        """

    /// Up to `limit` findings of the subscription after `position`, optionally of one registry or digest.
    func subAssessments(tenantID: UUID, subscriptionID: UUID, registryID: UUID?, digest: String?, includeExempt: Bool,
                        after position: PagePosition?, limit: Int,
                        on connection: PostgresConnection) async throws -> [SubAssessmentRow] {
        let rows = try await connection.query("""
            \(unescaped: Self.subAssessmentSelect)
            WHERE f.tenant_id = \(tenantID) AND f.subscription_id = \(subscriptionID)
              AND (\(registryID)::uuid IS NULL OR f.registry_id = \(registryID))
              AND (\(digest)::text IS NULL OR f.digest = \(digest))
              AND (\(includeExempt) OR f.exempt_rule_id IS NULL)
              AND (\(position?.registryID)::uuid IS NULL
                   OR (f.registry_id, f.repository, f.digest, f.ordinal)
                      > (\(position?.registryID), \(position?.repository), \(position?.digest), \(position?.ordinal)))
            ORDER BY f.registry_id, f.repository, f.digest, f.ordinal
            LIMIT \(limit)
            """, logger: logger)
        return try await decodeSubAssessments(rows)
    }

    /// One finding of a digest by its sub-assessment name; nil when there is none.
    func subAssessment(tenantID: UUID, subscriptionID: UUID, digest: String, name: UUID,
                       on connection: PostgresConnection) async throws -> SubAssessmentRow? {
        let rows = try await connection.query("""
            \(unescaped: Self.subAssessmentSelect)
            WHERE f.tenant_id = \(tenantID) AND f.subscription_id = \(subscriptionID) AND f.digest = \(digest)
              AND f.sub_assessment_id = \(name)
            """, logger: logger)
        return try await decodeSubAssessments(rows).first
    }

    private func decodeSubAssessments(_ rows: PostgresRowSequence) async throws -> [SubAssessmentRow] {
        var items: [SubAssessmentRow] = []
        for try await (registry, repository, digest, ordinal, name, finding, rule, justification, host, time, os, vex)
            in rows.decode((UUID, String, String, Int, UUID, String, UUID?, String?, String, Date, String?, Bool).self) {
            items.append(SubAssessmentRow(
                image: ImageKey(registryID: registry, repository: repository, digest: digest), ordinal: ordinal, name: name,
                finding: try Self.decoder.decode(Finding.self, from: Data(finding.utf8)), exemptRuleID: rule,
                justification: justification, registryHost: host, timeGenerated: time,
                operatingSystem: try os.map { try Self.decoder.decode(Components.Schemas.OperatingSystem.self, from: Data($0.utf8)) },
                byVEX: vex))
        }
        return items
    }

    // MARK: Secure score

    /// The live scores of the subscription (registry nil) and each of its registries, with their hosts.
    func scores(tenantID: UUID, subscriptionID: UUID,
                on connection: PostgresConnection) async throws -> [UUID?: (host: String?, score: SecureScore)] {
        let rows = try await connection.query("""
            SELECT registry_id, max(registry_host), status, worst_severity, count(*)::integer FROM findings_policy.assessments
            WHERE tenant_id = \(tenantID) AND subscription_id = \(subscriptionID)
            GROUP BY registry_id, status, worst_severity
            """, logger: logger)
        var scores: [UUID?: (host: String?, score: SecureScore)] = [nil: (nil, SecureScore())]
        for try await (registry, host, status, worst, count) in rows.decode((UUID, String, String, String?, Int).self) {
            guard let code = Components.Schemas.StatusCode(rawValue: status) else { continue }
            let severity = worst.flatMap(Severity.init(rawValue:))
            scores[nil]!.score.add(status: code, worst: severity, count: count, policy: policy)
            scores[registry, default: (host, SecureScore())].score.add(status: code, worst: severity, count: count, policy: policy)
        }
        return scores
    }

    /// Appends a history row for every score (subscription and registries) that differs from its latest row.
    func recordScores(tenantID: UUID, subscriptionID: UUID, on connection: PostgresConnection) async throws {
        let current = try await scores(tenantID: tenantID, subscriptionID: subscriptionID, on: connection)
        let rows = try await connection.query("""
            SELECT DISTINCT ON (registry_id) registry_id, healthy, unhealthy, not_applicable, unhealthy_weight
            FROM findings_policy.secure_scores WHERE tenant_id = \(tenantID) AND subscription_id = \(subscriptionID)
            ORDER BY registry_id, id DESC
            """, logger: logger)
        var latest: [UUID?: SecureScore] = [:]
        for try await (registry, healthy, unhealthy, notApplicable, weight) in rows.decode((UUID?, Int, Int, Int, Double).self) {
            latest[registry] = SecureScore(healthy: healthy, unhealthy: unhealthy, notApplicable: notApplicable,
                                           unhealthyWeight: weight)
        }
        for (registry, entry) in current where latest[registry] != entry.score {
            let (host, score) = entry
            // A subscription without images has nothing to record until it gets one.
            if registry == nil && latest[registry] == nil && score == SecureScore() { continue }
            try await connection.query("""
                INSERT INTO findings_policy.secure_scores (tenant_id, subscription_id, registry_id, registry_host, score,
                  healthy, unhealthy, not_applicable, unhealthy_weight)
                VALUES (\(tenantID), \(subscriptionID), \(registry), \(host), \(score.score), \(score.healthy), \(score.unhealthy),
                  \(score.notApplicable), \(score.unhealthyWeight))
                """, logger: logger)
        }
    }

    func scoreHistory(tenantID: UUID, subscriptionID: UUID, registryID: UUID?, limit: Int,
                      on connection: PostgresConnection) async throws -> [Components.Schemas.SecureScore] {
        let rows = try await connection.query("""
            SELECT registry_id, registry_host, score, healthy, unhealthy, not_applicable, unhealthy_weight, computed_at
            FROM findings_policy.secure_scores
            WHERE tenant_id = \(tenantID) AND subscription_id = \(subscriptionID) AND registry_id IS NOT DISTINCT FROM \(registryID)
            ORDER BY id DESC LIMIT \(limit)
            """, logger: logger)
        var items: [Components.Schemas.SecureScore] = []
        for try await (registry, host, score, healthy, unhealthy, notApplicable, weight, at)
            in rows.decode((UUID?, String?, Double?, Int, Int, Int, Double, Date).self) {
            items.append(.init(registryId: registry?.uuidString.lowercased(), registryHost: host, score: score,
                               healthyImages: healthy, unhealthyImages: unhealthy, notApplicableImages: notApplicable,
                               unhealthyWeight: weight, computedAt: at))
        }
        return items
    }

    // MARK: Tags

    /// Records that `tag` pointed at the image's digest at `seenAt`. The tag moves off the digest it was on
    /// unless that sighting is newer (reports can arrive out of order).
    func recordTag(_ tag: String, image key: ImageKey, tenantID: UUID, subscriptionID: UUID, seenAt: Date,
                   on connection: PostgresConnection) async throws {
        let rows = try await connection.query("""
            SELECT digest, first_seen, last_seen FROM findings_policy.image_tags
            WHERE subscription_id = \(subscriptionID) AND registry_id = \(key.registryID) AND repository = \(key.repository)
              AND tag = \(tag) AND moved_at IS NULL AND digest <> \(key.digest)
            """, logger: logger)
        var elsewhere: [(digest: String, firstSeen: Date, lastSeen: Date)] = []
        for try await row in rows.decode((String, Date, Date).self) { elsewhere.append(row) }
        // A later sighting on another digest wins: this one is history already.
        let later = elsewhere.filter { $0.lastSeen > seenAt }.max { $0.lastSeen < $1.lastSeen }
        if later == nil {
            try await connection.query("""
                UPDATE findings_policy.image_tags SET moved_at = \(seenAt), moved_to = \(key.digest)
                WHERE subscription_id = \(subscriptionID) AND registry_id = \(key.registryID) AND repository = \(key.repository)
                  AND tag = \(tag) AND moved_at IS NULL AND digest <> \(key.digest)
                """, logger: logger)
        }
        let newer = later != nil
        let movedAt = later.map { max($0.firstSeen, seenAt) }
        let movedTo = later?.digest
        try await connection.query("""
            INSERT INTO findings_policy.image_tags (tenant_id, subscription_id, registry_id, repository, tag, digest,
              first_seen, last_seen, moved_at, moved_to)
            VALUES (\(tenantID), \(subscriptionID), \(key.registryID), \(key.repository), \(tag), \(key.digest), \(seenAt), \(seenAt),
              \(movedAt), \(movedTo))
            ON CONFLICT (subscription_id, registry_id, repository, tag, digest) DO UPDATE SET
              first_seen = LEAST(image_tags.first_seen, EXCLUDED.first_seen),
              last_seen = GREATEST(image_tags.last_seen, EXCLUDED.last_seen),
              moved_at = CASE WHEN \(newer) THEN image_tags.moved_at ELSE NULL END,
              moved_to = CASE WHEN \(newer) THEN image_tags.moved_to ELSE NULL END
            """, logger: logger)
    }

    /// Ends every tag's pointing at a deleted image: they point nowhere now (no `moved_to`).
    func retireTags(of key: ImageKey, subscriptionID: UUID, at time: Date, on connection: PostgresConnection) async throws {
        try await connection.query("""
            UPDATE findings_policy.image_tags SET moved_at = \(time)
            WHERE subscription_id = \(subscriptionID) AND registry_id = \(key.registryID) AND repository = \(key.repository)
              AND digest = \(key.digest) AND moved_at IS NULL
            """, logger: logger)
    }

    /// The tags seen on each of `keys`, current and previous, by tag name.
    func tags(of keys: [ImageKey], tenantID: UUID, subscriptionID: UUID,
              on connection: PostgresConnection) async throws -> [ImageKey: Components.Schemas.ImageTags] {
        guard !keys.isEmpty else { return [:] }
        let digests = Array(Set(keys.map(\.digest)))
        let rows = try await connection.query("""
            SELECT registry_id, repository, digest, tag, first_seen, last_seen, moved_at, moved_to FROM findings_policy.image_tags
            WHERE tenant_id = \(tenantID) AND subscription_id = \(subscriptionID) AND digest = ANY(\(digests))
            ORDER BY tag
            """, logger: logger)
        let wanted = Set(keys)
        var tags: [ImageKey: Components.Schemas.ImageTags] = [:]
        for key in keys { tags[key] = .init(current: [], previous: []) }
        for try await (registry, repository, digest, tag, first, last, movedAt, movedTo)
            in rows.decode((UUID, String, String, String, Date, Date, Date?, String?).self) {
            let key = ImageKey(registryID: registry, repository: repository, digest: digest)
            guard wanted.contains(key) else { continue }
            let pointer = Components.Schemas.TagPointer(tag: tag, firstSeen: first, lastSeen: last, movedAt: movedAt, movedTo: movedTo)
            if movedAt == nil { tags[key]?.current.append(pointer) } else { tags[key]?.previous.append(pointer) }
        }
        return tags
    }

    // MARK: JSON

    static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }()

    /// Sorted-key JSON text, dates in ISO 8601.
    static func json(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        encoder.dateEncodingStrategy = .iso8601
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}
