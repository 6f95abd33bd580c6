import Foundation
import GantryRuntime
import Testing

/// The byte-level repository and tag checks against the OCI distribution spec's regular expressions
/// ("Pulling manifests"), evaluated by NSRegularExpression as the oracle.
@Suite struct ValidationTests {
    static let repositoryOracle = try! NSRegularExpression(
        pattern: #"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$"#)
    static let tagOracle = try! NSRegularExpression(pattern: #"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$"#)

    static func matches(_ pattern: NSRegularExpression, _ value: String) -> Bool {
        pattern.firstMatch(in: value, range: NSRange(value.startIndex..., in: value)) != nil
    }

    @Test("repository names agree with the spec's expression on every string of up to 5 characters over a0._-/A")
    func repositoryExhaustive() {
        let alphabet: [Character] = ["a", "0", ".", "_", "-", "/", "A"]
        var strings = [""]
        var frontier = [""]
        for _ in 1...5 {
            frontier = frontier.flatMap { prefix in alphabet.map { prefix + String($0) } }
            strings += frontier
        }
        var accepted = 0
        for value in strings {
            let expected = Self.matches(Self.repositoryOracle, value)
            #expect(Validate.isRepositoryName(value) == expected, "'\(value)'")
            if expected { accepted += 1 }
        }
        #expect(strings.count == 19_608 && accepted > 100)
    }

    @Test("repository names: spec examples, length limit, non-ASCII")
    func repositoryExamples() throws {
        for good in ["library/alpine", "a", "my-org/my__app/v1.2", "a--b/c_d/e.f", String(repeating: "a", count: 255)] {
            #expect(Validate.isRepositoryName(good), "\(good)")
            #expect(try Validate.repository(good, field: "f") == good)
        }
        for bad in ["", "/a", "a/", "a//b", "A", "a___b", "a._b", "a.-b", "-a", "a-", "é", "a b",
                    String(repeating: "a", count: 256)] {
            #expect(!Validate.isRepositoryName(bad), "\(bad)")
            #expect(throws: ProblemError.self) { try Validate.repository(bad, field: "f") }
        }
    }

    @Test("tags agree with the spec's expression, including the 128-character limit")
    func tags() {
        let alphabet: [Character] = ["a", "Z", "0", "_", ".", "-", "/", "é"]
        var frontier = [""]
        for _ in 1...4 {
            frontier = frontier.flatMap { prefix in alphabet.map { prefix + String($0) } }
            for value in frontier { #expect(Validate.isTag(value) == Self.matches(Self.tagOracle, value), "'\(value)'") }
        }
        for value in ["", String(repeating: "a", count: 128), String(repeating: "a", count: 129), "_" + String(repeating: "-", count: 127)] {
            #expect(Validate.isTag(value) == Self.matches(Self.tagOracle, value), "\(value.count) characters")
        }
    }
}
