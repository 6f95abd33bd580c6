import Foundation
import GantryModel
import GantryTesting
import Testing
@testable import ImageAnalysis

/// The rpm cataloger over the corpus's real rpm databases (1-os-pkgdb/rpm/, SOURCES.md there), each
/// checked against an expected list made without Gantry: go-rpmdb's `packages.csv` (written by `rpm -qa`
/// in the original image), a row count taken with SQLite itself, or osv-scalibr's expectations.
@Suite(.enabled(if: Corpus.isAvailable)) struct RPMCatalogerTests {
    /// One package as the csv lists it: epoch¶name¶version¶release¶arch¶srpm¶size¶license¶vendor¶…
    struct Expected: Hashable, CustomStringConvertible {
        var name, epoch, version, release, arch, sourceRPM, license: String
        var description: String { "\(epoch):\(name)-\(version)-\(release).\(arch) [\(sourceRPM)] (\(license))" }
    }

    static func expected(_ csv: String) throws -> Set<Expected> {
        let text = try String(contentsOf: try Corpus.file("1-os-pkgdb/rpm/\(csv)"), encoding: .utf8)
        return Set(text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: "¶", omittingEmptySubsequences: false).map(String.init)
            guard fields.count >= 8, fields[1] != "gpg-pubkey" else { return nil }
            return Expected(name: fields[1], epoch: fields[0], version: fields[2], release: fields[3], arch: fields[4],
                            sourceRPM: fields[5], license: fields[7])
        })
    }

    static func actual(_ packages: [InstalledPackage]) -> Set<Expected> {
        Set(packages.map { package in
            let epoch = package.metadata?["epoch"] ?? ""
            let evr = epoch.isEmpty || epoch == "0" ? package.version : String(package.version.dropFirst(epoch.count + 1))
            let dash = evr.lastIndex(of: "-")!
            return Expected(name: package.name, epoch: epoch, version: String(evr[..<dash]),
                            release: String(evr[evr.index(after: dash)...]), arch: package.architecture ?? "",
                            sourceRPM: package.metadata?["sourceRpm"] ?? "", license: package.licenses?.first ?? "")
        })
    }

    /// A filesystem holding `corpusFile` at `path`.
    static func filesystem(_ corpusFile: String, at path: String) throws -> MergedFilesystem {
        let bytes = [UInt8](try Data(contentsOf: try Corpus.file("1-os-pkgdb/rpm/\(corpusFile)")))
        var filesystem = MergedFilesystem()
        filesystem.apply(LayerContents(entries: [.init(path: path, kind: .file(bytes))]))
        return filesystem
    }

    static func catalogue(_ corpusFile: String, at path: String, os: OperatingSystem?) throws
        -> (result: CatalogResult, notes: [String]) {
        var notes: [String] = []
        let result = RPMCataloger().packages(in: try filesystem(corpusFile, at: path), operatingSystem: os, notes: &notes)
        return (result, notes)
    }

    /// Rows in the SQLite database's `Packages` table, counted by the sqlite3 CLI (one header per row).
    static func sqliteRowCount(_ corpusFile: String) throws -> Int? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        guard FileManager.default.isExecutableFile(atPath: process.executableURL!.path) else { return nil }
        process.arguments = ["-readonly", try Corpus.file("1-os-pkgdb/rpm/\(corpusFile)").path,
                             "SELECT count(*) FROM Packages"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Int(String(decoding: output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }

    @Test func amazonLinux2023SQLiteMatchesRpmQa() throws {
        let os = OperatingSystem(id: "amzn", versionID: "2023", prettyName: "Amazon Linux 2023")
        let (result, notes) = try Self.catalogue("amazonlinux2023-plain.rpmdb.sqlite", at: "var/lib/rpm/rpmdb.sqlite", os: os)
        #expect(notes.isEmpty, "\(notes)")
        #expect(result.databases == ["var/lib/rpm/rpmdb.sqlite"])
        let expected = try Self.expected("amazonlinux2023-plain.packages.csv")
        #expect(expected.count == 102)
        #expect(result.packages.count == expected.count)
        let actual = Self.actual(result.packages)
        #expect(actual.subtracting(expected).isEmpty, "unexpected: \(actual.subtracting(expected))")
        #expect(expected.subtracting(actual).isEmpty, "missing: \(expected.subtracting(actual))")

        let setup = try #require(result.packages.first { $0.name == "amazon-linux-repo-cdn" })
        #expect(setup.sourceName == "system-release")
        #expect(setup.sourceVersion == nil, "the source RPM has the binary's version-release")
        #expect(setup.version == "2023.1.20230825-0.amzn2023")
        #expect(setup.location == "var/lib/rpm/rpmdb.sqlite")
        #expect(setup.purl == "pkg:rpm/amzn/amazon-linux-repo-cdn@2023.1.20230825-0.amzn2023?arch=noarch&distro=amzn-2023")
        let ncursesBase = try #require(result.packages.first { $0.name == "ncurses-base" })
        #expect(ncursesBase.sourceName == "ncurses")
        #expect(ncursesBase.sourceVersion == nil, "same version-release as the binary")
    }

    @Test func cblMarinerSQLiteHasEveryRow() throws {
        let os = OperatingSystem(id: "mariner", versionID: "2.0", prettyName: "CBL-Mariner/Linux")
        let (result, notes) = try Self.catalogue("cbl-mariner-2.0.rpmdb.sqlite", at: "usr/lib/sysimage/rpm/rpmdb.sqlite", os: os)
        #expect(notes.isEmpty, "\(notes)")
        let rows = try Self.sqliteRowCount("cbl-mariner-2.0.rpmdb.sqlite")
        let publicKeys = result.packages.filter { $0.name == "gpg-pubkey" }
        #expect(publicKeys.isEmpty)
        if let rows {
            // Every row is one header; gpg-pubkey rows (imported keys) are the only ones left out.
            let bytes = [UInt8](try Data(contentsOf: try Corpus.file("1-os-pkgdb/rpm/cbl-mariner-2.0.rpmdb.sqlite")))
            let (records, _) = try RPMDatabase.headers(files: ["rpmdb.sqlite": bytes], backend: .sqlite)
            #expect(records.count == rows)
            #expect(result.packages.count == rows - records.filter { $0.name == "gpg-pubkey" }.count)
        }
        #expect(result.packages.count == 129)
        let glibc = try #require(result.packages.first { $0.name == "glibc" })
        #expect(glibc.version == "2.34-2.cm2")
        #expect(glibc.purl == "pkg:rpm/mariner/glibc@2.34-2.cm2?arch=x86_64&distro=mariner-2.0")
    }

    /// The SLE 15 BCI NDB database's contents as go-rpmdb's test case lists them for this very file
    /// (go-rpmdb `pkg/rpmdb_testcase_test.go` of that era, as re-stated by fossas/fossa-cli
    /// `test/Ndb/NdbSpec.hs`): arch, name, version-release. The corpus's `sle15-bci.packages.csv` comes
    /// from a later image (SOURCES.md: "DB version may differ slightly"), so it is not the oracle here.
    static let sle15Expected: [(arch: String, name: String, versionRelease: String)] = [
        ("noarch", "system-user-root", "20190513-3.3.1"), ("x86_64", "filesystem", "15.0-11.3.2"),
        ("x86_64", "glibc", "2.31-9.3.2"), ("x86_64", "libpcre1", "8.45-20.10.1"), ("x86_64", "libgmp10", "6.1.2-4.6.1"),
        ("x86_64", "libgcc_s1", "11.2.1+git610-1.3.9"), ("x86_64", "libcap2", "2.26-4.6.1"),
        ("x86_64", "libstdc++6", "11.2.1+git610-1.3.9"), ("x86_64", "libncurses6", "6.1-5.9.1"),
        ("x86_64", "terminfo-base", "6.1-5.9.1"), ("x86_64", "libattr1", "2.4.47-2.19"),
        ("x86_64", "libselinux1", "3.0-1.31"), ("x86_64", "libreadline7", "7.0-19.6.1"), ("x86_64", "bash", "4.4-19.6.1"),
        ("x86_64", "libacl1", "2.2.52-4.3.1"), ("x86_64", "coreutils", "8.32-3.2.1"), ("x86_64", "sles-release", "15.3-55.4.1"),
        ("noarch", "ca-certificates-mozilla-prebuilt", "2.44-21.1"), ("x86_64", "libgpg-error0", "1.29-1.8"),
        ("x86_64", "libpopt0", "1.16-3.22"), ("noarch", "file-magic", "5.32-7.14.1"), ("x86_64", "libbz2-1", "1.0.6-5.11.1"),
        ("x86_64", "liblua5_3-5", "5.3.6-3.6.1"), ("x86_64", "liblzma5", "5.2.3-4.3.1"), ("x86_64", "libz1", "1.2.11-3.21.1"),
        ("x86_64", "libzstd1", "1.4.4-1.6.1"), ("x86_64", "libmagic1", "5.32-7.14.1"), ("x86_64", "libdw1", "0.168-4.5.3"),
        ("x86_64", "libebl-plugins", "0.168-4.5.3"), ("x86_64", "libelf1", "0.168-4.5.3"),
        ("x86_64", "libcrypt1", "4.4.15-2.51"), ("x86_64", "perl-base", "5.26.1-15.87"),
        ("x86_64", "libgcrypt20", "1.8.2-8.39.1"), ("noarch", "rpm-config-SUSE", "1-5.6.1"), ("x86_64", "rpm-ndb", "4.14.3-40.1"),
    ]

    @Test func sle15NDBMatchesGoRpmdbExpectations() throws {
        let os = OperatingSystem(id: "sles", versionID: "15.3", prettyName: "SUSE Linux Enterprise Server 15 SP3")
        let (result, notes) = try Self.catalogue("sle15-bci.Packages.db", at: "usr/lib/sysimage/rpm/Packages.db", os: os)
        #expect(notes.isEmpty, "\(notes)")
        #expect(result.databases == ["usr/lib/sysimage/rpm/Packages.db"])
        #expect(result.packages.count == 35)
        let actual = result.packages.map { "\($0.architecture ?? "") \($0.name) \($0.version)" }
        let expected = Self.sle15Expected.map { "\($0.arch) \($0.name) \($0.versionRelease)" }
        #expect(Set(actual) == Set(expected))
        let glibc = try #require(result.packages.first { $0.name == "glibc" })
        #expect(glibc.purl == "pkg:rpm/sles/glibc@2.31-9.3.2?arch=x86_64&distro=sles-15.3")
        #expect(glibc.licenses == ["LGPL-2.1-or-later AND LGPL-2.1-or-later WITH GCC-exception-2.0 AND GPL-2.0-or-later"])
        let terminfo = try #require(result.packages.first { $0.name == "terminfo-base" })
        #expect(terminfo.sourceName == "ncurses")
    }

    @Test func berkeleyDBPackages() throws {
        let (libuuid, notes) = try Self.catalogue("libuuid.Packages", at: "var/lib/rpm/Packages",
                                                  os: OperatingSystem(id: "rhel", versionID: "8.8", prettyName: nil))
        #expect(notes.isEmpty, "\(notes)")
        #expect(libuuid.packages.count == 1)
        let package = try #require(libuuid.packages.first)
        #expect(package.name == "libuuid")
        #expect(package.version == "2.32.1-42.el8_8")
        #expect(package.sourceName == "util-linux")
        #expect(package.licenses == ["BSD"])
        #expect(package.metadata?["epoch"] == nil)
        #expect(package.purl == "pkg:rpm/rhel/libuuid@2.32.1-42.el8_8?arch=x86_64&distro=rhel-8.8")

        // osv-scalibr's expectation for this file: one package, hello 0.0.1-rls, epoch 1.
        let (epoch, _) = try Self.catalogue("scalibr-Packages_epoch", at: "var/lib/rpm/Packages", os: nil)
        let hello = try #require(epoch.packages.first)
        #expect(epoch.packages.count == 1)
        #expect(hello.name == "hello")
        #expect(hello.version == "1:0.0.1-rls")
        #expect(hello.metadata?["epoch"] == "1")
        #expect(hello.purl == "pkg:rpm/hello@0.0.1-rls?arch=x86_64&epoch=1")
    }

    @Test func rawHeaderBlobParsesThroughHeaderImport() throws {
        let blob = [UInt8](try Data(contentsOf: try Corpus.file("1-os-pkgdb/rpm/claircore-package.header")))
        let record = try #require(RPMDatabase.header(blob: blob))
        #expect(!record.name.isEmpty)
        #expect(record.sourceRPM?.hasSuffix(".src.rpm") == true)
        #expect(RPMDatabase.header(blob: Array(blob.prefix(40))) == nil)
        #expect(RPMDatabase.header(blob: []) == nil)
    }

    @Test func symlinkedDatabaseDirectoryIsCataloguedOnce() throws {
        var filesystem = try Self.filesystem("libuuid.Packages", at: "usr/lib/sysimage/rpm/Packages")
        filesystem.apply(LayerContents(entries: [.init(path: "var/lib/rpm", kind: .symlink(target: "../../usr/lib/sysimage/rpm"))]))
        var notes: [String] = []
        let result = RPMCataloger().packages(in: filesystem, operatingSystem: nil, notes: &notes)
        #expect(result.packages.count == 1)
        #expect(result.databases == ["usr/lib/sysimage/rpm/Packages"])
        #expect(notes.isEmpty)
    }
}

/// NDB parsing and source-RPM names on inputs built here.
@Suite struct NDBReaderTests {
    @Test func adler32KnownValue() {
        // RFC 1950's algorithm; "Wikipedia" is the usual worked example (0x11E60398).
        #expect(NDBReader.adler32(ArraySlice(Array("Wikipedia".utf8))) == 0x11E6_0398)
        #expect(NDBReader.adler32([]) == 1)
    }

    @Test func notNDBAndDamagedFiles() {
        #expect(NDBReader.read(Array(repeating: 0, count: 64)) == nil)
        // Magic and version 0, but a slot-page count larger than the file.
        var header: [UInt8] = Array("RpmP".utf8) + [0, 0, 0, 0] + [1, 0, 0, 0] + [200, 0, 0, 0] + [1, 0, 0, 0]
        header += Array(repeating: 0, count: 4096 - header.count)
        let tooManyPages = NDBReader.read(header)
        #expect(tooManyPages?.blobs.isEmpty == true)
        #expect(tooManyPages?.notes.count == 1)
        // One slot page, the slot table zeroed (no slot magic): damaged, nothing read, no crash.
        header[12] = 1
        let damaged = NDBReader.read(header)
        #expect(damaged?.blobs.isEmpty == true)
        #expect(damaged?.notes.first?.contains("slot magic") == true)
    }

    @Test func corruptedBlobIsSkippedWithANote() throws {
        guard Corpus.isAvailable, let url = try? Corpus.file("1-os-pkgdb/rpm/sle15-bci.Packages.db") else { return }
        var bytes = [UInt8](try Data(contentsOf: url))
        let intact = try #require(NDBReader.read(bytes))
        // Flip one byte inside the data area (past the slot pages): exactly one blob's checksum fails.
        let slotPages = Int(bytes[12]) | Int(bytes[13]) << 8
        let target = slotPages * 4096 + 100
        bytes[target] ^= 0xFF
        let damaged = try #require(NDBReader.read(bytes))
        #expect(damaged.blobs.count == intact.blobs.count - 1)
        #expect(damaged.notes.contains { $0.contains("Adler-32") })
    }

    @Test func sourceRPMNames() {
        #expect(RPMCataloger.parseSourceRPM("util-linux-2.32.1-42.el8_8.src.rpm")! == ("util-linux", "2.32.1-42.el8_8"))
        #expect(RPMCataloger.parseSourceRPM("system-release-2023.1.20230825-0.amzn2023.src.rpm")!
            == ("system-release", "2023.1.20230825-0.amzn2023"))
        #expect(RPMCataloger.parseSourceRPM("foo-1-2.nosrc.rpm")! == ("foo", "1-2"))
        #expect(RPMCataloger.parseSourceRPM("nodash.src.rpm") == nil)
        #expect(RPMCataloger.parseSourceRPM("name-1.src.rpm") == nil)
    }
}
