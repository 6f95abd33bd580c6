import Foundation
import GantryRuntime

/// UTC calendar days and months, the periods of usage reports and invoices (ISO 8601 calendar dates
/// `YYYY-MM-DD` and months `YYYY-MM`). UTC so that a period means the same instant range to every reader.
enum BillingCalendar {
    static let utc: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar
    }()

    /// The start of the UTC day `YYYY-MM-DD`.
    /// - Throws: `ProblemError` 400 naming `field` for anything else, including impossible dates (`2025-02-30`).
    static func day(_ text: String, field: String) throws -> Date {
        let parts = try numbers(text, lengths: [4, 2, 2], field: field, shape: "YYYY-MM-DD")
        return try date(year: parts[0], month: parts[1], day: parts[2], text: text, field: field)
    }

    /// The start of the UTC month `YYYY-MM` and of the next one.
    /// - Throws: `ProblemError` 400 naming `field` for anything else.
    static func month(_ text: String, field: String) throws -> (start: Date, end: Date) {
        let parts = try numbers(text, lengths: [4, 2], field: field, shape: "YYYY-MM")
        let start = try date(year: parts[0], month: parts[1], day: 1, text: text, field: field)
        guard let end = utc.date(byAdding: .month, value: 1, to: start) else {
            throw ProblemError.badRequest("\(field) '\(text)' is out of range")
        }
        return (start, end)
    }

    /// The day after `date` (for inclusive `to` bounds).
    static func nextDay(_ date: Date) -> Date { date.addingTimeInterval(86_400) }

    private static func numbers(_ text: String, lengths: [Int], field: String, shape: String) throws -> [Int] {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == lengths.count,
              zip(parts, lengths).allSatisfy({ part, length in part.count == length && part.allSatisfy(\.isASCII) && part.allSatisfy(\.isNumber) })
        else { throw ProblemError.badRequest("\(field) '\(text.prefix(40))' is not a date of the form \(shape)") }
        return parts.compactMap { Int($0) }
    }

    private static func date(year: Int, month: Int, day: Int, text: String, field: String) throws -> Date {
        guard (2000...9999).contains(year) else {
            throw ProblemError.badRequest("\(field) '\(text)' is outside the years 2000 to 9999")
        }
        let components = DateComponents(year: year, month: month, day: day)
        // Calendar normalises 2025-02-30 to March 2; reading the date back rejects it.
        guard (1...12).contains(month), let date = utc.date(from: components),
              utc.dateComponents([.year, .month, .day], from: date) == DateComponents(year: year, month: month, day: day)
        else { throw ProblemError.badRequest("\(field) '\(text)' is not a calendar date") }
        return date
    }
}
