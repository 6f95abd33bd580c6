import Foundation
import GantryTesting
import Testing
@testable import ImageAnalysis

/// The extractor mechanism in `LayerReader` and bad executables: every case a note or a typed error,
/// never a crash.
@Suite struct FileExtractorTests {
    static let counting = FileExtractor(
        name: "count", selection: .init(suffixes: [".bin"], signatures: [Array("GOOD".utf8)], maxBytes: 1000),
        extract: { _, bytes in FileExtractor.Output(summary: Array(String(bytes.count).utf8)) })

    @Test func selectionSignatureAndCap() throws {
        var layer = ModeTarBuilder()
        layer.file("a/ok.BIN", Array("GOOD data".utf8))
        layer.file("a/wrong-magic.bin", Array("BAD! data".utf8))
        layer.file("a/huge.bin", Array("GOOD".utf8) + [UInt8](repeating: 1, count: 5000))
        layer.file("a/other.txt", Array("GOOD".utf8))
        let reader = LayerReader(interest: FilesOfInterest(contentPaths: [], extractors: [Self.counting]))
        let contents = try reader.read(layer.build())
        #expect(contents.entries.map(\.path) == ["a/ok.BIN", "a/wrong-magic.bin", "a/huge.bin"])
        #expect(contents.entries[0].kind == .extracted(summaries: ["count": Array("9".utf8)]))
        #expect(contents.entries[1].kind == .unreadFile(size: 9))
        #expect(contents.entries[2].kind == .unreadFile(size: 5004))
        #expect(contents.notes == ["a/huge.bin: 5004 bytes exceeds the count limit of 1000 bytes; not read"])
    }

    @Test func laterLayerReplacesSummary() throws {
        let reader = LayerReader(interest: FilesOfInterest(contentPaths: [], extractors: [Self.counting]))
        var lower = ModeTarBuilder()
        lower.file("x.bin", Array("GOODxx".utf8))
        var upper = ModeTarBuilder()
        upper.file("x.bin", Array("not good".utf8))
        var filesystem = MergedFilesystem()
        filesystem.apply(try reader.read(lower.build()))
        #expect(filesystem.extracted(by: "count").map(\.path) == ["x.bin"])
        filesystem.apply(try reader.read(upper.build()))
        #expect(filesystem.extracted(by: "count").isEmpty && filesystem.fileExists("x.bin"))
    }

    @Test func existingInterestUnchanged() {
        let merged = Cataloger.filesOfInterest
        #expect(Set(merged.extractors.map(\.name)) == ["go-buildinfo", "cargo-auditable", "java-archive"])
        #expect(FilesOfInterest(contentPaths: ["etc/os-release"]).extractors.isEmpty)
    }

    @Test func truncatedELFIsATypedErrorAndANote() throws {
        let elf = ELFBuilder.build(sections: [(".go.buildinfo", [UInt8](repeating: 0, count: 64))])
        for cut in [3, 10, 40, elf.count - 10] {
            #expect(throws: ExecutableImageError.self) { try GoBuildInfo.read(Array(elf[0..<cut])) }
        }
        // Through the reader: a broken executable is skipped quietly (it does not look like Go).
        var layer = ModeTarBuilder()
        layer.file("bin/broken", Array(elf[0..<40]), mode: 0o755)
        let contents = try LayerReader(interest: GoBinaryCataloger().interest).read(layer.build())
        #expect(contents.entries.map(\.kind) == [.unreadFile(size: 40)])
    }

    @Test func lyingSectionTable() {
        var elf = ELFBuilder.build(sections: [(".dep-v0", [1, 2, 3])])
        // Section header offset far past the end of the file.
        ELFBuilder.put(&elf, 40, 1 << 40, 8)
        #expect(throws: ExecutableImageError.self) { try ExecutableImage(elf) }
        // A section claiming more bytes than the file has: found by name, but it has no file data.
        var big = ELFBuilder.build(sections: [(".dep-v0", [1, 2, 3])])
        let shoff = Int(try! ExecutableImage(big).integer(at: 40, size: 8))
        ELFBuilder.put(&big, shoff + 64 + 32, 1 << 33, 8) // section 1's sh_size
        #expect(throws: CargoAuditableError.executable(.malformed("section .dep-v0 has no file data"))) {
            try CargoAuditable.read(big)
        }
        // A huge section count.
        var many = ELFBuilder.build(sections: [])
        ELFBuilder.put(&many, 60, 0xFFFF, 2)
        #expect(throws: ExecutableImageError.self) { try ExecutableImage(many) }
    }

    /// A Go build info header whose string lengths run past the data; and one whose pointers lead nowhere.
    @Test func lyingGoBuildInfo() {
        var header = Array("\u{FF} Go buildinf:".unicodeScalars.map { UInt8($0.value) }) + [8, 2]
        header += [UInt8](repeating: 0, count: 16) + [0xFF, 0xFF, 0xFF, 0x7F] // varint length ~268 MB
        #expect(throws: ExecutableImageError.self) {
            try GoBuildInfo.read(ELFBuilder.build(sections: [(".go.buildinfo", header + [UInt8](repeating: 0, count: 32))]))
        }
        var pointers = Array("\u{FF} Go buildinf:".unicodeScalars.map { UInt8($0.value) }) + [8, 0]
        pointers += [UInt8](repeating: 0xAB, count: 16) + [UInt8](repeating: 0, count: 16)
        #expect(throws: ExecutableImageError.self) {
            try GoBuildInfo.read(ELFBuilder.build(sections: [(".go.buildinfo", pointers)]))
        }
    }

    @Test func hugeExecutableOverTheCapIsANote() throws {
        var layer = ModeTarBuilder()
        layer.file("bin/big", [0x7F, 0x45, 0x4C, 0x46] + [UInt8](repeating: 0, count: 300_000), mode: 0o755)
        let reader = LayerReader(interest: GoBinaryCataloger(maxBinaryBytes: 100_000).interest)
        let contents = try reader.read(layer.build())
        #expect(contents.entries.map(\.kind) == [.unreadFile(size: 300_004)])
        #expect(contents.notes == ["bin/big: 300004 bytes exceeds the go-buildinfo limit of 100000 bytes; not read"])
    }

    @Test func randomBytesNeverCrash() {
        var generator = SystemRandomNumberGenerator()
        for prefix in [[0x7F, 0x45, 0x4C, 0x46, 2, 1], [0x4D, 0x5A], [0xCF, 0xFA, 0xED, 0xFE], [0x50, 0x4B, 3, 4]] as [[UInt8]] {
            for length in [0, 10, 64, 500, 5000] {
                let bytes = prefix + (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
                _ = try? GoBuildInfo.read(bytes)
                _ = try? CargoAuditable.read(bytes)
                _ = JavaArchiveReader().read(bytes)
            }
        }
    }
}
