import Foundation
import GantryModel
import Testing

@Suite struct DigestTests {
    static let sha256Hex = String(repeating: "0123456789abcdef", count: 4)
    static let sha512Hex = String(repeating: "0123456789abcdef", count: 8)

    @Test func parsesSHA256() throws {
        let digest = try Digest(parsing: "sha256:\(Self.sha256Hex)")
        #expect(digest.algorithm == "sha256")
        #expect(digest.encoded == Self.sha256Hex)
        #expect(digest.description == "sha256:\(Self.sha256Hex)")
    }

    @Test func parsesSHA512() throws {
        let digest = try Digest(parsing: "sha512:\(Self.sha512Hex)")
        #expect(digest.algorithm == "sha512")
        #expect(digest.encoded.count == 128)
    }

    @Test(arguments: [
        "sha256:\(sha256Hex.uppercased())",                 // uppercase hex
        "sha256:\(sha256Hex.dropLast())",                   // 63 characters
        "sha256:\(sha256Hex)0",                             // 65 characters
        "sha512:\(sha256Hex)",                              // sha512 with a sha256 length
        "md5:\(sha256Hex)",                                 // unknown algorithm
        "SHA256:\(sha256Hex)",                              // algorithm is case-sensitive
        "sha256\(sha256Hex)",                               // missing colon
        "sha256:\(sha256Hex.dropLast())g",                  // non-hex character
        "",
        ":",
        "sha256:",
    ])
    func rejectsMalformed(_ value: String) {
        #expect(throws: Digest.ParseError.malformed(value)) { try Digest(parsing: value) }
    }

    @Test func sha256FromBytes() throws {
        let digest = Digest(sha256: [UInt8](repeating: 0xab, count: 32))
        #expect(digest.description == "sha256:" + String(repeating: "ab", count: 32))
        #expect(try Digest(parsing: digest.description) == digest)
    }

    @Test func codableRoundTripAsPlainString() throws {
        let digest = try Digest(parsing: "sha256:\(Self.sha256Hex)")
        let data = try JSONEncoder().encode([digest])
        #expect(String(decoding: data, as: UTF8.self) == #"["sha256:\#(Self.sha256Hex)"]"#)
        #expect(try JSONDecoder().decode([Digest].self, from: data) == [digest])
    }

    @Test func decodingAMalformedDigestFails() {
        let data = Data(#"["sha256:ABC"]"#.utf8)
        #expect(throws: (any Error).self) { try JSONDecoder().decode([Digest].self, from: data) }
    }
}

@Suite struct SeverityTests {
    @Test func ordersLowestFirst() {
        let ordered: [Severity] = [.unknown, .negligible, .low, .medium, .high, .critical]
        #expect(Severity.allCases.sorted() == ordered)
        #expect([Severity.critical, .low, .unknown, .high].max() == .critical)
        #expect(Severity.medium < .high)
        #expect(!(Severity.high < .medium))
        #expect(!(Severity.low < .low))
    }

    @Test func codesAsDisplayNames() throws {
        let data = try JSONEncoder().encode(Severity.allCases)
        #expect(String(decoding: data, as: UTF8.self) == #"["Unknown","Negligible","Low","Medium","High","Critical"]"#)
        #expect(try JSONDecoder().decode([Severity].self, from: data) == Severity.allCases)
        #expect(throws: (any Error).self) { try JSONDecoder().decode([Severity].self, from: Data(#"["critical"]"#.utf8)) }
    }

    @Test func findingIsPatchableWhenAFixExists() {
        var finding = VulnerabilityFinding(vulnerabilityID: "CVE-2024-1", cves: ["CVE-2024-1"], packageName: "musl",
                                           sourceName: "musl", installedVersion: "1.1.18-r3", fixedVersion: "1.1.18-r4",
                                           severity: .high, source: "alpine-secdb:v3.7/main")
        #expect(finding.patchable)
        finding.fixedVersion = nil
        #expect(!finding.patchable)
    }
}
