import Foundation
import GantryModel
import GantryTesting
import Testing
@testable import ImageAnalysis

/// Go build info from real binaries (ELF amd64/arm64, PE; Go 1.15 pointer format and 1.18+ inline format),
/// checked against `go version -m` output, and the `golang` packages made from it.
@Suite struct GoBinaryTests {
    static let corpusBinaries = [
        "trivy-test.elf", "trivy-test.exe", "trivy-main-version-via-ldflags.elf",
        "scalibr-binary_with_module_replacement-linux-amd64", "snyk-stdlib_pack",
    ]

    static func corpusBytes(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: try Corpus.file("2-lang-metadata/go/\(name)")))
    }

    @Test(.enabled(if: Corpus.isAvailable), arguments: corpusBinaries)
    func matchesGoVersionM(_ name: String) throws {
        let expected = try String(contentsOf: try Corpus.file("2-lang-metadata/go/\(name).go-version-m.txt"), encoding: .utf8)
        let info = try #require(try GoBuildInfo.read(try Self.corpusBytes(name)))
        #expect("\(name): \(info.goVersion)\n" + info.versionMLines == expected)
    }

    @Test(.enabled(if: Corpus.isAvailable)) func packagesOfGo115Binary() throws {
        let info = try #require(try GoBuildInfo.read(try Self.corpusBytes("trivy-test.elf")))
        let packages = GoBinaryCataloger.packages(from: info, location: "usr/bin/test")
        #expect(packages.map(\.purl) == [
            "pkg:golang/github.com/aquasecurity/test@%28devel%29",
            "pkg:golang/github.com/aquasecurity/go-pep440-version@v0.0.0-20210121094942-22b2f8951d46",
            "pkg:golang/github.com/aquasecurity/go-version@v0.0.0-20210121072130-637058cfe492",
            "pkg:golang/golang.org/x/xerrors@v0.0.0-20200804184101-5ec99f83aff1",
            "pkg:golang/stdlib@1.15.2",
        ])
        #expect(packages.allSatisfy { $0.ecosystem == "golang" && $0.metadata?["goVersion"] == "go1.15.2" })
        #expect(packages[3].metadata?["h1Digest"] == "h1:go1bK/D/BFZV2I8cIQd1NKEZ+0owSTG1fDTci4IqFcE=")
        #expect(packages.last?.name == "stdlib" && packages.last?.version == "1.15.2")
    }

    @Test(.enabled(if: Corpus.isAvailable)) func replacementIsReportedAsBuilt() throws {
        let info = try #require(try GoBuildInfo.read(try Self.corpusBytes("scalibr-binary_with_module_replacement-linux-amd64")))
        let packages = GoBinaryCataloger.packages(from: info, location: "app")
        let xerrors = try #require(packages.first { $0.name == "github.com/golang/xerrors" })
        #expect(xerrors.version == "v0.0.0-20220907171357-04be3eba64a2")
        #expect(xerrors.metadata?["replaces"] == "golang.org/x/xerrors@v0.0.0-20220907171357-04be3eba64a2")
        #expect(xerrors.architecture == "amd64")
        #expect(packages.last?.purl == "pkg:golang/stdlib@1.22.0")
    }

    @Test(.enabled(if: Corpus.isAvailable)) func mainVersionFromLDFlags() throws {
        let info = try #require(try GoBuildInfo.read(try Self.corpusBytes("trivy-main-version-via-ldflags.elf")))
        let main = try #require(GoBinaryCataloger.packages(from: info, location: "app").first)
        #expect(main.name == "github.com/aquasecurity/test" && main.version == "v1.0.0")
        #expect(main.metadata?["versionSource"] == "ldflags")
    }

    /// Through the layer reader and the merged filesystem: an executable Go binary in one layer is found,
    /// a whiteout in the next removes it.
    @Test(.enabled(if: Corpus.isAvailable)) func goBinaryInLayersAndWhiteout() throws {
        let binary = try Self.corpusBytes("trivy-test.elf")
        var base = ModeTarBuilder()
        base.file("usr/local/bin/app", binary, mode: 0o755)
        base.file("usr/local/bin/script.sh", Array("#!/bin/sh\n".utf8), mode: 0o755)
        base.file("usr/share/app.data", binary, mode: 0o644) // not executable: not read
        let reader = LayerReader(interest: GoBinaryCataloger().interest)
        let lower = try reader.read(base.build())
        var filesystem = MergedFilesystem()
        filesystem.apply(lower)
        #expect(filesystem.extracted(by: GoBinaryCataloger.extractorName).map(\.path) == ["usr/local/bin/app"])
        var notes: [String] = []
        let found = GoBinaryCataloger().packages(in: filesystem, operatingSystem: nil, notes: &notes)
        #expect(found.packages.count == 5 && notes.isEmpty)
        #expect(found.packages.allSatisfy { $0.location == "usr/local/bin/app" })

        var upper = ModeTarBuilder()
        upper.whiteout("usr/local/bin/app")
        filesystem.apply(try reader.read(upper.build()))
        #expect(filesystem.extracted(by: GoBinaryCataloger.extractorName).isEmpty)
    }

    @Test func ldflagsVersionAndStdlibVersion() {
        #expect(GoBinaryCataloger.versionFromLDFlags("-s -w -X main.version=1.2.3 -X main.commit=abc") == "1.2.3")
        #expect(GoBinaryCataloger.versionFromLDFlags("-X github.com/x/y/internal/version.Version=v2.0.0") == "v2.0.0")
        #expect(GoBinaryCataloger.versionFromLDFlags("-s -w") == nil)
        #expect(GoBinaryCataloger.stdlibVersion("go1.22.0") == "1.22.0")
        #expect(GoBinaryCataloger.stdlibVersion("go1.20") == "1.20.0")
        #expect(GoBinaryCataloger.stdlibVersion("go1.21.3 X:boringcrypto") == "1.21.3")
        #expect(GoBinaryCataloger.stdlibVersion("devel go1.23-abc") == nil)
    }

    @Test func buildSettingsRoundTripQuoting() {
        let modinfo = "path\tx\nmod\tx\t(devel)\t\nbuild\t-ldflags=\"-w -X main.version=v1.0.0\"\nbuild\tCGO_ENABLED=0\n"
        let info = GoBuildInfo.parse(goVersion: "go1.22.1", modinfo: modinfo)
        #expect(info.setting("-ldflags") == "-w -X main.version=v1.0.0")
        #expect(info.versionMLines == modinfo.split(separator: "\n").map { "\t" + $0 + "\n" }.joined())
    }
}
