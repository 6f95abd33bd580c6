import GantryModel
import Testing
@testable import ImageAnalysis

/// cargo-auditable dependency lists. The corpus has no auditable Rust binary (only Cargo.lock files), so
/// the binaries are minimal ELF64 files assembled here with a `.dep-v0` section: one holding JSON
/// compressed by zlib 1.2 at level 9 (the hex below), one holding a stored (uncompressed) deflate block.
@Suite struct CargoAuditableTests {
    /// zlib.compress(json, 9) of a three-crate list: a local root crate, serde, and the build-only cc.
    static let compressedHex = "78da75cec10ac2300c06e077c9b9966d1e84bd8aec903541c2ba76a4ad97b177b78a88637acc9ff0fd59614137e18d13f4d71502ce0c3d6021c9387a3e11cf110cdc5993c450578d6d6d5393148bbae7ad8f0e7d0d260954472d214b450c102f1c88839317de9a6e30a03166e8b316decca72eb112ef5a6a876dcfbb1ea798395989477af8b29c3b4097ee9ff3fe792ce2e9173b6c0f896f5cd9"

    static var compressed: [UInt8] {
        var bytes: [UInt8] = []
        var index = compressedHex.startIndex
        while index < compressedHex.endIndex {
            let next = compressedHex.index(index, offsetBy: 2)
            bytes.append(UInt8(compressedHex[index..<next], radix: 16)!)
            index = next
        }
        return bytes
    }

    /// A zlib stream of one stored block (RFC 1950 header, RFC 1951 BTYPE 00, Adler-32).
    static func storedZlib(_ data: [UInt8]) -> [UInt8] {
        let length = UInt16(data.count)
        let checksum = Zlib.adler32(data)
        return [0x78, 0x01, 0x01, UInt8(length & 0xFF), UInt8(length >> 8), UInt8(~length & 0xFF), UInt8(~length >> 8)]
            + data + [UInt8(checksum >> 24), UInt8(checksum >> 16 & 0xFF), UInt8(checksum >> 8 & 0xFF), UInt8(checksum & 0xFF)]
    }

    @Test func readsCompressedDependencyList() throws {
        let elf = ELFBuilder.build(sections: [(".text", [0x90, 0xC3]), (".dep-v0", Self.compressed)])
        let list = try #require(try CargoAuditable.read(elf))
        #expect(list.packages.map(\.name) == ["auditable-demo", "serde", "cc"])
        let packages = CargoAuditableCataloger.packages(from: list, location: "usr/bin/demo")
        #expect(packages.map(\.purl) == ["pkg:cargo/auditable-demo@0.1.0", "pkg:cargo/serde@1.0.130"])
        #expect(packages[0].metadata?["root"] == "true" && packages[1].metadata?["source"] == "crates.io")
    }

    @Test func throughLayerReader() throws {
        let json = #"{"packages":[{"name":"tokio","version":"1.35.1","source":"crates.io","dependencies":[]}]}"#
        let elf = ELFBuilder.build(sections: [(".dep-v0", Self.storedZlib(Array(json.utf8)))])
        var layer = ModeTarBuilder()
        layer.file("usr/local/bin/server", elf, mode: 0o755)
        layer.hardlink("usr/local/bin/server-link", to: "usr/local/bin/server")
        var filesystem = MergedFilesystem()
        filesystem.apply(try LayerReader(interest: CargoAuditableCataloger().interest).read(layer.build()))
        var notes: [String] = []
        let found = CargoAuditableCataloger().packages(in: filesystem, operatingSystem: nil, notes: &notes)
        #expect(found.packages.map(\.purl) == ["pkg:cargo/tokio@1.35.1", "pkg:cargo/tokio@1.35.1"])
        #expect(found.packages.map(\.location) == ["usr/local/bin/server", "usr/local/bin/server-link"])
        #expect(notes.isEmpty)
    }

    @Test func executableWithoutSectionHasNoList() throws {
        #expect(try CargoAuditable.read(ELFBuilder.build(sections: [(".text", [0xC3])])) == nil)
    }

    @Test func corruptZlibIsATypedError() {
        var damaged = Self.compressed
        damaged[20] ^= 0xFF
        let elf = ELFBuilder.build(sections: [(".dep-v0", damaged)])
        #expect(throws: CargoAuditableError.self) { try CargoAuditable.read(elf) }
        let notZlib = ELFBuilder.build(sections: [(".dep-v0", Array("not zlib at all".utf8))])
        #expect(throws: CargoAuditableError.self) { try CargoAuditable.read(notZlib) }
        let badChecksum = ELFBuilder.build(sections: [(".dep-v0", Self.storedZlib(Array("{}".utf8)).dropLast() + [0])])
        #expect(throws: CargoAuditableError.invalidZlib("Adler-32 checksum mismatch")) { try CargoAuditable.read(badChecksum) }
    }

    @Test func adler32MatchesZlib() {
        // zlib.adler32(b"Wikipedia") == 0x11E60398
        #expect(Zlib.adler32(Array("Wikipedia".utf8)) == 0x11E6_0398)
    }
}
