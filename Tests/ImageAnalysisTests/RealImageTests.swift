import Foundation
import GantryModel
import GantryTesting
import Testing
import ImageAnalysis

/// Whole images from the corpus (CORPUS.md, "Images"), every layer through LayerReader,
/// MergedFilesystem and Cataloger.
@Suite(.enabled(if: Corpus.isAvailable)) struct RealImageTests {
    static func inventory(_ image: String) throws -> ImageInventory {
        let archive = try OCIArchive(try Data(contentsOf: try Corpus.file("images/\(image)")))
        var filesystem = MergedFilesystem()
        for digest in try archive.layerDigests() {
            let blob = try #require(archive.blob(digest))
            filesystem.apply(try LayerReader().read(blob))
        }
        return Cataloger.inventory(of: filesystem)
    }

    /// The corpus's own apk database for the same release, as an independent expected list.
    static func expectedPackages(_ release: String) throws -> [String] {
        let text = try String(contentsOf: try Corpus.file("1-os-pkgdb/apk/alpine-\(release)-x86_64.installed"), encoding: .utf8)
        return text.split(separator: "\n").filter { $0.hasPrefix("P:") }.map { String($0.dropFirst(2)) }
    }

    @Test func alpine373() throws {
        let inventory = try Self.inventory("alpine-3.7.3.oci.tar")
        #expect(inventory.operatingSystem?.id == "alpine")
        #expect(inventory.operatingSystem?.versionID == "3.7.3")
        #expect(inventory.notApplicable == nil)
        #expect(inventory.packages.count == 13)
        #expect(inventory.packages.map(\.name) == (try Self.expectedPackages("3.7.3")))
        let musl = try #require(inventory.packages.first { $0.name == "musl" })
        #expect(musl.version == "1.1.18-r3")
        #expect(musl.purl == "pkg:apk/alpine/musl@1.1.18-r3?arch=x86_64&distro=alpine-3.7.3")
        #expect(inventory.packages.first { $0.name == "musl-utils" }?.sourceName == "musl")
    }

    @Test func alpine373AfterApkUpgrade() throws {
        let inventory = try Self.inventory("alpine-3.7.3-apk-upgrade.oci.tar")
        #expect(inventory.operatingSystem?.versionID == "3.7.3")
        #expect(inventory.packages.count == 13)
        #expect(inventory.packages.first { $0.name == "musl" }?.version == "1.1.18-r4")
        #expect(inventory.packages.first { $0.name == "musl-utils" }?.version == "1.1.18-r4")
    }

    @Test func dockerMediaTypesAnalyseTheSame() throws {
        let inventory = try Self.inventory("alpine-3.12.12-docker.oci.tar")
        #expect(inventory.operatingSystem?.versionID == "3.12.12")
        #expect(inventory.packages.map(\.name) == (try Self.expectedPackages("3.12.12")))
    }

    @Test func alpine320() throws {
        let inventory = try Self.inventory("alpine-3.20.3.oci.tar")
        #expect(inventory.operatingSystem?.versionID == "3.20.3")
        #expect(inventory.packages.map(\.name) == (try Self.expectedPackages("3.20.3")))
    }

    @Test func scratchStaticHasNoPackageDatabase() throws {
        let inventory = try Self.inventory("scratch-static.oci.tar")
        #expect(inventory.notApplicable == .noPackageDatabase)
        #expect(inventory.packages.isEmpty)
        #expect(inventory.operatingSystem == nil)
    }
}
