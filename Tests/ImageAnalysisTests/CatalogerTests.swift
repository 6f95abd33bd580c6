import Foundation
import GantryModel
import GantryTesting
import Testing
@testable import ImageAnalysis

@Suite struct CatalogerTests {
    func filesystem(_ files: [String: String]) throws -> MergedFilesystem {
        var layer = TarBuilder()
        for (path, text) in files.sorted(by: { $0.key < $1.key }) { layer.file(path, text) }
        var filesystem = MergedFilesystem()
        filesystem.apply(try LayerReader().read(layer.build()))
        return filesystem
    }

    @Test func osReleaseQuotingFollowsTheManPage() {
        let fields = OSRelease.parse(Array("""
            # comment
            NAME="Alpine Linux"
            ID=alpine
            VERSION_ID=3.7.3
            PRETTY_NAME="Alpine \\"Linux\\" v3.7"
            HOME_URL='http://alpinelinux.org'
            not an assignment

            """.utf8))
        #expect(fields["NAME"] == "Alpine Linux")
        #expect(fields["ID"] == "alpine")
        #expect(fields["PRETTY_NAME"] == "Alpine \"Linux\" v3.7")
        #expect(fields["HOME_URL"] == "http://alpinelinux.org")
        #expect(fields.count == 5)
    }

    @Test func osReleaseFallsBackToUsrLib() throws {
        let inventory = Cataloger.inventory(of: try filesystem([
            "usr/lib/os-release": "ID=alpine\nVERSION_ID=3.20.3\nPRETTY_NAME=\"Alpine Linux v3.20\"\n",
            "lib/apk/db/installed": "",
        ]))
        #expect(inventory.operatingSystem == OperatingSystem(id: "alpine", versionID: "3.20.3", prettyName: "Alpine Linux v3.20",
                                                            endOfLife: true, endOfLifeDate: "2026-04-01"))
        #expect(inventory.notApplicable == nil)
    }

    @Test func alpineReleaseAloneIdentifiesAlpine() throws {
        let inventory = Cataloger.inventory(of: try filesystem(["etc/alpine-release": "3.4.6\n"]))
        #expect(inventory.operatingSystem?.id == "alpine")
        #expect(inventory.operatingSystem?.versionID == "3.4.6")
        #expect(inventory.notApplicable == .noPackageDatabase)
    }

    @Test func noPackageDatabaseIsNotApplicable() throws {
        let inventory = Cataloger.inventory(of: MergedFilesystem())
        #expect(inventory.operatingSystem == nil)
        #expect(inventory.packages.isEmpty)
        #expect(inventory.notApplicable == .noPackageDatabase)
        #expect(inventory.notes.contains { $0.contains("no package database") })
    }

    @Test func dpkgDatabaseIsCataloguedEvenWithoutPackages() throws {
        // dpkg is catalogued (DPKGCataloger): a database whose only stanza lacks a version is an
        // empty inventory with a note, not "unsupported" and not "no package database".
        let inventory = Cataloger.inventory(of: try filesystem([
            "etc/os-release": "ID=debian\nVERSION_ID=\"12\"\n", "var/lib/dpkg/status": "Package: bash\n",
        ]))
        #expect(inventory.notApplicable == nil)
        #expect(inventory.packages.isEmpty)
        #expect(inventory.notes.contains { $0.contains("bash has no Version") })
    }

    @Test func apkPackagesGetNameVersionOriginAndPurl() throws {
        let inventory = Cataloger.inventory(of: try filesystem([
            "etc/os-release": "ID=alpine\nVERSION_ID=3.7.3\n",
            "lib/apk/db/installed": """
                C:Q1abc=
                P:musl-utils
                V:1.1.18-r3
                A:x86_64
                o:musl
                F:usr/bin
                R:ldd

                P:broken
                A:x86_64

                P:zlib
                V:1.2.11+dfsg-r1
                A:x86_64
                o:zlib

                """,
        ]))
        #expect(inventory.packages.map(\.name) == ["musl-utils", "zlib"])
        let musl = try #require(inventory.packages.first)
        #expect(musl.sourceName == "musl")
        #expect(musl.version == "1.1.18-r3")
        #expect(musl.purl == "pkg:apk/alpine/musl-utils@1.1.18-r3?arch=x86_64&distro=alpine-3.7.3")
        #expect(inventory.packages[1].purl == "pkg:apk/alpine/zlib@1.2.11%2Bdfsg-r1?arch=x86_64&distro=alpine-3.7.3")
        #expect(musl.location == "lib/apk/db/installed")
        #expect(inventory.notes.contains { $0.contains("no V: (version)") })
    }

    /// Every apk database of the corpus parses; the counts stated in its SOURCES.md ("13 packages")
    /// and the number of `P:` lines with a `V:` are independent cross-checks.
    @Test(.enabled(if: Corpus.isAvailable)) func corpusAPKDatabasesParse() throws {
        let directory = try Corpus.file("1-os-pkgdb/apk")
        let sources = try String(contentsOf: directory.appendingPathComponent("SOURCES.md"), encoding: .utf8)
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".installed") }
        #expect(files.count >= 20)
        var checkedAgainstSources = 0
        for name in files.sorted() {
            let bytes = Array(try Data(contentsOf: directory.appendingPathComponent(name)))
            let (records, _) = APKDatabase.parse(bytes)
            // Independent count: stanzas (split on blank lines) having both a P: and a V: line.
            let text = String(decoding: bytes, as: UTF8.self)
            let stanzas = text.components(separatedBy: "\n\n").filter { stanza in
                let lines = stanza.split(separator: "\n")
                return lines.contains { $0.hasPrefix("P:") && $0.count > 2 } && lines.contains { $0.hasPrefix("V:") && $0.count > 2 }
            }
            #expect(records.count == stanzas.count, "\(name)")
            #expect(records.allSatisfy { !$0.name.isEmpty && !$0.version.isEmpty })
            // SOURCES.md: "`alpine-3.7.3-x86_64.installed`, … — Alpine 3.7.3 official minirootfs, 13 packages".
            if let line = sources.split(separator: "\n").first(where: { $0.contains("`\(name)`") }),
               let match = line.firstMatch(of: /, (\d+) packages/), let expected = Int(match.output.1) {
                #expect(records.count == expected, "\(name): SOURCES.md says \(expected) packages")
                checkedAgainstSources += 1
            }
        }
        #expect(checkedAgainstSources >= 15)
        // trivy's fixture has one deliberately invalid entry (no version).
        let trivy = Array(try Data(contentsOf: directory.appendingPathComponent("trivy-apk-alpine3.4era.installed")))
        #expect(APKDatabase.parse(trivy).notes.contains { $0.contains("no V:") })
        // syft's corrupt database: the garbage line is noted, the real stanza still read.
        let corrupt = APKDatabase.parse(Array(try Data(contentsOf: directory.appendingPathComponent("syft-corrupt.installed"))))
        #expect(corrupt.records.map(\.name) == ["alpine-baselayout-data"])
        #expect(!corrupt.notes.isEmpty)
    }

    @Test(.enabled(if: Corpus.isAvailable)) func corpusOSReleaseFilesParse() throws {
        let directory = try Corpus.file("1-os-pkgdb/apk")
        for name in try FileManager.default.contentsOfDirectory(atPath: directory.path) where name.hasSuffix(".os-release") {
            let fields = OSRelease.parse(Array(try Data(contentsOf: directory.appendingPathComponent(name))))
            #expect(fields["ID"] == "alpine", "\(name)")
            // File names carry the version: alpine-3.7.3-x86_64.os-release.
            let version = name.split(separator: "-")[1]
            #expect(fields["VERSION_ID"] == String(version), "\(name)")
        }
    }
}
