import Foundation
import GantryRuntime

/// A value in the query language: null, a boolean, a number (double) or a string. Dates are ISO 8601 strings.
enum QueryValue: Sendable, Equatable, Hashable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)

    var type: QueryType {
        switch self {
        case .null: .null
        case .bool: .bool
        case .number: .number
        case .string: .string
        }
    }
}

/// The static type of a column or expression; `null` fits every other.
enum QueryType: String, Sendable {
    case null, bool, number, string

    func fits(_ other: QueryType) -> Bool { self == other || self == .null || other == .null }
}

/// A query error at a place in the query text (1-based line and column).
struct QueryError: Error, Equatable, CustomStringConvertible {
    var line: Int
    var column: Int
    var message: String

    var description: String { "line \(line), column \(column): \(message)" }
    var problem: ProblemError { .badRequest(description) }
}

/// A place in the query text.
struct QueryPosition: Sendable, Equatable {
    var line: Int
    var column: Int
}

// MARK: Lexer

struct QueryToken: Sendable, Equatable {
    enum Kind: Sendable, Equatable {
        case identifier(String)
        case string(String)
        case number(Double)
        case symbol(String)
        case end
    }
    var kind: Kind
    var position: QueryPosition

    var text: String {
        switch kind {
        case .identifier(let name): name
        case .string(let value): "\"\(value)\""
        case .number(let value): QueryToken.format(value)
        case .symbol(let symbol): symbol
        case .end: "end of query"
        }
    }

    static func format(_ number: Double) -> String {
        number == number.rounded() && abs(number) < 1e15 ? String(Int64(number)) : String(number)
    }
}

/// Splits query text into tokens: identifiers (`[A-Za-z_][A-Za-z0-9_]*`), numbers (`123`, `7.5`), strings in
/// double or single quotes with backslash escapes (`\"`, `\'`, `\\`, `\n`, `\t`), the symbols
/// `| , ( ) = == != < <= > >= + - * /` and `!contains`, `!in`; `//` starts a comment to the end of the line.
enum QueryLexer {
    static func tokens(_ text: String) throws(QueryError) -> [QueryToken] {
        let characters = Array(text)
        var tokens: [QueryToken] = []
        var index = 0
        var line = 1
        var lineStart = 0
        func position(_ at: Int) -> QueryPosition { QueryPosition(line: line, column: at - lineStart + 1) }
        while index < characters.count {
            let character = characters[index]
            if character == "\n" {
                index += 1
                line += 1
                lineStart = index
                continue
            }
            if character.isWhitespace { index += 1; continue }
            let start = index
            if character == "/" && index + 1 < characters.count && characters[index + 1] == "/" {
                while index < characters.count && characters[index] != "\n" { index += 1 }
                continue
            }
            if character.isLetter || character == "_" {
                while index < characters.count && (characters[index].isLetter || characters[index].isNumber || characters[index] == "_") {
                    index += 1
                }
                tokens.append(.init(kind: .identifier(String(characters[start..<index])), position: position(start)))
                continue
            }
            if character.isNumber {
                while index < characters.count && (characters[index].isNumber || characters[index] == ".") { index += 1 }
                let literal = String(characters[start..<index])
                guard let value = Double(literal), literal.filter({ $0 == "." }).count <= 1 else {
                    throw QueryError(line: line, column: start - lineStart + 1, message: "'\(literal)' is not a number")
                }
                tokens.append(.init(kind: .number(value), position: position(start)))
                continue
            }
            if character == "\"" || character == "'" {
                index += 1
                var value = ""
                var closed = false
                while index < characters.count {
                    let next = characters[index]
                    if next == character { closed = true; index += 1; break }
                    if next == "\n" { break }
                    if next == "\\" && index + 1 < characters.count {
                        let escaped = characters[index + 1]
                        switch escaped {
                        case "n": value.append("\n")
                        case "t": value.append("\t")
                        case "\\", "\"", "'": value.append(escaped)
                        default:
                            throw QueryError(line: line, column: index - lineStart + 1, message: "unknown escape '\\\(escaped)' in a string")
                        }
                        index += 2
                        continue
                    }
                    value.append(next)
                    index += 1
                }
                guard closed else {
                    throw QueryError(line: line, column: start - lineStart + 1, message: "the string starting here is not closed")
                }
                tokens.append(.init(kind: .string(value), position: position(start)))
                continue
            }
            let rest = String(characters[index..<min(index + 9, characters.count)])
            if rest.hasPrefix("!contains"), !(index + 9 < characters.count && (characters[index + 9].isLetter || characters[index + 9] == "_")) {
                tokens.append(.init(kind: .symbol("!contains"), position: position(start)))
                index += 9
                continue
            }
            if rest.hasPrefix("!in"), !(index + 3 < characters.count && (characters[index + 3].isLetter || characters[index + 3] == "_")) {
                tokens.append(.init(kind: .symbol("!in"), position: position(start)))
                index += 3
                continue
            }
            let two = String(characters[index..<min(index + 2, characters.count)])
            if ["==", "!=", "<=", ">="].contains(two) {
                tokens.append(.init(kind: .symbol(two), position: position(start)))
                index += 2
                continue
            }
            if "|,()=<>+-*/".contains(character) {
                tokens.append(.init(kind: .symbol(String(character)), position: position(start)))
                index += 1
                continue
            }
            throw QueryError(line: line, column: start - lineStart + 1, message: "unexpected character '\(character)'")
        }
        tokens.append(.init(kind: .end, position: position(index)))
        return tokens
    }
}

// MARK: Syntax

/// An expression of the query language with where it starts.
indirect enum QueryExpression: Sendable, Equatable {
    case literal(QueryValue, QueryPosition)
    case column(String, QueryPosition)
    case not(QueryExpression, QueryPosition)
    case negate(QueryExpression, QueryPosition)
    case binary(String, QueryExpression, QueryExpression, QueryPosition)
    case list(String, QueryExpression, [QueryExpression], QueryPosition)
    case call(String, [QueryExpression], QueryPosition)

    var position: QueryPosition {
        switch self {
        case .literal(_, let p), .column(_, let p), .not(_, let p), .negate(_, let p), .binary(_, _, _, let p), .list(_, _, _, let p),
             .call(_, _, let p): p
        }
    }
}

/// One tabular operator after the table name.
enum QueryOperator: Sendable, Equatable {
    case `where`(QueryExpression)
    case project([(name: String, position: QueryPosition)])
    case extend([(name: String, expression: QueryExpression)])
    case summarize(count: String, by: [(name: String, position: QueryPosition)])
    case order([(name: String, position: QueryPosition, descending: Bool)])
    case take(Int)

    static func == (a: QueryOperator, b: QueryOperator) -> Bool {
        switch (a, b) {
        case (.where(let x), .where(let y)): x == y
        case (.project(let x), .project(let y)): x.map(\.name) == y.map(\.name)
        case (.extend(let x), .extend(let y)): x.map(\.name) == y.map(\.name) && x.map(\.expression) == y.map(\.expression)
        case (.summarize(let c, let x), .summarize(let d, let y)): c == d && x.map(\.name) == y.map(\.name)
        case (.order(let x), .order(let y)): x.map(\.name) == y.map(\.name) && x.map(\.descending) == y.map(\.descending)
        case (.take(let x), .take(let y)): x == y
        default: false
        }
    }
}

/// A parsed query: a table and its operators.
struct FindingsQuery: Sendable, Equatable {
    var table: String
    var tablePosition: QueryPosition
    var operators: [(QueryOperator, QueryPosition)]

    static func == (a: FindingsQuery, b: FindingsQuery) -> Bool {
        a.table == b.table && a.operators.map(\.0) == b.operators.map(\.0)
    }
}

/// The parser of the findings query language: a small subset of the Kusto Query Language (KQL) over
/// the `Findings` and `Assessments` tables. Keywords and function names ignore case; column names do not.
///
/// ```ebnf
/// query      = table { "|" operator } ;
/// table      = identifier ;                                   (* Findings | Assessments *)
/// operator   = "where" expr
///            | "project" identifier { "," identifier }
///            | "extend" identifier "=" expr { "," identifier "=" expr }
///            | "summarize" [ identifier "=" ] "count" "(" ")" [ "by" identifier { "," identifier } ]
///            | ( "order" | "sort" ) "by" identifier [ "asc" | "desc" ] { "," identifier [ "asc" | "desc" ] }
///            | ( "take" | "limit" ) integer ;
/// expr       = and { "or" and } ;
/// and        = not { "and" not } ;
/// not        = "not" not | comparison ;
/// comparison = sum [ ( "==" | "!=" | "<" | "<=" | ">" | ">=" | "contains" | "!contains" ) sum
///                  | ( "in" | "!in" ) "(" expr { "," expr } ")" ] ;
/// sum        = product { ( "+" | "-" ) product } ;
/// product    = unary { ( "*" | "/" ) unary } ;
/// unary      = "-" unary | primary ;
/// primary    = number | string | "true" | "false" | "null" | identifier
///            | function "(" [ expr { "," expr } ] ")" | "(" expr ")" ;
/// function   = "tolower" | "toupper" | "strlen" | "strcat" | "isnull" | "isnotnull" | "not" ;
/// ```
/// `summarize` names its count `count_` unless given a name; `order by` without direction is descending, as in
/// Kusto. `contains` ignores case; `==` and `in` do not. A comparison with null is false; `and`/`or`/`not` take
/// booleans only.
/// - Throws: `QueryError` at the offending token: unexpected token, unknown operator or function, bad integer.
enum QueryParser {
    static let maxLength = 10_000
    static let functions: Set<String> = ["tolower", "toupper", "strlen", "strcat", "isnull", "isnotnull", "not"]

    static func parse(_ text: String) throws(QueryError) -> FindingsQuery {
        guard text.count <= maxLength else {
            throw QueryError(line: 1, column: 1, message: "the query is longer than \(maxLength) characters")
        }
        var parser = Parser(tokens: try QueryLexer.tokens(text))
        return try parser.query()
    }

    private struct Parser {
        let tokens: [QueryToken]
        var index = 0

        var current: QueryToken { tokens[index] }

        mutating func advance() -> QueryToken {
            let token = tokens[index]
            if index < tokens.count - 1 { index += 1 }
            return token
        }

        func error(_ message: String, at token: QueryToken? = nil) -> QueryError {
            let token = token ?? current
            return QueryError(line: token.position.line, column: token.position.column, message: message)
        }

        func isKeyword(_ word: String) -> Bool {
            if case .identifier(let name) = current.kind { return name.lowercased() == word }
            return false
        }

        func isSymbol(_ symbol: String) -> Bool { current.kind == .symbol(symbol) }

        mutating func expectSymbol(_ symbol: String, _ context: String) throws(QueryError) {
            guard isSymbol(symbol) else { throw error("expected '\(symbol)' \(context), found \(current.text)") }
            _ = advance()
        }

        mutating func expectKeyword(_ word: String, _ context: String) throws(QueryError) {
            guard isKeyword(word) else { throw error("expected '\(word)' \(context), found \(current.text)") }
            _ = advance()
        }

        mutating func identifier(_ what: String) throws(QueryError) -> (String, QueryPosition) {
            guard case .identifier(let name) = current.kind else { throw error("expected \(what), found \(current.text)") }
            let position = advance().position
            return (name, position)
        }

        mutating func query() throws(QueryError) -> FindingsQuery {
            let (table, position) = try identifier("a table name (Findings or Assessments)")
            var operators: [(QueryOperator, QueryPosition)] = []
            while isSymbol("|") {
                _ = advance()
                let start = current
                operators.append((try tabularOperator(), start.position))
            }
            guard current.kind == .end else { throw error("expected '|' or the end of the query, found \(current.text)") }
            return FindingsQuery(table: table, tablePosition: position, operators: operators)
        }

        mutating func tabularOperator() throws(QueryError) -> QueryOperator {
            let token = current
            guard case .identifier(let name) = token.kind else { throw error("expected an operator after '|', found \(token.text)") }
            _ = advance()
            switch name.lowercased() {
            case "where":
                return .where(try expression())
            case "project":
                var columns = [try identifier("a column name")]
                while isSymbol(",") { _ = advance(); columns.append(try identifier("a column name")) }
                return .project(columns.map { (name: $0.0, position: $0.1) })
            case "extend":
                var columns: [(name: String, expression: QueryExpression)] = []
                repeat {
                    if !columns.isEmpty { _ = advance() }
                    let (column, _) = try identifier("a new column name")
                    try expectSymbol("=", "after the new column's name")
                    columns.append((column, try expression()))
                } while isSymbol(",")
                return .extend(columns)
            case "summarize":
                var countName = "count_"
                if case .identifier(let first) = current.kind, first.lowercased() != "count", tokens[index + 1].kind == .symbol("=") {
                    countName = first
                    _ = advance()
                    _ = advance()
                }
                let aggregate = current
                guard case .identifier(let function) = aggregate.kind, function.lowercased() == "count" else {
                    throw error("expected count() after summarize (the only aggregate), found \(aggregate.text)")
                }
                _ = advance()
                try expectSymbol("(", "after count")
                try expectSymbol(")", "count() takes no argument")
                var by: [(name: String, position: QueryPosition)] = []
                if isKeyword("by") {
                    _ = advance()
                    repeat {
                        if !by.isEmpty { _ = advance() }
                        let (column, position) = try identifier("a column name")
                        by.append((column, position))
                    } while isSymbol(",")
                }
                return .summarize(count: countName, by: by)
            case "order", "sort":
                try expectKeyword("by", "after \(name)")
                var columns: [(name: String, position: QueryPosition, descending: Bool)] = []
                repeat {
                    if !columns.isEmpty { _ = advance() }
                    let (column, position) = try identifier("a column name")
                    var descending = true
                    if isKeyword("asc") { descending = false; _ = advance() } else if isKeyword("desc") { _ = advance() }
                    columns.append((column, position, descending))
                } while isSymbol(",")
                return .order(columns)
            case "take", "limit":
                guard case .number(let value) = current.kind, value == value.rounded(), value >= 0, value <= 1_000_000 else {
                    throw error("expected a whole number of rows (0–1000000) after \(name), found \(current.text)")
                }
                _ = advance()
                return .take(Int(value))
            default:
                throw error("unknown operator '\(name)'; expected where, project, extend, summarize, order by or take", at: token)
            }
        }

        mutating func expression() throws(QueryError) -> QueryExpression {
            var left = try conjunction()
            while isKeyword("or") {
                let position = advance().position
                left = .binary("or", left, try conjunction(), position)
            }
            return left
        }

        mutating func conjunction() throws(QueryError) -> QueryExpression {
            var left = try negation()
            while isKeyword("and") {
                let position = advance().position
                left = .binary("and", left, try negation(), position)
            }
            return left
        }

        mutating func negation() throws(QueryError) -> QueryExpression {
            if isKeyword("not") {
                let position = advance().position
                return .not(try negation(), position)
            }
            return try comparison()
        }

        mutating func comparison() throws(QueryError) -> QueryExpression {
            let left = try sum()
            for symbol in ["==", "!=", "<=", ">=", "<", ">", "!contains"] where isSymbol(symbol) {
                let position = advance().position
                return .binary(symbol, left, try sum(), position)
            }
            if isKeyword("contains") {
                let position = advance().position
                return .binary("contains", left, try sum(), position)
            }
            if isKeyword("in") || isSymbol("!in") {
                let operation = isSymbol("!in") ? "!in" : "in"
                let position = advance().position
                try expectSymbol("(", "after \(operation)")
                var values = [try expression()]
                while isSymbol(",") { _ = advance(); values.append(try expression()) }
                try expectSymbol(")", "to close the \(operation) list")
                return .list(operation, left, values, position)
            }
            return left
        }

        mutating func sum() throws(QueryError) -> QueryExpression {
            var left = try product()
            while isSymbol("+") || isSymbol("-") {
                let token = advance()
                left = .binary(token.text, left, try product(), token.position)
            }
            return left
        }

        mutating func product() throws(QueryError) -> QueryExpression {
            var left = try unary()
            while isSymbol("*") || isSymbol("/") {
                let token = advance()
                left = .binary(token.text, left, try unary(), token.position)
            }
            return left
        }

        mutating func unary() throws(QueryError) -> QueryExpression {
            if isSymbol("-") {
                let position = advance().position
                return .negate(try unary(), position)
            }
            return try primary()
        }

        mutating func primary() throws(QueryError) -> QueryExpression {
            let token = current
            switch token.kind {
            case .number(let value):
                _ = advance()
                return .literal(.number(value), token.position)
            case .string(let value):
                _ = advance()
                return .literal(.string(value), token.position)
            case .symbol("("):
                _ = advance()
                let inner = try expression()
                try expectSymbol(")", "to close the parenthesis")
                return inner
            case .identifier(let name):
                _ = advance()
                switch name.lowercased() {
                case "true": return .literal(.bool(true), token.position)
                case "false": return .literal(.bool(false), token.position)
                case "null": return .literal(.null, token.position)
                default: break
                }
                guard isSymbol("(") else { return .column(name, token.position) }
                guard Self.isFunction(name) else { throw error("unknown function '\(name)'", at: token) }
                _ = advance()
                var arguments: [QueryExpression] = []
                if !isSymbol(")") {
                    arguments.append(try expression())
                    while isSymbol(",") { _ = advance(); arguments.append(try expression()) }
                }
                try expectSymbol(")", "to close the arguments of \(name)")
                if name.lowercased() == "not" {
                    guard arguments.count == 1 else { throw error("not() takes one argument", at: token) }
                    return .not(arguments[0], token.position)
                }
                return .call(name.lowercased(), arguments, token.position)
            default:
                throw error("expected a value, a column or '(', found \(token.text)")
            }
        }

        static func isFunction(_ name: String) -> Bool { QueryParser.functions.contains(name.lowercased()) }
    }
}

// MARK: Evaluation

/// A table of rows: named, typed columns and values in column order.
struct QueryTable: Sendable, Equatable {
    var columns: [(name: String, type: QueryType)]
    var rows: [[QueryValue]]

    static func == (a: QueryTable, b: QueryTable) -> Bool {
        a.columns.map(\.name) == b.columns.map(\.name) && a.rows == b.rows
    }

    func index(of name: String) -> Int? { columns.firstIndex { $0.name == name } }
}

/// Runs a parsed query over a table: checks every column and type before touching a row, then applies the
/// operators in order.
/// - Throws: `QueryError` for an unknown table or column (with the columns there are), a type mismatch
///   (`cvss > "7"`, `severity and true`), or a wrong function arity.
enum QueryEvaluator {
    static func run(_ query: FindingsQuery, tables: [String: QueryTable]) throws(QueryError) -> QueryTable {
        guard let table = tables[query.table] ?? tables.first(where: { $0.key.lowercased() == query.table.lowercased() })?.value else {
            throw QueryError(line: query.tablePosition.line, column: query.tablePosition.column,
                             message: "unknown table '\(query.table)'; the tables are \(tables.keys.sorted().joined(separator: ", "))")
        }
        var result = table
        for (operation, _) in query.operators {
            result = try apply(operation, to: result)
        }
        return result
    }

    static func apply(_ operation: QueryOperator, to table: QueryTable) throws(QueryError) -> QueryTable {
        switch operation {
        case .where(let expression):
            let type = try check(expression, table)
            guard type.fits(.bool) else { throw error(at: expression.position, "where needs a boolean condition, not a \(type.rawValue)") }
            var result = table
            result.rows = table.rows.filter { evaluate(expression, table, $0) == .bool(true) }
            return result
        case .project(let columns):
            var indexes: [Int] = []
            for column in columns {
                indexes.append(try index(column.name, column.position, table))
            }
            return QueryTable(columns: indexes.map { table.columns[$0] }, rows: table.rows.map { row in indexes.map { row[$0] } })
        case .extend(let columns):
            var result = table
            for column in columns {
                let type = try check(column.expression, result)
                let values = result.rows.map { evaluate(column.expression, result, $0) }
                if let existing = result.index(of: column.name) {
                    result.columns[existing].type = type
                    for row in result.rows.indices { result.rows[row][existing] = values[row] }
                } else {
                    result.columns.append((column.name, type))
                    for row in result.rows.indices { result.rows[row].append(values[row]) }
                }
            }
            return result
        case .summarize(let count, let by):
            var indexes: [Int] = []
            for column in by { indexes.append(try index(column.name, column.position, table)) }
            var groups: [[QueryValue]: Int] = [:]
            var order: [[QueryValue]] = []
            for row in table.rows {
                let key = indexes.map { row[$0] }
                if groups[key] == nil { order.append(key) }
                groups[key, default: 0] += 1
            }
            // Without `by`, one row even over no rows (Kusto: count() of nothing is 0).
            if indexes.isEmpty && order.isEmpty { order = [[]]; groups[[]] = 0 }
            return QueryTable(columns: indexes.map { table.columns[$0] } + [(count, .number)],
                              rows: order.map { $0 + [.number(Double(groups[$0] ?? 0))] })
        case .order(let columns):
            var keys: [(Int, Bool)] = []
            for column in columns { keys.append((try index(column.name, column.position, table), column.descending)) }
            var result = table
            result.rows = table.rows.enumerated().sorted { a, b in
                for (index, descending) in keys {
                    let order = compare(a.element[index], b.element[index])
                    if order != .orderedSame { return descending ? order == .orderedDescending : order == .orderedAscending }
                }
                return a.offset < b.offset
            }.map(\.element)
            return result
        case .take(let count):
            var result = table
            result.rows = Array(table.rows.prefix(count))
            return result
        }
    }

    private static func error(at position: QueryPosition, _ message: String) -> QueryError {
        QueryError(line: position.line, column: position.column, message: message)
    }

    private static func index(_ name: String, _ position: QueryPosition, _ table: QueryTable) throws(QueryError) -> Int {
        guard let index = table.index(of: name) else { throw unknownColumn(name, position, table) }
        return index
    }

    private static func unknownColumn(_ name: String, _ position: QueryPosition, _ table: QueryTable) -> QueryError {
        let similar = table.columns.first { $0.name.lowercased() == name.lowercased() }.map { "; did you mean '\($0.name)'?" } ?? ""
        return error(at: position, "unknown column '\(name)'\(similar) (columns: \(table.columns.map(\.name).joined(separator: ", ")))")
    }

    /// The type of `expression` over `table`'s columns.
    static func check(_ expression: QueryExpression, _ table: QueryTable) throws(QueryError) -> QueryType {
        switch expression {
        case .literal(let value, _):
            return value.type
        case .column(let name, let position):
            return table.columns[try index(name, position, table)].type
        case .not(let inner, let position):
            let type = try check(inner, table)
            guard type.fits(.bool) else { throw error(at: position, "not needs a boolean, not a \(type.rawValue)") }
            return .bool
        case .negate(let inner, let position):
            let type = try check(inner, table)
            guard type.fits(.number) else { throw error(at: position, "'-' needs a number, not a \(type.rawValue)") }
            return .number
        case .binary(let operation, let left, let right, let position):
            let a = try check(left, table)
            let b = try check(right, table)
            switch operation {
            case "and", "or":
                guard a.fits(.bool), b.fits(.bool) else {
                    throw error(at: position, "\(operation) needs booleans on both sides, not \(a.rawValue) and \(b.rawValue)")
                }
                return .bool
            case "contains", "!contains":
                guard a.fits(.string), b.fits(.string) else {
                    throw error(at: position, "\(operation) needs strings on both sides, not \(a.rawValue) and \(b.rawValue)")
                }
                return .bool
            case "==", "!=", "<", "<=", ">", ">=":
                guard a.fits(b) else { throw error(at: position, "cannot compare a \(a.rawValue) with a \(b.rawValue) using \(operation)") }
                if a == .bool || b == .bool, !["==", "!="].contains(operation) {
                    throw error(at: position, "booleans have no order; use == or !=")
                }
                return .bool
            default:
                guard a.fits(.number), b.fits(.number) else {
                    throw error(at: position, "'\(operation)' needs numbers on both sides, not \(a.rawValue) and \(b.rawValue)")
                }
                return .number
            }
        case .list(let operation, let left, let values, let position):
            let a = try check(left, table)
            for value in values {
                let b = try check(value, table)
                guard a.fits(b) else { throw error(at: value.position, "\(operation) compares a \(a.rawValue) with a \(b.rawValue)") }
            }
            _ = position
            return .bool
        case .call(let name, let arguments, let position):
            let types = try arguments.map { (argument) throws(QueryError) -> QueryType in try check(argument, table) }
            func arity(_ count: Int) throws(QueryError) {
                guard types.count == count else { throw error(at: position, "\(name)() takes \(count) argument\(count == 1 ? "" : "s")") }
            }
            switch name {
            case "tolower", "toupper":
                try arity(1)
                guard types[0].fits(.string) else { throw error(at: position, "\(name)() needs a string") }
                return .string
            case "strlen":
                try arity(1)
                guard types[0].fits(.string) else { throw error(at: position, "strlen() needs a string") }
                return .number
            case "strcat":
                guard !types.isEmpty else { throw error(at: position, "strcat() needs at least one argument") }
                return .string
            default: // isnull, isnotnull
                try arity(1)
                return .bool
            }
        }
    }

    static func evaluate(_ expression: QueryExpression, _ table: QueryTable, _ row: [QueryValue]) -> QueryValue {
        switch expression {
        case .literal(let value, _):
            return value
        case .column(let name, _):
            return table.index(of: name).map { row[$0] } ?? .null
        case .not(let inner, _):
            if case .bool(let value) = evaluate(inner, table, row) { return .bool(!value) }
            return .null
        case .negate(let inner, _):
            if case .number(let value) = evaluate(inner, table, row) { return .number(-value) }
            return .null
        case .binary(let operation, let left, let right, _):
            let a = evaluate(left, table, row)
            if operation == "and" {
                if a == .bool(false) { return .bool(false) }
                let b = evaluate(right, table, row)
                if b == .bool(false) { return .bool(false) }
                return a == .bool(true) && b == .bool(true) ? .bool(true) : .null
            }
            if operation == "or" {
                if a == .bool(true) { return .bool(true) }
                let b = evaluate(right, table, row)
                if b == .bool(true) { return .bool(true) }
                return a == .bool(false) && b == .bool(false) ? .bool(false) : .null
            }
            let b = evaluate(right, table, row)
            switch operation {
            case "contains", "!contains":
                guard case .string(let text) = a, case .string(let part) = b else { return .bool(operation == "!contains") }
                let found = part.isEmpty || text.range(of: part, options: .caseInsensitive) != nil
                return .bool(operation == "contains" ? found : !found)
            case "==":
                return .bool(a != .null && a == b)
            case "!=":
                return .bool(a != .null && b != .null && a != b)
            case "<", "<=", ">", ">=":
                guard a != .null, b != .null, a.type == b.type else { return .bool(false) }
                let order = compare(a, b)
                switch operation {
                case "<": return .bool(order == .orderedAscending)
                case "<=": return .bool(order != .orderedDescending)
                case ">": return .bool(order == .orderedDescending)
                default: return .bool(order != .orderedAscending)
                }
            default:
                guard case .number(let x) = a, case .number(let y) = b else { return .null }
                switch operation {
                case "+": return .number(x + y)
                case "-": return .number(x - y)
                case "*": return .number(x * y)
                default: return y == 0 ? .null : .number(x / y)
                }
            }
        case .list(let operation, let left, let values, _):
            let value = evaluate(left, table, row)
            guard value != .null else { return .bool(operation == "!in") }
            let found = values.contains { evaluate($0, table, row) == value }
            return .bool(operation == "in" ? found : !found)
        case .call(let name, let arguments, _):
            let values = arguments.map { evaluate($0, table, row) }
            switch name {
            case "tolower": if case .string(let text) = values[0] { return .string(text.lowercased()) }; return .null
            case "toupper": if case .string(let text) = values[0] { return .string(text.uppercased()) }; return .null
            case "strlen": if case .string(let text) = values[0] { return .number(Double(text.count)) }; return .null
            case "strcat": return .string(values.map(text).joined())
            case "isnull": return .bool(values[0] == .null)
            default: return .bool(values[0] != .null)
            }
        }
    }

    /// Text of a value for strcat and CSV-like output.
    static func text(_ value: QueryValue) -> String {
        switch value {
        case .null: ""
        case .bool(let value): value ? "true" : "false"
        case .number(let value): QueryToken.format(value)
        case .string(let value): value
        }
    }

    /// Nulls first, then booleans, numbers and strings each in their natural order.
    static func compare(_ a: QueryValue, _ b: QueryValue) -> ComparisonResult {
        switch (a, b) {
        case (.null, .null): return .orderedSame
        case (.null, _): return .orderedAscending
        case (_, .null): return .orderedDescending
        case (.bool(let x), .bool(let y)): return x == y ? .orderedSame : (!x ? .orderedAscending : .orderedDescending)
        case (.number(let x), .number(let y)): return x == y ? .orderedSame : (x < y ? .orderedAscending : .orderedDescending)
        case (.string(let x), .string(let y)): return x == y ? .orderedSame : (x < y ? .orderedAscending : .orderedDescending)
        default:
            let rank: (QueryValue) -> Int = { value in
                switch value {
                case .null: 0
                case .bool: 1
                case .number: 2
                case .string: 3
                }
            }
            return rank(a) < rank(b) ? .orderedAscending : .orderedDescending
        }
    }
}
