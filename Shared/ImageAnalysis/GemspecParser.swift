/// Reads name, version and licenses out of an installed gem specification
/// (`specifications/<name>-<version>.gemspec`) without evaluating Ruby.
///
/// RubyGems writes these files with `Gem::Specification#to_ruby`: one `<var>.<attribute> = <value>`
/// assignment a line, string literals (usually with `.freeze`), versions as literals or
/// `Gem::Version.new("…")`, licenses as an array of literals. This parser looks only at those lines:
/// `name`, `version`, `license` and `licenses`, the first assignment of each winning, and takes the
/// string literals (`"…"`, `'…'`, `%q{…}`, `%q<…>`, `%q(…)`, `%q[…]`) in the value. A value built by
/// interpolation (`#{…}`) or any other expression is not understood and so not taken.
enum GemspecParser {
    struct Specification: Sendable, Hashable {
        var name: String?
        var version: String?
        var licenses: [String]
    }

    static func parse(_ bytes: [UInt8]) -> Specification {
        var specification = Specification(name: nil, version: nil, licenses: [])
        var sawLicenses = false
        let text = String(decoding: bytes, as: UTF8.self)
        for rawLine in text.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }) {
            let line = rawLine.trimmedWhitespace()
            guard let (attribute, value) = assignment(line) else { continue }
            switch attribute {
            case "name" where specification.name == nil:
                specification.name = literals(in: value).first
            case "version" where specification.version == nil:
                specification.version = literals(in: value).first
            case "license" where !sawLicenses, "licenses" where !sawLicenses:
                sawLicenses = true
                specification.licenses = literals(in: value).filter { !$0.isEmpty }
            default:
                break
            }
        }
        return specification
    }

    /// `("name", "\"rss\".freeze")` for `s.name = "rss".freeze`; nil for lines of any other shape.
    static func assignment(_ line: String) -> (String, Substring)? {
        guard let dot = line.firstIndex(of: "."), let equals = line.firstIndex(of: "="), dot < equals else { return nil }
        let receiver = line[..<dot]
        guard !receiver.isEmpty, receiver.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else { return nil }
        let attribute = line[line.index(after: dot)..<equals].trimmedWhitespace()
        guard ["name", "version", "license", "licenses"].contains(attribute) else { return nil }
        let rest = line[line.index(after: equals)...]
        // `==` is a comparison, not an assignment.
        guard rest.first != "=" else { return nil }
        return (attribute, rest)
    }

    /// `%q` delimiters and their closing partners.
    private static let closingDelimiters: [Character: Character] = ["{": "}", "<": ">", "(": ")", "[": "]"]

    /// The string literals in `value`, in order, up to a trailing `if`/`unless` modifier. A literal that
    /// interpolates (`"#{…}"`) makes the result empty: its value is unknown without evaluating Ruby.
    static func literals(in value: Substring) -> [String] {
        var results: [String] = []
        var index = value.startIndex
        while index < value.endIndex {
            let character = value[index]
            switch character {
            case "\"", "'":
                guard let (literal, end) = quoted(value, from: value.index(after: index), closing: character,
                                                  escapes: character == "\"") else { return results }
                if character == "\"", literal.contains("#{") { return [] }
                results.append(literal)
                index = end
            case "%":
                var next = value.index(after: index)
                if next < value.endIndex, value[next] == "q" || value[next] == "Q" { next = value.index(after: next) }
                guard next < value.endIndex, let closing = Self.closingDelimiters[value[next]] else {
                    index = value.index(after: index)
                    continue
                }
                guard let (literal, end) = quoted(value, from: value.index(after: next), closing: closing,
                                                  escapes: false) else { return results }
                results.append(literal)
                index = end
            case "#":
                return results
            case " " where value[index...].hasPrefix(" if ") || value[index...].hasPrefix(" unless "):
                // A statement modifier: what follows is a condition, not part of the value.
                return results
            default:
                index = value.index(after: index)
            }
        }
        return results
    }

    /// The literal starting at `start` up to the unescaped `closing`, and the index after it; nil when
    /// the line ends first.
    private static func quoted(_ value: Substring, from start: Substring.Index, closing: Character,
                               escapes: Bool) -> (String, Substring.Index)? {
        var literal = ""
        var index = start
        while index < value.endIndex {
            let character = value[index]
            if character == closing { return (literal, value.index(after: index)) }
            if character == "\\" {
                let next = value.index(after: index)
                guard next < value.endIndex else { return nil }
                let escaped = value[next]
                index = value.index(after: next)
                if !escapes {
                    // Single quotes and %q keep the backslash except before the delimiter or a backslash.
                    if escaped != closing && escaped != "\\" { literal.append("\\") }
                    literal.append(escaped)
                    continue
                }
                switch escaped {
                case "n": literal.append("\n")
                case "t": literal.append("\t")
                case "u":
                    // `\uXXXX`, as `to_ruby` writes non-ASCII characters.
                    let digits = value[index...].prefix(4)
                    if digits.count == 4, let code = UInt32(digits, radix: 16), let scalar = Unicode.Scalar(code) {
                        literal.unicodeScalars.append(scalar)
                        index = value.index(index, offsetBy: 4)
                    } else {
                        literal.append("u")
                    }
                default: literal.append(escaped)
                }
                continue
            }
            literal.append(character)
            index = value.index(after: index)
        }
        return nil
    }
}
