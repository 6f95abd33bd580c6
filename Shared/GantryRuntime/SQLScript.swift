import Foundation
/// Splits a migration script into single statements, since PostgreSQL's extended query protocol
/// (which postgres-nio speaks) takes one command per Parse message.
///
/// Splits on `;` outside single-quoted strings, double-quoted identifiers, dollar-quoted bodies
/// (`$$…$$`, `$tag$…$tag$`) and `--` / `/* */` comments (PostgreSQL manual, section 4.1 "Lexical Structure").
public enum SQLScript {
    public static func statements(_ script: String) -> [String] {
        var statements: [String] = []
        var current = ""
        let characters = Array(script)
        var index = 0
        var dollarTag: String?
        while index < characters.count {
            let character = characters[index]
            let next: Character? = index + 1 < characters.count ? characters[index + 1] : nil
            if let tag = dollarTag {
                if character == "$", String(characters[index..<min(characters.count, index + tag.count)]) == tag {
                    current += tag
                    index += tag.count
                    dollarTag = nil
                    continue
                }
                current.append(character)
                index += 1
                continue
            }
            switch character {
            case "-" where next == "-":
                while index < characters.count, characters[index] != "\n" { index += 1 }
                continue
            case "/" where next == "*":
                index += 2
                while index + 1 < characters.count, !(characters[index] == "*" && characters[index + 1] == "/") { index += 1 }
                index += 2
                continue
            case "'", "\"":
                current.append(character)
                index += 1
                while index < characters.count {
                    current.append(characters[index])
                    if characters[index] == character {
                        if index + 1 < characters.count, characters[index + 1] == character {
                            current.append(character)
                            index += 2
                            continue
                        }
                        index += 1
                        break
                    }
                    index += 1
                }
                continue
            // A `$` inside an identifier (`a$b`) or after a positional parameter's digits opens no quote (section 4.1.1).
            case "$" where index == 0 || !(characters[index - 1].isLetter || characters[index - 1].isNumber
                                           || characters[index - 1] == "_" || characters[index - 1] == "$"):
                var end = index + 1
                while end < characters.count, characters[end].isLetter || characters[end].isNumber || characters[end] == "_" {
                    end += 1
                }
                if end < characters.count, characters[end] == "$" {
                    let tag = String(characters[index...end])
                    dollarTag = tag
                    current += tag
                    index = end + 1
                    continue
                }
            case ";":
                let statement = current.trimmingCharacters(in: .whitespacesAndNewlines)
                if !statement.isEmpty { statements.append(statement) }
                current = ""
                index += 1
                continue
            default:
                break
            }
            current.append(character)
            index += 1
        }
        let statement = current.trimmingCharacters(in: .whitespacesAndNewlines)
        if !statement.isEmpty { statements.append(statement) }
        return statements
    }
}
