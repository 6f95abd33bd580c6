@testable import FindingsPolicy
import FindingsPolicyAPI
import Foundation
import GantryRuntime
import HTTPTypes
import Testing

/// The findings query language: lexer, parser and evaluator, including every kind of error and where it points.
@Suite struct QueryLanguageTests {
    /// A small Findings table: four findings over two images.
    static let table: QueryTable = {
        func row(_ id: String, _ package: String, _ severity: String, _ cvss: Double?, _ patchable: Bool, _ digest: String) -> [QueryValue] {
            [.string(id), .string(package), .string(severity), cvss.map(QueryValue.number) ?? .null, .bool(patchable), .string(digest)]
        }
        return QueryTable(
            columns: [("id", .string), ("package", .string), ("severity", .string), ("cvss", .number), ("patchable", .bool),
                      ("digest", .string)],
            rows: [
                row("CVE-2019-14697", "musl", "Critical", 9.8, true, "sha256:a"),
                row("CVE-2021-3711", "libssl1.1", "High", 9.8, true, "sha256:a"),
                row("CVE-2022-0778", "openssl", "High", 7.5, false, "sha256:b"),
                row("CVE-2018-0001", "zlib", "Low", nil, false, "sha256:b"),
            ])
    }()

    static func run(_ text: String) throws -> QueryTable {
        try QueryEvaluator.run(try QueryParser.parse(text), tables: ["Findings": table])
    }

    static func ids(_ text: String) throws -> [String] {
        let result = try run(text)
        let index = try #require(result.index(of: "id"))
        return result.rows.map { QueryEvaluator.text($0[index]) }
    }

    static let filters: [(String, [String])] = [
        (#"Findings | where severity == "High""#, ["CVE-2021-3711", "CVE-2022-0778"]),
        (#"Findings | where severity != "High""#, ["CVE-2019-14697", "CVE-2018-0001"]),
        ("Findings | where cvss > 7.5", ["CVE-2019-14697", "CVE-2021-3711"]),
        ("Findings | where cvss >= 7.5", ["CVE-2019-14697", "CVE-2021-3711", "CVE-2022-0778"]),
        ("Findings | where cvss < 9", ["CVE-2022-0778"]),
        ("Findings | where cvss <= 9.8 and not(patchable)", ["CVE-2022-0778"]),
        // and binds tighter than or: (High and cvss > 7) or not patchable.
        (#"Findings | where severity == "High" and cvss > 8 or not(patchable)"#, ["CVE-2021-3711", "CVE-2022-0778", "CVE-2018-0001"]),
        (#"Findings | where severity == "High" and (cvss > 8 or not(patchable))"#, ["CVE-2021-3711", "CVE-2022-0778"]),
        (#"Findings | where package contains "SSL""#, ["CVE-2021-3711", "CVE-2022-0778"]),
        (#"Findings | where package !contains "ssl""#, ["CVE-2019-14697", "CVE-2018-0001"]),
        (#"Findings | where id in ("CVE-2019-14697", 'CVE-2018-0001')"#, ["CVE-2019-14697", "CVE-2018-0001"]),
        (#"Findings | where id !in ("CVE-2019-14697")"#, ["CVE-2021-3711", "CVE-2022-0778", "CVE-2018-0001"]),
        ("Findings | where patchable == true", ["CVE-2019-14697", "CVE-2021-3711"]),
        ("Findings | where isnull(cvss)", ["CVE-2018-0001"]),
        ("Findings | where not patchable and isnotnull(cvss)", ["CVE-2022-0778"]),
        ("Findings | where cvss * 2 - 1 > 17", ["CVE-2019-14697", "CVE-2021-3711"]),
        (#"Findings | where tolower(severity) == "low""#, ["CVE-2018-0001"]),
        ("Findings | where cvss == null", []),
        ("Findings | where -cvss < -9", ["CVE-2019-14697", "CVE-2021-3711"]),
        ("Findings | where strlen(package) == 4", ["CVE-2019-14697", "CVE-2018-0001"]),
        ("findings | WHERE cvss > 9 | TAKE 1", ["CVE-2019-14697"]),
        ("Findings | order by cvss asc, id asc | project id", ["CVE-2018-0001", "CVE-2022-0778", "CVE-2019-14697", "CVE-2021-3711"]),
        ("Findings | sort by cvss | take 2", ["CVE-2019-14697", "CVE-2021-3711"]),
        ("Findings // a comment\n| where cvss > 9\n| take 0", []),
    ]

    @Test(arguments: filters.indices)
    func filtering(_ index: Int) throws {
        let (query, expected) = Self.filters[index]
        #expect(try Self.ids(query) == expected, "\(query)")
    }

    @Test func summarizeCountsByColumns() throws {
        let result = try Self.run("Findings | summarize count() by severity | order by count_ desc, severity asc")
        #expect(result.columns.map(\.name) == ["severity", "count_"])
        #expect(result.rows == [[.string("High"), .number(2)], [.string("Critical"), .number(1)], [.string("Low"), .number(1)]])
        let named = try Self.run("Findings | where cvss > 7 | summarize n = count() by digest, patchable | order by n")
        #expect(named.columns.map(\.name) == ["digest", "patchable", "n"])
        #expect(named.rows.first == [.string("sha256:a"), .bool(true), .number(2)])
        #expect(try Self.run("Findings | where cvss > 100 | summarize count()").rows == [[.number(0)]])
    }

    @Test func extendAndProject() throws {
        let result = try Self.run(#"""
            Findings
            | extend label = strcat(package, "@", id), risk = cvss * 10
            | where risk >= 98
            | project label, risk
            """#)
        #expect(result.columns.map(\.name) == ["label", "risk"])
        #expect(result.rows == [[.string("musl@CVE-2019-14697"), .number(98)], [.string("libssl1.1@CVE-2021-3711"), .number(98)]])
        // A column made by extend can be filtered and ordered; an extended name replaces an existing column.
        let replaced = try Self.run("Findings | extend cvss = 0 | summarize count() by cvss")
        #expect(replaced.rows == [[.number(0), .number(4)]])
    }

    @Test func theBriefsExampleRuns() throws {
        let result = try Self.run(#"""
            Findings | where severity == "High" and cvss > 7 or not(patchable) | where package contains "ssl" |
            where id in ("CVE-2021-3711", "CVE-2022-0778") | extend x = cvss + 1 | project id, severity, x |
            summarize count() by severity | order by count_ desc | take 10
            """#)
        #expect(result.rows == [[.string("High"), .number(2)]])
    }

    /// (query, line, column, words the message contains)
    static let errors: [(String, Int, Int, String)] = [
        (#"Findings | where sevrity == "High""#, 1, 18, "unknown column 'sevrity'"),
        (#"Findings | where Severity == "High""#, 1, 18, "did you mean 'severity'?"),
        ("Findings | project id, pakage", 1, 24, "unknown column 'pakage'"),
        ("Findings | project id | where cvss > 1", 1, 31, "unknown column 'cvss'"),
        ("Findings | summarize count() by sevrity", 1, 33, "unknown column 'sevrity'"),
        ("Findings | order by nothing", 1, 21, "unknown column 'nothing'"),
        ("Finding | take 1", 1, 1, "unknown table 'Finding'"),
        ("Findings | wher cvss > 1", 1, 12, "unknown operator 'wher'"),
        ("Findings | where cvss >", 1, 24, "expected a value"),
        ("Findings | where (cvss > 1", 1, 27, "expected ')'"),
        (#"Findings | where id == "CVE"#, 1, 24, "not closed"),
        ("Findings | where cvss > 1 extra", 1, 27, "expected '|' or the end"),
        ("Findings | take -1", 1, 17, "whole number"),
        ("Findings | take 1.5", 1, 17, "whole number"),
        ("Findings | summarize sum(cvss)", 1, 22, "count()"),
        ("Findings | where frobnicate(id)", 1, 18, "unknown function 'frobnicate'"),
        (#"Findings | where cvss > "7""#, 1, 23, "cannot compare a number with a string"),
        ("Findings | where cvss", 1, 18, "needs a boolean condition"),
        ("Findings | where patchable and cvss", 1, 28, "booleans on both sides"),
        ("Findings | where cvss contains 9", 1, 23, "strings on both sides"),
        ("Findings | where patchable < true", 1, 28, "no order"),
        ("Findings | where strlen(id, id) > 1", 1, 18, "takes 1 argument"),
        ("Findings\n| where cvss > 1\n| where sevrity == 1", 3, 9, "unknown column 'sevrity'"),
        ("Findings | where id == \"a\" ; ", 1, 28, "unexpected character ';'"),
        ("Findings | where 1..2 > 1", 1, 18, "not a number"),
        ("| where cvss > 1", 1, 1, "expected a table name"),
        ("Findings | extend = 1", 1, 19, "expected a new column name"),
        ("Findings | order cvss", 1, 18, "expected 'by'"),
        (#"Findings | where id == "a\q""#, 1, 26, "unknown escape"),
    ]

    @Test(arguments: errors.indices)
    func errorsPointAtTheOffendingColumn(_ index: Int) {
        let (query, line, column, words) = Self.errors[index]
        do {
            _ = try Self.run(query)
            Issue.record("\(query) ran")
        } catch let error as QueryError {
            #expect(error.line == line && error.column == column, "\(query): \(error)")
            #expect(error.description.contains(words), "\(query): \(error)")
            #expect(error.description.hasPrefix("line \(line), column \(column): "))
            #expect(error.problem.status == .badRequest)
        } catch {
            Issue.record("\(query): \(error)")
        }
    }

    @Test func tooLongQueriesAreRefused() {
        #expect(throws: QueryError.self) { try QueryParser.parse("Findings" + String(repeating: " ", count: 10_001)) }
    }

    @Test func lexerTokens() throws {
        let tokens = try QueryLexer.tokens("a!=b !contains 'x\\'y' !in(1.5)")
        #expect(tokens.map(\.kind) == [
            .identifier("a"), .symbol("!="), .identifier("b"), .symbol("!contains"), .string("x'y"), .symbol("!in"), .symbol("("),
            .number(1.5), .symbol(")"), .end,
        ])
        #expect(tokens[4].position == QueryPosition(line: 1, column: 16))
    }

    @Test func tablesHaveTheDocumentedColumns() {
        let findings = QueryTables.findings([], tags: [:], views: Views(policy: SeverityPolicy(unknownBand: .low)))
        #expect(findings.columns.map(\.name).contains("tags") && findings.columns.map(\.name).contains("previousTags"))
        #expect(QueryTables.assessments([], tags: [:]).columns.map(\.name).contains("status"))
    }
}
