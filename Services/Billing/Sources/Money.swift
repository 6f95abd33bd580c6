import Foundation

/// Money amounts as decimal strings (never binary floating point): the database's `numeric(12, 4)` does the
/// arithmetic; Swift only checks and formats the text.
enum Money {
    /// A non-negative unit price with at most 8 integer and 4 fraction digits (`numeric(12, 4)`), e.g. `0.35`.
    static func isUnitPrice(_ text: String) -> Bool {
        let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let whole = parts.first, (1...8).contains(whole.count), whole.allSatisfy(isDigit) else { return false }
        guard parts.count == 2 else { return true }
        return (1...4).contains(parts[1].count) && parts[1].allSatisfy(isDigit)
    }

    /// `text` (a valid unit price) with exactly 4 fraction digits, as PostgreSQL prints `numeric(12, 4)`.
    static func fourPlaces(_ text: String) -> String {
        let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        let fraction = parts.count == 2 ? String(parts[1]) : ""
        return "\(parts.first ?? "0")." + fraction.padding(toLength: 4, withPad: "0", startingAt: 0)
    }

    /// Whether `text` is an ISO 4217 alphabetic code's shape: three uppercase ASCII letters.
    static func isCurrencyCode(_ text: String) -> Bool {
        text.count == 3 && text.allSatisfy { $0.isASCII && $0.isUppercase }
    }

    private static func isDigit(_ character: Character) -> Bool { character.isASCII && character.isNumber }
}
