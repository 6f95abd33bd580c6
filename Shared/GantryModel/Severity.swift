/// Gantry's normalised severity of a vulnerability, lowest first.
///
/// The bands follow the CVSS v3.1 specification, section 5 "Qualitative Severity Rating Scale"
/// (Low 0.1–3.9, Medium 4.0–6.9, High 7.0–8.9, Critical 9.0–10.0), with `negligible` for
/// distributions that rate below Low and `unknown` where no source rates it.
public enum Severity: String, Sendable, Codable, CaseIterable, Comparable {
    case unknown = "Unknown"
    case negligible = "Negligible"
    case low = "Low"
    case medium = "Medium"
    case high = "High"
    case critical = "Critical"

    private var rank: Int {
        switch self {
        case .unknown: 0
        case .negligible: 1
        case .low: 2
        case .medium: 3
        case .high: 4
        case .critical: 5
        }
    }

    public static func < (lhs: Severity, rhs: Severity) -> Bool { lhs.rank < rhs.rank }
}
