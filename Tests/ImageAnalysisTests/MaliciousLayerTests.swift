import Testing
@testable import ImageAnalysis

/// Untrusted layers: every bad input is a typed error, never a crash or an unbounded allocation.
@Suite struct MaliciousLayerTests {
    @Test func randomBytesAreNotATar() {
        var generator = SystemRandomNumberGenerator()
        for length in [1, 100, 511, 512, 4096, 100_000] {
            let bytes = (0..<length).map { _ in UInt8.random(in: 1...255, using: &generator) }
            #expect {
                try LayerReader().read(bytes)
            } throws: { error in
                guard let error = error as? LayerReadError else { return false }
                if case .notATar = error { return true }
                if case .corrupt = error { return true }
                return false
            }
        }
    }

    @Test func emptyBlobIsNotATar() {
        #expect(throws: LayerReadError.notATar("the blob is empty")) { try LayerReader().read([UInt8]()) }
        #expect(LayerReadError.notATar("x").description == "layer is not a tar archive: x")
    }

    @Test func truncatedGzipIsCorrupt() throws {
        var layer = TarBuilder()
        for index in 0..<50 {
            // Incompressible-ish content so the gzip stream is long enough to cut in the middle.
            layer.file("etc/file\(index)", (0..<2000).map { _ in String(Int.random(in: 0...9)) }.joined())
        }
        layer.file("etc/os-release", "ID=alpine\n")
        let full = layer.build(.gzip)
        #expect(throws: Never.self) { try LayerReader().read(full) }
        for cut in [full.count / 2, full.count - 8, 20] {
            #expect(throws: LayerReadError.self) { try LayerReader().read(Array(full[0..<cut])) }
        }
    }

    @Test(arguments: ["../../etc/passwd", "etc/../../os-release", "./../x"])
    func dotDotNamesAreRefused(_ name: String) {
        var layer = TarBuilder()
        layer.file(name, "x")
        #expect(throws: LayerReadError.unsafePath(name)) { try LayerReader().read(layer.build()) }
    }

    @Test func hardLinkTargetWithDotDotIsRefused() {
        var layer = TarBuilder()
        layer.hardlink("etc/os-release", to: "../../etc/shadow")
        #expect(throws: LayerReadError.unsafePath("../../etc/shadow")) { try LayerReader().read(layer.build()) }
    }

    @Test func absoluteNamesAreNormalised() throws {
        var layer = TarBuilder()
        layer.file("//etc///os-release", "ID=alpine\n")
        let contents = try LayerReader().read(layer.build())
        #expect(contents.entries.map(\.path) == ["etc/os-release"])
    }

    @Test func fileOfInterestOverTheLimitIsRefused() {
        var layer = TarBuilder()
        layer.file("lib/apk/db/installed", String(repeating: "P:x\n", count: 300))
        let reader = LayerReader(limits: AnalysisLimits(maxFileBytes: 1000))
        #expect(throws: LayerReadError.fileTooLarge(path: "lib/apk/db/installed", size: 1200, limit: 1000)) {
            try reader.read(layer.build())
        }
        #expect(LayerReadError.fileTooLarge(path: "a", size: 70_000_000, limit: 64 << 20).description
            == "file a (70000000 bytes) exceeds the 64 MiB limit for files of interest")
    }

    @Test func hugeDeclaredSizeIsRefusedBeforeReading() {
        var layer = TarBuilder()
        // A header that claims 1 TiB; the reader must refuse it, not allocate or decompress it.
        layer.items.append(.declaredFile("lib/apk/db/installed", size: 1 << 40, written: []))
        #expect(throws: LayerReadError.self) { try LayerReader().read(layer.build(.none)) }
        var other = TarBuilder()
        other.items.append(.declaredFile("var/big", size: 1 << 40, written: []))
        #expect(throws: LayerReadError.tooManyBytes(limit: 8 << 30)) { try LayerReader().read(other.build(.none)) }
    }

    @Test func entryAndByteCountsAreBounded() {
        var layer = TarBuilder()
        for index in 0..<20 { layer.file("f\(index)", String(repeating: "a", count: 2000)) }
        let bytes = layer.build()
        #expect(throws: LayerReadError.tooManyEntries(limit: 10)) {
            try LayerReader(limits: AnalysisLimits(maxEntries: 10)).read(bytes)
        }
        #expect(throws: LayerReadError.tooManyBytes(limit: 10_000)) {
            try LayerReader(limits: AnalysisLimits(maxUncompressedBytes: 10_000)).read(bytes)
        }
        #expect(throws: Never.self) { try LayerReader().read(bytes) }
    }
}
