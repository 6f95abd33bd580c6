import Foundation
import GantryModel
import GantryTesting
import Testing
@testable import ImageAnalysis

/// The dpkg cataloger on stanzas built here and on the corpus's real status files, each checked against
/// dpkg itself (`dpkg-query --admindir`, installed with Debian) as the oracle.
@Suite struct DPKGCatalogerTests {
    static func catalogue(_ files: [String: String], os: OperatingSystem? = nil) -> (CatalogResult, [String]) {
        var filesystem = MergedFilesystem()
        filesystem.apply(LayerContents(entries: files.sorted { $0.key < $1.key }.map {
            .init(path: $0.key, kind: .file(Array($0.value.utf8)))
        }))
        var notes: [String] = []
        let result = DPKGCataloger().packages(in: filesystem, operatingSystem: os, notes: &notes)
        return (result, notes)
    }

    static let bookworm = OperatingSystem(id: "debian", versionID: "12", prettyName: "Debian GNU/Linux 12 (bookworm)")

    @Test func sourceWithVersionFromTheIssue() throws {
        let (result, notes) = Self.catalogue(["var/lib/dpkg/status": """
            Package: bsdutils
            Essential: yes
            Status: install ok installed
            Priority: required
            Architecture: amd64
            Source: util-linux (2.38.1-5)
            Version: 1:2.38.1-5+b1
            Description: basic utilities from 4.4BSD-Lite
             This package contains the bits of util-linux from 4.4BSD-Lite.
             .
             Source: not-a-field (continuation lines are not fields)

            Package: util-linux
            Status: install ok installed
            Architecture: amd64
            Version: 2.38.1-5+b1
            Source: util-linux (2.38.1-5)

            Package: base-files
            Status: hold ok installed
            Architecture: amd64
            Version: 12.4+deb12u5

            Package: removed
            Status: deinstall ok config-files
            Architecture: amd64
            Version: 1.0

            Package: half
            Status: install reinstreq half-installed
            Version: 1.0
            """], os: Self.bookworm)
        #expect(notes.isEmpty, "\(notes)")
        #expect(result.databases == ["var/lib/dpkg/status"])
        #expect(result.packages.map(\.name) == ["bsdutils", "util-linux", "base-files"])
        let bsdutils = try #require(result.packages.first)
        #expect(bsdutils.version == "1:2.38.1-5+b1")
        #expect(bsdutils.sourceName == "util-linux")
        #expect(bsdutils.sourceVersion == "2.38.1-5")
        #expect(bsdutils.architecture == "amd64")
        #expect(bsdutils.location == "var/lib/dpkg/status")
        #expect(bsdutils.purl == "pkg:deb/debian/bsdutils@1%3A2.38.1-5%2Bb1?arch=amd64&distro=debian-12&upstream=util-linux")
        let baseFiles = try #require(result.packages.last)
        #expect(baseFiles.sourceName == "base-files")
        #expect(baseFiles.sourceVersion == nil)
        #expect(baseFiles.purl == "pkg:deb/debian/base-files@12.4%2Bdeb12u5?arch=amd64&distro=debian-12")
    }

    @Test func sourceWithoutVersionAndMalformedStanzas() {
        let (result, notes) = Self.catalogue(["var/lib/dpkg/status": "Package: tzdata\nStatus: install ok installed\n"
            + "Source: tzdata-dev\nVersion: 2020a-0+deb10u1\n\nPackage:\n\nPackage: no-version\nStatus: install ok installed\n"
            + "\nthis line is garbage\n"])
        #expect(result.packages.count == 1)
        #expect(result.packages.first?.sourceName == "tzdata-dev")
        #expect(result.packages.first?.sourceVersion == nil)
        #expect(result.packages.first?.purl.hasPrefix("pkg:deb/debian/tzdata@2020a-0%2Bdeb10u1?") == true)
        #expect(notes.count == 3, "\(notes)")
    }

    @Test func distrolessStatusDirectory() throws {
        let (result, _) = Self.catalogue([
            "var/lib/dpkg/status.d/libc6": "Package: libc6\nVersion: 2.36-9+deb12u9\nArchitecture: amd64\nSource: glibc\n",
            "var/lib/dpkg/status.d/libc6.md5sums": "0123 usr/lib/x86_64-linux-gnu/libc.so.6\n",
            "var/lib/dpkg/status.d/base": "Package: base-files\nVersion: 12.4\n\nPackage: netbase\nVersion: 6.4\n",
        ], os: Self.bookworm)
        #expect(result.databases == ["var/lib/dpkg/status.d"])
        #expect(result.packages.map(\.name) == ["base-files", "netbase", "libc6"])
        #expect(result.packages.last?.location == "var/lib/dpkg/status.d/libc6")
        #expect(result.packages.last?.sourceName == "glibc")
    }

    // MARK: - Corpus, against dpkg-query

    /// "name version sourceName sourceVersion" for every installed package, as dpkg-query reports them
    /// from a private admin directory holding `status`; nil when dpkg-query is not installed.
    static func dpkgQuery(status: URL) throws -> [String]? {
        let tool = "/usr/bin/dpkg-query"
        guard FileManager.default.isExecutableFile(atPath: tool) else { return nil }
        let admin = FileManager.default.temporaryDirectory.appendingPathComponent("gantry-dpkg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: admin.appendingPathComponent("updates"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: admin.appendingPathComponent("info"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: admin) }
        try FileManager.default.copyItem(at: status, to: admin.appendingPathComponent("status"))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = ["--admindir=\(admin.path)", "-W",
                             "-f=${db:Status-Status} ${Package} ${Version} ${source:Package} ${source:Version}\\n"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: output, as: UTF8.self).split(separator: "\n")
            .filter { $0.hasPrefix("installed ") }.map { String($0.dropFirst("installed ".count)) }
    }

    static let corpusStatusFiles = [
        "claircore-debian-only", "claircore-debian10-postgresql", "claircore-ubuntu-18.04-texlive",
        "debian-10.7-buster-drupal-image", "debian-11.5-bullseye-nginx-image", "debian-11.5-bullseye-python3.8-image",
        "debian-8.7-jessie-jira-image", "debian-9.12-stretch-glpi-image", "snyk-ubuntu-10.04-lucid",
        "trivy-ubuntu-18.04", "ubuntu-20.04-focal-armhf-rootfs", "ubuntu-22.04-jammy-rootfs",
    ]

    @Test(.enabled(if: Corpus.isAvailable), arguments: corpusStatusFiles)
    func corpusStatusMatchesDpkgQuery(_ name: String) throws {
        let url = try Corpus.file("1-os-pkgdb/dpkg/\(name).status")
        let (result, _) = Self.catalogue(["var/lib/dpkg/status": String(decoding: try Data(contentsOf: url), as: UTF8.self)])
        let ours = result.packages.map { "\($0.name) \($0.version) \($0.sourceName ?? "") \($0.sourceVersion ?? $0.version)" }
        let oracle = try #require(try Self.dpkgQuery(status: url), "dpkg-query is not installed")
        #expect(ours.count == oracle.count)
        #expect(ours.sorted() == oracle.sorted())
    }

    @Test(.enabled(if: Corpus.isAvailable)) func corpusStatusCountsFromSources() throws {
        // SOURCES.md counts for the four images the CORPUS.md table names (package stanzas, all installed).
        for (name, count) in [("debian-9.12-stretch-glpi-image", 492), ("debian-10.7-buster-drupal-image", 195),
                              ("debian-11.5-bullseye-nginx-image", 142), ("ubuntu-22.04-jammy-rootfs", 117)] {
            let text = String(decoding: try Data(contentsOf: try Corpus.file("1-os-pkgdb/dpkg/\(name).status")), as: UTF8.self)
            #expect(Self.catalogue(["var/lib/dpkg/status": text]).0.packages.count == count, "\(name)")
        }
    }

    /// The distroless `status.d` corpus entries, against an independent count: stanzas (blank-line
    /// separated) with a non-empty `Package:` and a `Version:` line, and no `Status:` or one ending in
    /// `installed`.
    @Test(.enabled(if: Corpus.isAvailable)) func corpusStatusDirectoryEntries() throws {
        let directory = try Corpus.file("1-os-pkgdb/dpkg-distroless-status.d")
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { !$0.hasSuffix(".md") && !$0.hasSuffix(".txtar") && !$0.hasSuffix(".os-release") }
        var files: [String: String] = [:]
        var expected = 0
        for name in names {
            let text = String(decoding: try Data(contentsOf: directory.appendingPathComponent(name)), as: UTF8.self)
            files["var/lib/dpkg/status.d/\(name)"] = text
            guard !name.hasSuffix(".md5sums") else { continue }
            for stanza in text.components(separatedBy: "\n\n") {
                let lines = stanza.split(separator: "\n")
                let hasName = lines.contains { $0.hasPrefix("Package: ") && $0.count > "Package: ".count }
                let hasVersion = lines.contains { $0.hasPrefix("Version: ") }
                let status = lines.first { $0.hasPrefix("Status: ") }
                if hasName, hasVersion, status == nil || status!.hasSuffix(" installed") { expected += 1 }
            }
        }
        let (result, _) = Self.catalogue(files, os: Self.bookworm)
        #expect(expected == 16)
        #expect(result.packages.count == expected)
        #expect(!result.packages.contains { $0.name == "linux-image-6.8.0-1029-aws" }, "deinstall ok config-files")
        #expect(result.packages.contains { $0.name == "libsqlite3-0" && $0.version == "3.34.1-3" })
    }
}
