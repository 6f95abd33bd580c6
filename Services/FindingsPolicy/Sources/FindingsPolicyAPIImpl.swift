import FindingsPolicyAPI
import Foundation
import GantryModel
import GantryRuntime
import Logging
import NotificationAPI
import PostgresNIO

/// Findings-policy's HTTP API (Shared/Contracts/specs/findings-policy.yaml).
struct FindingsPolicyAPIImpl: FindingsPolicyAPI.APIProtocol {
    let runtime: ServiceRuntime

    func submitReport(_ input: Operations.SubmitReport.Input) async throws -> Operations.SubmitReport.Output {
        guard case .json(let report) = input.body else { throw ProblemError.badRequest("expected a JSON body") }
        let tenantID = try Validate.uuid(report.tenantId, field: "tenantId")
        let subscriptionID = try Validate.uuid(report.subscriptionId, field: "subscriptionId")
        let registryID = try Validate.uuid(report.registryId, field: "registryId")
        let scanID = try Validate.uuid(report.scanId, field: "scanId")
        let digest = try Validate.digest(report.digest, field: "digest")
        let repository = try Validate.repository(report.repository, field: "repository")
        let messageID = try Validate.text(report.messageId, field: "messageId")
        let status = Assessor.status(of: report)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let findingsJSON = String(decoding: try encoder.encode(report.findings), as: UTF8.self)
        let notesJSON = String(decoding: try encoder.encode(report.notes), as: UTF8.self)
        let osJSON = try report.operatingSystem.map { String(decoding: try encoder.encode($0), as: UTF8.self) }
        let logger = runtime.logger
        let inbox = runtime.inbox
        let outbox = runtime.outbox
        try await runtime.database.withTransaction(logger: logger) { connection in
            guard try await inbox.claim(messageID, on: connection, logger: logger) else { return }
            let previous = try await connection.query("""
                SELECT status FROM findings_policy.assessments
                WHERE subscription_id = \(subscriptionID) AND registry_id = \(registryID)
                  AND repository = \(repository) AND digest = \(digest.description)
                FOR UPDATE
                """, logger: logger)
            var previousStatus: String?
            for try await value in previous.decode(String.self) { previousStatus = value }
            try await connection.query("""
                INSERT INTO findings_policy.assessments (tenant_id, subscription_id, registry_id, registry_host, repository,
                  digest, status, cause, description, operating_system, findings, notes, scan_id, time_generated)
                VALUES (\(tenantID), \(subscriptionID), \(registryID), \(report.registryHost), \(repository),
                  \(digest.description), \(status.code.rawValue), \(status.cause), \(status.description), \(osJSON),
                  \(findingsJSON), \(notesJSON), \(scanID), \(report.scannedAt))
                ON CONFLICT (subscription_id, registry_id, repository, digest) DO UPDATE SET
                  status = EXCLUDED.status, cause = EXCLUDED.cause, description = EXCLUDED.description,
                  operating_system = EXCLUDED.operating_system, findings = EXCLUDED.findings, notes = EXCLUDED.notes,
                  scan_id = EXCLUDED.scan_id, time_generated = EXCLUDED.time_generated, registry_host = EXCLUDED.registry_host
                """, logger: logger)
            // Alert only on a change to Unhealthy: an unchanged rescan alerts nobody.
            if status.code == .unhealthy && previousStatus != "Unhealthy" {
                // One alert per change, so keyed by the scan that found it (a later Healthy → Unhealthy change
                // is a new alert); at most 194 characters, within notification's 200 for any repository name.
                let alert = NotificationAPI.Components.Schemas.Alert(
                    messageId: "alert:image-unhealthy:\(scanID.uuidString.lowercased()):\(digest)",
                    tenantId: tenantID.uuidString.lowercased(), subscriptionId: subscriptionID.uuidString.lowercased(),
                    kind: .imageUnhealthy, imageDigest: digest.description, repositoryName: repository,
                    registryHost: report.registryHost, summary: status.description ?? "image is unhealthy",
                    findings: report.findings.map {
                        .init(vulnerabilityId: $0.vulnerabilityId, packageName: $0.packageName,
                              installedVersion: $0.installedVersion, fixedVersion: $0.fixedVersion,
                              severity: $0.severity.rawValue)
                    })
                try await outbox.enqueue(alert, messageID: alert.messageId, to: .notification,
                                         path: "/internal/v1/alerts", on: connection, logger: logger)
            }
        }
        let assessment = Components.Schemas.Assessment(
            imageDigest: digest.description, repositoryName: repository, registryHost: report.registryHost,
            registryId: registryID.uuidString.lowercased(), subscriptionId: subscriptionID.uuidString.lowercased(),
            status: status, operatingSystem: report.operatingSystem, findings: report.findings, notes: report.notes,
            scanId: scanID.uuidString.lowercased(), timeGenerated: report.scannedAt)
        return .accepted(.init(body: .json(assessment)))
    }

    func listAssessments(_ input: Operations.ListAssessments.Input) async throws -> Operations.ListAssessments.Output {
        let tenantID = try Validate.uuid(input.path.tenantId, field: "tenantId")
        let subscriptionID = try Validate.uuid(input.path.subscriptionId, field: "subscriptionId")
        let items = try await assessments(tenantID: tenantID, subscriptionID: subscriptionID, digest: nil,
                                          status: input.query.status?.rawValue)
        return .ok(.init(body: .json(.init(items: items))))
    }

    func getAssessment(_ input: Operations.GetAssessment.Input) async throws -> Operations.GetAssessment.Output {
        let tenantID = try Validate.uuid(input.path.tenantId, field: "tenantId")
        let subscriptionID = try Validate.uuid(input.path.subscriptionId, field: "subscriptionId")
        let digest = try Validate.digest(input.path.imageDigest, field: "imageDigest")
        guard let item = try await assessments(tenantID: tenantID, subscriptionID: subscriptionID, digest: digest.description,
                                               status: nil).first else {
            throw ProblemError.notFound("no assessment exists for image \(digest) in subscription \(subscriptionID)")
        }
        return .ok(.init(body: .json(item)))
    }

    private func assessments(tenantID: UUID, subscriptionID: UUID, digest: String?,
                             status: String?) async throws -> [Components.Schemas.Assessment] {
        let rows = try await runtime.database.query("""
            SELECT digest, repository, registry_host, registry_id, status, cause, description, operating_system,
                   findings, notes, scan_id, time_generated
            FROM findings_policy.assessments
            WHERE tenant_id = \(tenantID) AND subscription_id = \(subscriptionID)
              AND (\(digest)::text IS NULL OR digest = \(digest))
              AND (\(status)::text IS NULL OR status = \(status))
            ORDER BY time_generated DESC, repository, digest
            """, logger: runtime.logger)
        let decoder = JSONDecoder()
        var items: [Components.Schemas.Assessment] = []
        for try await (digest, repository, host, registry, code, cause, description, os, findings, notes, scan, time)
            in rows.decode((String, String, String, UUID, String, String?, String?, String?, String, String, UUID, Date).self) {
            items.append(.init(
                imageDigest: digest, repositoryName: repository, registryHost: host,
                registryId: registry.uuidString.lowercased(), subscriptionId: subscriptionID.uuidString.lowercased(),
                status: .init(code: .init(rawValue: code) ?? .notApplicable, cause: cause, description: description),
                operatingSystem: try os.map { try decoder.decode(Components.Schemas.OperatingSystem.self, from: Data($0.utf8)) },
                findings: try decoder.decode([Components.Schemas.Finding].self, from: Data(findings.utf8)),
                notes: try decoder.decode([String].self, from: Data(notes.utf8)),
                scanId: scan.uuidString.lowercased(), timeGenerated: time))
        }
        return items
    }
}
