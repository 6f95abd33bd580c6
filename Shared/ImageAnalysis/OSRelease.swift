/// A parser for `os-release(5)` files (freedesktop.org, "os-release — Operating system
/// identification"): newline-separated `KEY=VALUE` assignments, `#` comments and blank lines
/// ignored, values optionally in double or single quotes with shell-style backslash escapes
/// (`\"`, `\\`, `` \` ``, `\$`) inside double quotes.
enum OSRelease {
    /// The assignments in `bytes`; lines that are not assignments are skipped, later keys win.
    static func parse(_ bytes: [UInt8]) -> [String: String] {
        var fields: [String: String] = [:]
        let text = String(decoding: bytes, as: UTF8.self)
        for rawLine in text.split(whereSeparator: \.isNewline) {
            let line = rawLine.trimmedWhitespace()
            guard !line.isEmpty, !line.hasPrefix("#"), let equals = line.firstIndex(of: "=") else { continue }
            let key = String(line[..<equals])
            guard !key.isEmpty, key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else { continue }
            fields[key] = unquote(line[line.index(after: equals)...])
        }
        return fields
    }

    private static func unquote(_ value: Substring) -> String {
        guard let quote = value.first, quote == "\"" || quote == "'" else { return String(value) }
        var result = ""
        var escaped = false
        for character in value.dropFirst() {
            if escaped {
                // os-release(5): only these are escapes; a backslash before anything else is kept.
                if !["\"", "\\", "`", "$"].contains(character) { result.append("\\") }
                result.append(character)
                escaped = false
            } else if character == "\\" && quote == "\"" {
                escaped = true
            } else if character == quote {
                break
            } else {
                result.append(character)
            }
        }
        return result
    }
}

extension StringProtocol {
    /// The string without leading and trailing Unicode whitespace (Foundation-free).
    func trimmedWhitespace() -> String {
        guard let first = firstIndex(where: { !$0.isWhitespace }), let last = lastIndex(where: { !$0.isWhitespace })
        else { return "" }
        return String(self[first...last])
    }
}
