import Foundation

/// Writes invoice line items as CSV per RFC 4180: a header row, CRLF after every record, and fields that
/// contain a comma, a double quote, CR or LF enclosed in double quotes with inner quotes doubled (section 2).
enum InvoiceCSV {
    /// The header row's fields, in order.
    static let header = ["month", "tenant_id", "subscription_id", "registry_id", "registry_host", "description",
                         "quantity", "unit_price", "list_price", "amount", "currency"]

    /// The document: the header and one record per row (each as many fields as `header`).
    static func document(rows: [[String]]) -> String {
        ([header] + rows).map { $0.map(field).joined(separator: ",") + "\r\n" }.joined()
    }

    /// One field, quoted when it must be.
    static func field(_ value: String) -> String {
        guard value.contains(where: { $0 == "," || $0 == "\"" || $0 == "\r" || $0 == "\n" || $0 == "\r\n" }) else { return value }
        return "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
