import Foundation

/// An Internet Message Format message (RFC 5322) with one MIME text/plain part (RFC 2045): header fields, CRLF
/// line ends, a UTF-8 body in base64 (so no line is too long and no 8BITMIME is needed), and a subject in RFC 2047
/// encoded words when it is not plain ASCII. Addresses are checked (`EmailAddress`) before they get here.
struct EmailMessage: Sendable {
    var from: String
    var to: String
    var subject: String
    var text: String
    var messageID: String
    var date: Date
    /// Extra header fields (`X-Gantry-…`), ASCII.
    var extraHeaders: [(String, String)] = []

    /// The message bytes as sent after DATA.
    var rendered: Data {
        var lines = [
            "From: \(from)",
            "To: \(to)",
            "Subject: \(Self.encodedSubject(subject))",
            "Date: \(Self.rfc5322Date(date))",
            "Message-ID: <\(messageID)>",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: base64",
        ]
        lines += extraHeaders.map { "\($0.0): \(Self.headerSafe($0.1))" }
        let body = Data(text.utf8).base64EncodedString(options: [.lineLength76Characters, .endLineWithCarriageReturn,
                                                                  .endLineWithLineFeed])
        return Data((lines.joined(separator: "\r\n") + "\r\n\r\n" + body + "\r\n").utf8)
    }

    /// The subject as is when it is printable ASCII, else RFC 2047 "B" encoded words of at most 75 characters,
    /// split between whole characters and folded onto continuation lines.
    static func encodedSubject(_ subject: String) -> String {
        let flat = subject.replacingOccurrences(of: "\r", with: " ").replacingOccurrences(of: "\n", with: " ")
        if flat.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value < 0x7F }) && flat.utf8.count <= 900 {
            return flat
        }
        var words: [String] = []
        var chunk = ""
        for character in flat {
            // 45 bytes of UTF-8 become 60 base64 characters: with "=?UTF-8?B?" and "?=" a word stays under 75.
            if chunk.utf8.count + String(character).utf8.count > 45 {
                words.append(chunk)
                chunk = ""
            }
            chunk.append(character)
        }
        if !chunk.isEmpty { words.append(chunk) }
        return words.map { "=?UTF-8?B?\(Data($0.utf8).base64EncodedString())?=" }.joined(separator: "\r\n ")
    }

    /// `Tue, 05 Mar 2024 10:00:00 +0000` (RFC 5322 section 3.3), in UTC.
    static func rfc5322Date(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss '+0000'"
        return formatter.string(from: date)
    }

    private static func headerSafe(_ value: String) -> String {
        String(value.unicodeScalars.filter { $0.value >= 0x20 && $0.value < 0x7F }.map(Character.init))
    }
}
