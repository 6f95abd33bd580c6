import FindingsPolicyAPI
import Foundation
import GantryRuntime

typealias Severity = Components.Schemas.Severity
typealias SeverityBand = Components.Schemas.SeverityBand

/// How Gantry's six severities map to the seed product's three and what an unhealthy image weighs in the
/// secure score (findings-policy.yaml, description: "Severity", "Secure score").
///
/// Banding: Critical and High → High, Medium → Medium, Low and Negligible → Low, Unknown → `unknownBand`.
/// Weights: Low 1, Medium 2, High 4, Critical 8 (each step doubles, so one Critical image counts as much
/// as eight Low ones), Negligible as Low, Unknown as its band.
struct SeverityPolicy: Sendable, Equatable {
    /// Where Unknown goes (`GANTRY_UNKNOWN_SEVERITY_BAND`, default Low: an unrated finding is no evidence of impact).
    var unknownBand: SeverityBand = .low

    /// Reads `GANTRY_UNKNOWN_SEVERITY_BAND` (`Low`, `Medium` or `High`).
    /// - Throws: `ConfigurationError` for any other value.
    init(environment: [String: String]) throws {
        if let value = environment["GANTRY_UNKNOWN_SEVERITY_BAND"] {
            guard let band = SeverityBand(rawValue: value) else {
                throw ConfigurationError(variable: "GANTRY_UNKNOWN_SEVERITY_BAND",
                                         message: "'\(value)' is not one of Low, Medium, High")
            }
            unknownBand = band
        }
    }

    init(unknownBand: SeverityBand = .low) { self.unknownBand = unknownBand }

    /// The seed product's severity of `severity`.
    func band(_ severity: Severity) -> SeverityBand {
        switch severity {
        case .critical, .high: .high
        case .medium: .medium
        case .low, .negligible: .low
        case .unknown: unknownBand
        }
    }

    /// What an unhealthy image whose worst finding has `severity` weighs in the secure score.
    func weight(_ severity: Severity) -> Double {
        switch severity {
        case .critical: 8
        case .high: 4
        case .medium: 2
        case .low, .negligible: 1
        case .unknown:
            switch unknownBand {
            case .high: 4
            case .medium: 2
            case .low: 1
            }
        }
    }

    /// The worst of `severities` by weight, ties broken by Gantry's order (Critical over an Unknown banded High);
    /// nil for none.
    func worst(_ severities: some Sequence<Severity>) -> Severity? {
        severities.max { (weight($0), rank($0)) < (weight($1), rank($1)) }
    }

    private func rank(_ severity: Severity) -> Int {
        Severity.allCases.firstIndex(of: severity) ?? 0
    }
}
