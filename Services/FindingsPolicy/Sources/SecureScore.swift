import FindingsPolicyAPI
import Foundation

/// The secure score of a set of images (findings-policy.yaml, description: "Secure score").
///
/// `score = 100 × H / (H + Σ w(worst(u)))` over the Healthy images H and the Unhealthy images u, where
/// `w` is `SeverityPolicy.weight` of the worst finding that counts: a healthy image adds 1 to both sides,
/// an unhealthy one only to the denominator, more the worse it is. NotApplicable images (unsupported, or
/// every finding disabled by a rule) are outside the score; exempt findings never set an image's worst
/// severity. Rounded to two decimals; nil without Healthy or Unhealthy images, where there is nothing to score.
struct SecureScore: Sendable, Equatable {
    var healthy = 0
    var unhealthy = 0
    var notApplicable = 0
    var unhealthyWeight = 0.0

    /// Adds `count` images of one status; `worst` is the worst severity of Unhealthy ones.
    mutating func add(status: Components.Schemas.StatusCode, worst: Severity?, count: Int = 1, policy: SeverityPolicy) {
        switch status {
        case .healthy: healthy += count
        case .notApplicable: notApplicable += count
        case .unhealthy:
            unhealthy += count
            unhealthyWeight += Double(count) * policy.weight(worst ?? .unknown)
        }
    }

    var score: Double? {
        let denominator = Double(healthy) + unhealthyWeight
        guard healthy + unhealthy > 0, denominator > 0 else { return nil }
        return (100 * Double(healthy) / denominator * 100).rounded() / 100
    }
}
