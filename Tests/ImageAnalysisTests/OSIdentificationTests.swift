import Foundation
import GantryModel
import GantryTesting
import Testing
@testable import ImageAnalysis

/// OS identification beyond os-release, distroless, and the end-of-life flag.
@Suite struct OSIdentificationTests {
    static func identify(_ files: [String: String], today: String = "2026-11-29") -> (OperatingSystem?, [String]) {
        var filesystem = MergedFilesystem()
        filesystem.apply(LayerContents(entries: files.sorted { $0.key < $1.key }.map {
            .init(path: $0.key, kind: .file(Array($0.value.utf8)))
        }))
        var notes: [String] = []
        return (OSIdentification.identify(filesystem, today: today, notes: &notes), notes)
    }

    @Test func debianTestingFromDebianVersion() throws {
        let (os, notes) = Self.identify(["etc/debian_version": "bookworm/sid\n"])
        let identified = try #require(os)
        #expect(identified.id == "debian")
        #expect(identified.versionID == nil)
        #expect(identified.prettyName == "Debian GNU/Linux bookworm/sid (testing/unstable)")
        #expect(identified.endOfLife == nil)
        #expect(notes.contains { $0.contains("testing/unstable") })

        // Debian's own os-release on testing has no VERSION_ID.
        let (withOSRelease, _) = Self.identify([
            "etc/os-release": "PRETTY_NAME=\"Debian GNU/Linux trixie/sid\"\nNAME=\"Debian GNU/Linux\"\nVERSION_CODENAME=trixie\nID=debian\n",
            "etc/debian_version": "trixie/sid\n",
        ])
        #expect(withOSRelease?.versionID == nil)
        #expect(withOSRelease?.prettyName == "Debian GNU/Linux trixie/sid (testing/unstable)")
    }

    @Test func debianPointReleaseFromDebianVersion() {
        let (os, _) = Self.identify(["etc/debian_version": "9.12\n"])
        #expect(os == OperatingSystem(id: "debian", versionID: "9", prettyName: "Debian GNU/Linux 9.12",
                                      endOfLife: true, endOfLifeDate: "2022-06-30"))
        #expect(OSIdentification.debianVersion("6.0.10").versionID == "6")
        #expect(OSIdentification.debianVersion("12.7").versionID == "12")
        #expect(OSIdentification.debianVersion("squeeze/sid").versionID == nil)
    }

    @Test func redhatRelease() {
        let cases: [(String, String, String)] = [
            ("CentOS release 6.10 (Final)", "centos", "6"),
            ("CentOS Linux release 7.9.2009 (Core)", "centos", "7"),
            ("Red Hat Enterprise Linux Server release 7.9 (Maipo)", "rhel", "7.9"),
            ("Red Hat Enterprise Linux release 8.6 (Ootpa)", "rhel", "8.6"),
            ("Rocky Linux release 8.6 (Green Obsidian)", "rocky", "8.6"),
            ("AlmaLinux release 9.1 (Lime Lynx)", "almalinux", "9.1"),
            ("Fedora release 35 (Thirty Five)", "fedora", "35"),
            ("Amazon Linux release 2 (Karoo)", "amzn", "2"),
        ]
        for (line, id, version) in cases {
            let os = OSIdentification.redhatRelease(line)
            #expect(os?.id == id, "\(line)")
            #expect(os?.versionID == version, "\(line)")
            #expect(os?.prettyName == line)
        }
        #expect(OSIdentification.redhatRelease("Something else release 1") == nil)
        let (centos6, notes) = Self.identify(["etc/redhat-release": "CentOS release 6.10 (Final)\n"])
        #expect(centos6?.endOfLife == true)
        #expect(centos6?.endOfLifeDate == "2020-11-30")
        #expect(notes.contains { $0.contains("redhat-release") })
    }

    @Test(.enabled(if: Corpus.isAvailable)) func lsbReleaseFromCorpus() throws {
        let lucid = String(decoding: try Data(contentsOf: try Corpus.file("1-os-pkgdb/dpkg/snyk-ubuntu-10.04-lucid.lsb-release")),
                           as: UTF8.self)
        // Ubuntu 10.04 ships lsb-release and a debian_version of "squeeze/sid": lsb-release wins.
        let (os, _) = Self.identify(["etc/lsb-release": lucid, "etc/debian_version": "squeeze/sid\n"])
        #expect(os == OperatingSystem(id: "ubuntu", versionID: "10.04", prettyName: "Ubuntu 10.04 LTS",
                                      endOfLife: true, endOfLifeDate: "2015-04-30"))
        let focal = String(decoding: try Data(contentsOf: try Corpus.file("1-os-pkgdb/dpkg/ubuntu-20.04-focal-armhf-rootfs.lsb-release")),
                           as: UTF8.self)
        #expect(Self.identify(["etc/lsb-release": focal]).0?.versionID == "20.04")
    }

    @Test(.enabled(if: Corpus.isAvailable)) func distrolessOSRelease() throws {
        for (file, version, codename) in [("distroless-debian11.os-release", "11", "bullseye"),
                                          ("distroless-debian9.os-release", "9", "stretch")] {
            let text = String(decoding: try Data(contentsOf: try Corpus.file("1-os-pkgdb/dpkg-distroless-status.d/\(file)")),
                              as: UTF8.self)
            let (os, notes) = Self.identify(["etc/os-release": text])
            #expect(os?.id == "debian")
            #expect(os?.versionID == version)
            #expect(os?.prettyName == "Distroless (Debian GNU/Linux \(version) (\(codename)))")
            #expect(notes.contains { $0.contains("distroless") })
        }
    }

    @Test func distrolessByStatusDirectory() {
        let (os, _) = Self.identify([
            "etc/os-release": "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nID=debian\n",
            "var/lib/dpkg/status.d/libc6": "Package: libc6\nVersion: 2.36-9\n",
        ])
        #expect(os?.prettyName == "Distroless (Debian GNU/Linux 12 (bookworm))")
        #expect(os?.versionID == "12")
        #expect(os?.endOfLife == false)
    }

    @Test func endOfLifeTable() {
        let alpine37 = EndOfLife.annotate(OperatingSystem(id: "alpine", versionID: "3.7.3", prettyName: nil), today: "2026-11-29")
        #expect(alpine37.endOfLife == true)
        #expect(alpine37.endOfLifeDate == "2019-11-01")
        // The day itself is still supported; the day after is not.
        let onTheDay = EndOfLife.annotate(OperatingSystem(id: "debian", versionID: "11", prettyName: nil), today: "2026-08-31")
        #expect(onTheDay.endOfLife == false)
        #expect(EndOfLife.annotate(onTheDay, today: "2026-09-01").endOfLife == true)
        #expect(EndOfLife.date(id: "ubuntu", versionID: "22.04") == "2027-06-01")
        #expect(EndOfLife.date(id: "rhel", versionID: "8.6") == "2029-05-31")
        #expect(EndOfLife.date(id: "amzn", versionID: "2") == "2026-06-30")
        #expect(EndOfLife.date(id: "sles", versionID: "15.3") == "2022-12-31")
        // Unknown releases and distributions: no flag, never a guess.
        let future = EndOfLife.annotate(OperatingSystem(id: "alpine", versionID: "3.99.0", prettyName: nil))
        #expect(future.endOfLife == nil && future.endOfLifeDate == nil)
        #expect(EndOfLife.annotate(OperatingSystem(id: "wolfi", versionID: "20230201", prettyName: nil)).endOfLife == nil)
        #expect(EndOfLife.today(now: Date(timeIntervalSince1970: 0)) == "1970-01-01")
    }
}

/// Whole Debian images from the corpus through LayerReader, MergedFilesystem and Cataloger.
@Suite(.enabled(if: Corpus.isAvailable)) struct DebianImageTests {
    static func inventory(_ image: String) throws -> ImageInventory {
        let archive = try OCIArchive(try Data(contentsOf: try Corpus.file("images/\(image)")))
        var filesystem = MergedFilesystem()
        for digest in try archive.layerDigests() {
            filesystem.apply(try LayerReader().read(try #require(archive.blob(digest))))
        }
        return Cataloger.inventory(of: filesystem)
    }

    @Test func bookwormMinbase() throws {
        let inventory = try Self.inventory("debian-bookworm-minbase.oci.tar")
        #expect(inventory.notApplicable == nil)
        #expect(inventory.operatingSystem?.id == "debian")
        #expect(inventory.operatingSystem?.versionID == "12")
        #expect(inventory.operatingSystem?.prettyName == "Debian GNU/Linux 12 (bookworm)")
        #expect(inventory.operatingSystem?.endOfLifeDate == "2028-06-30")
        let dpkg = inventory.packages.filter { $0.ecosystem == "dpkg" }
        #expect(dpkg.count == 88)
        #expect(Set(dpkg.map(\.location)) == ["var/lib/dpkg/status"])
        let bsdutils = try #require(dpkg.first { $0.name == "bsdutils" })
        #expect(bsdutils.sourceName == "util-linux")
        #expect(bsdutils.purl.hasPrefix("pkg:deb/debian/bsdutils@1%3A2.38.1-5"))
        #expect(bsdutils.purl.contains("distro=debian-12"))
    }

    @Test func distrolessBookworm() throws {
        let inventory = try Self.inventory("distroless-bookworm.oci.tar")
        #expect(inventory.notApplicable == nil)
        #expect(inventory.operatingSystem?.versionID == "12")
        #expect(inventory.operatingSystem?.prettyName?.hasPrefix("Distroless") == true)
        #expect(inventory.packages.map(\.name).sorted() == ["base-files", "gcc-12-base", "libc6", "libgcc-s1", "tzdata", "zlib1g"])
        #expect(inventory.packages.allSatisfy { $0.location.hasPrefix("var/lib/dpkg/status.d/") })
    }

    /// The images' dpkg status files are the corpus's `1-os-pkgdb/dpkg/<image>-image.status`; dpkg-query
    /// over those is the oracle.
    @Test(arguments: [("debian-9.12-stretch-glpi", "9", true), ("debian-10.7-buster-drupal", "10", true),
                      ("debian-11.5-bullseye-nginx", "11", nil)])
    func oldDebianImages(_ image: String, _ version: String, _ endOfLife: Bool?) throws {
        let inventory = try Self.inventory("\(image).oci.tar")
        #expect(inventory.notApplicable == nil)
        #expect(inventory.operatingSystem?.id == "debian")
        #expect(inventory.operatingSystem?.versionID == version)
        if let endOfLife { #expect(inventory.operatingSystem?.endOfLife == endOfLife) }
        let oracle = try #require(try DPKGCatalogerTests.dpkgQuery(status: try Corpus.file("1-os-pkgdb/dpkg/\(image)-image.status")))
        let ours = inventory.packages.map { "\($0.name) \($0.version) \($0.sourceName ?? "") \($0.sourceVersion ?? $0.version)" }
        #expect(ours.count == oracle.count)
        #expect(ours.sorted() == oracle.sorted())
    }
}
