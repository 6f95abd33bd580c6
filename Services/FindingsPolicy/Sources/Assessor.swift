import FindingsPolicyAPI
import Foundation

/// Classifies a scan report into an assessment status, as the seed product does
/// (Defender for container registries: Healthy / Unhealthy / NotApplicable).
enum Assessor {
    /// - NotApplicable when the scanner could not assess the image (the cause is its reason);
    /// - Unhealthy when any finding remains;
    /// - Healthy otherwise.
    static func status(of report: Components.Schemas.ScanReport) -> Components.Schemas.AssessmentStatus {
        switch report.outcome {
        case .notApplicable:
            let reason = report.notApplicableReason ?? "Unsupported"
            return .init(code: .notApplicable, cause: reason,
                         description: report.notes.first ?? "the image cannot be assessed: \(reason)")
        case .assessed:
            if report.findings.isEmpty {
                return .init(code: .healthy, cause: nil, description: "no known vulnerabilities were found")
            }
            let patchable = report.findings.filter(\.patchable).count
            return .init(code: .unhealthy, cause: nil,
                         description: "\(report.findings.count) vulnerability findings (\(patchable) patchable) should be resolved")
        }
    }
}
