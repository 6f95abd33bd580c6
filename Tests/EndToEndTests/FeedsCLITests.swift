import Foundation
import GantryTesting
import Testing

/// `gantry feeds keygen|bundle` and `gantry scan --feeds` as an offline (air-gapped) user runs them, on the
/// corpus's feed directory: a bundle built from every recognised feed, scanned against, and refused once
/// tampered with or checked with another key.
@Suite(.enabled(if: Corpus.isAvailable, "the test corpus (../shared/corpus) is missing"), .serialized)
struct FeedsCLITests {
    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("gantry-feeds-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    static func findings(_ json: String) throws -> [[String: Any]] {
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        return try #require(object["findings"] as? [[String: Any]])
    }

    @Test func bundleFromTheCorpusFeedsScansLikeTheDirectoryAndRefusesTampering() throws {
        let gantry = CLITests.gantry
        let work = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let feeds = try Corpus.file("3-vuln-feeds").path
        let key = work.appendingPathComponent("signing.key").path
        let (keyStatus, publicKey, _) = try CLITests.run(gantry, ["feeds", "keygen", "--out", key])
        try #require(keyStatus == 0)
        let trusted = publicKey.trimmingCharacters(in: .whitespacesAndNewlines)
        let attributes = try FileManager.default.attributesOfItem(atPath: key)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let (again, _, exists) = try CLITests.run(gantry, ["feeds", "keygen", "--out", key])
        #expect(again != 0 && exists.contains("exists"))

        let bundle = work.appendingPathComponent("feeds.tar.gz").path
        let (status, summary, skipped) = try CLITests.run(gantry, ["feeds", "bundle", "--from-dir", feeds, "--out", bundle, "--signing-key", key])
        try #require(status == 0, "\(skipped)")
        #expect(summary.contains("documents"))
        // Formats Gantry does not read are listed, never guessed (OVAL XML, the RustSec native archive).
        #expect(skipped.contains("oval.xml"))
        #expect(skipped.contains("rustsec-advisory-db-main-native.tar.gz"))

        let image = try CLITests.image("python-app")
        let (directoryStatus, fromDirectory, _) = try CLITests.run(gantry, ["scan", image, "--feeds", feeds, "--format", "json"])
        try #require(directoryStatus == 0)
        let (bundleStatus, fromBundle, bundleErrors) = try CLITests.run(
            gantry, ["scan", image, "--feeds", bundle, "--public-key", trusted, "--format", "json"])
        try #require(bundleStatus == 0, "\(bundleErrors)")
        let directoryIDs = try Self.findings(fromDirectory).compactMap { $0["vulnerabilityID"] as? String }.sorted()
        let bundleIDs = try Self.findings(fromBundle).compactMap { $0["vulnerabilityID"] as? String }.sorted()
        #expect(directoryIDs.count >= 60)
        #expect(bundleIDs == directoryIDs)

        // Another key: refused, and the reason names the signer.
        let (_, otherKey, _) = try CLITests.run(gantry, ["feeds", "keygen", "--out", work.appendingPathComponent("other.key").path])
        let (wrongStatus, _, wrongErrors) = try CLITests.run(
            gantry, ["scan", image, "--feeds", bundle, "--public-key", otherKey.trimmingCharacters(in: .whitespacesAndNewlines)])
        #expect(wrongStatus != 0)
        #expect(wrongErrors.contains("not the trusted key"))
        // No key at all: refused with what to do.
        let (noKeyStatus, _, noKeyErrors) = try CLITests.run(gantry, ["scan", image, "--feeds", bundle])
        #expect(noKeyStatus != 0 && noKeyErrors.contains("--public-key"))

        // One byte of one document changed (rewritten with Python's tarfile): refused.
        let tamper = """
        import sys, tarfile, io
        with tarfile.open(sys.argv[1], "r:gz") as t:
            members = [(m.name, t.extractfile(m).read()) for m in t.getmembers()]
        with tarfile.open(sys.argv[1], "w:gz") as t:
            for name, data in members:
                if name == "documents/00001.json":
                    data = data.replace(b'"fixed"', b'"fixxd"', 1)
                info = tarfile.TarInfo(name); info.size = len(data); t.addfile(info, io.BytesIO(data))
        """
        let (tamperStatus, _, tamperErrors) = try CLITests.run("/usr/bin/env", ["python3", "-c", tamper, bundle])
        try #require(tamperStatus == 0, "\(tamperErrors)")
        let (tamperedStatus, _, tamperedErrors) = try CLITests.run(gantry, ["scan", image, "--feeds", bundle, "--public-key", trusted])
        #expect(tamperedStatus != 0)
        #expect(tamperedErrors.contains("does not match the manifest"))
    }

    @Test func scanAgainstTheCorpusFeedsReportsSeveritiesAndSources() throws {
        let feeds = try Corpus.file("3-vuln-feeds").path
        let (status, output, errors) = try CLITests.run(CLITests.gantry, ["scan", try CLITests.image("alpine-3.7.3"), "--feeds", feeds,
                                                                         "--format", "json"])
        try #require(status == 0, "\(errors)")
        let findings = try Self.findings(output)
        #expect(findings.map { "\($0["packageName"] ?? "") \($0["vulnerabilityID"] ?? "")" }.sorted()
            == ["musl CVE-2019-14697", "musl-utils CVE-2019-14697"])
        #expect(findings.allSatisfy { $0["namespace"] as? String == "alpine:v3.7" && $0["fixState"] as? String == "fixed" })
    }
}
