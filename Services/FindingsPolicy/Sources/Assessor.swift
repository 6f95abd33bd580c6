import FindingsPolicyAPI
import Foundation

/// What the scanner reported about an image, as policy needs it.
struct ReportedImage: Sendable {
    var outcome: Components.Schemas.ScanReport.OutcomePayload
    var notApplicableReason: String?
    var notes: [String]
    var findings: [Finding]
}

/// The policy's verdict on an image: its status and which findings rules exempt.
struct Evaluation: Sendable, Equatable {
    var status: Components.Schemas.AssessmentStatus
    /// Rule ID by finding position, for the exempt findings only.
    var exemptions: [Int: UUID]
    /// The worst severity among the findings that count; nil when none count.
    var worstSeverity: Severity?
    /// The statement's words by finding position, for the findings a VEX statement suppresses (their
    /// `exemptions` entry is the VEX document's ID).
    var vexJustifications: [Int: String] = [:]
}

/// Classifies a scan report into an assessment status, as the seed product does
/// (Defender for container registries: Healthy / Unhealthy / NotApplicable), after disable rules.
enum Assessor {
    /// - NotApplicable when the scanner could not assess the image (the cause is its reason);
    /// - NotApplicable with cause `Exempt` when findings exist and rules exempt every one;
    /// - Unhealthy when a finding that counts remains (its severity: the worst one's band);
    /// - Healthy otherwise.
    ///
    /// - Parameters:
    ///   - rules: the active rules whose scope holds the image, oldest first; the first match exempts.
    ///   - vex: the subscription's VEX documents for this image; a finding no rule exempts is exempt when a
    ///     `not_affected` or `fixed` statement matches it.
    static func evaluate(_ image: ReportedImage, rules: [DisableRule], vex: ScopedVEX = .none,
                         policy: SeverityPolicy) -> Evaluation {
        switch image.outcome {
        case .notApplicable:
            let reason = image.notApplicableReason ?? "Unsupported"
            return Evaluation(status: .init(code: .notApplicable, cause: reason,
                                            description: image.notes.first ?? "the image cannot be assessed: \(reason)"),
                              exemptions: [:], worstSeverity: nil)
        case .assessed:
            var exemptions: [Int: UUID] = [:]
            var vexJustifications: [Int: String] = [:]
            for (index, finding) in image.findings.enumerated() {
                if let rule = rules.first(where: { RuleMatcher.matches($0.criteria, finding) }) {
                    exemptions[index] = rule.id
                } else if let suppression = vex.suppression(of: finding) {
                    exemptions[index] = suppression.documentID
                    vexJustifications[index] = suppression.justification
                }
            }
            let counted = image.findings.enumerated().filter { exemptions[$0.offset] == nil }.map(\.element)
            if image.findings.isEmpty {
                return Evaluation(status: .init(code: .healthy, description: "no known vulnerabilities were found"),
                                  exemptions: [:], worstSeverity: nil)
            }
            if counted.isEmpty {
                return Evaluation(status: .init(code: .notApplicable, cause: "Exempt",
                                                description: "all \(image.findings.count) vulnerability findings are disabled by \(by(vexJustifications))"),
                                  exemptions: exemptions, worstSeverity: nil, vexJustifications: vexJustifications)
            }
            let worst = policy.worst(counted.map(\.severity))
            let patchable = counted.filter(\.patchable).count
            var description = "\(counted.count) vulnerability findings (\(patchable) patchable) should be resolved"
            if !exemptions.isEmpty { description += "; \(exemptions.count) more are disabled by \(by(vexJustifications))" }
            return Evaluation(status: .init(code: .unhealthy, description: description, severity: worst.map(policy.band)),
                              exemptions: exemptions, worstSeverity: worst, vexJustifications: vexJustifications)
        }
    }

    private static func by(_ vex: [Int: String]) -> String {
        vex.isEmpty ? "rules" : "rules or VEX statements"
    }
}
