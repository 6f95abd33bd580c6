import Foundation
import GantryModel
import GantryTesting
import ImageAnalysis
import Testing

/// `LayerReader.read(fileAt:)`, the scanner's path: the same result as reading the bytes, with memory
/// bounded by what is kept rather than by the layer's size.
@Suite(.serialized, .enabled(if: Corpus.isAvailable, "the test corpus (../shared/corpus) is missing"))
struct LayerFileTests {
    static func layerFiles(_ image: String) throws -> [URL] {
        let archive = try OCIArchive(try Data(contentsOf: try Corpus.file("images/\(image).oci.tar")))
        return try archive.layerDigests().map { digest in
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("gantry-layer-\(UUID()).blob")
            try Data(archive.blob(digest) ?? []).write(to: url)
            return url
        }
    }

    @Test("reading a layer from its file equals reading its bytes", arguments: ["alpine-3.7.3", "alpine-3.7.3-apk-upgrade",
                                                                                  "debian-bookworm-minbase", "python-app"])
    func fileEqualsBytes(image: String) throws {
        let files = try Self.layerFiles(image)
        defer { files.forEach { try? FileManager.default.removeItem(at: $0) } }
        for file in files {
            let fromFile = try LayerReader().read(fileAt: file)
            let fromBytes = try LayerReader().read(try Data(contentsOf: file))
            #expect(fromFile == fromBytes)
        }
    }

    @Test("a 49 MB layer read from its file adds far less than its size to peak memory")
    func boundedMemory() throws {
        let files = try Self.layerFiles("debian-bookworm-minbase")
        defer { files.forEach { try? FileManager.default.removeItem(at: $0) } }
        let largest = try #require(files.max {
            (try? $0.resourceValues(forKeys: [.fileSizeKey]).fileSize ?? 0) ?? 0 < (try? $1.resourceValues(forKeys: [.fileSizeKey]).fileSize ?? 0) ?? 0
        })
        let size = try #require(try largest.resourceValues(forKeys: [.fileSizeKey]).fileSize)
        #expect(size > 30 << 20)
        let before = ProcessMemory.resetPeak()
        let contents = try LayerReader().read(fileAt: largest)
        let growth = ProcessMemory.peakResidentBytes() - before
        #expect(contents.entryCount > 1000)
        #expect(growth < size / 2, "peak RSS grew by \(growth >> 20) MiB reading a \(size >> 20) MiB layer file")
    }

    @Test("an empty or missing layer file is a typed error")
    func emptyFile() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("gantry-empty-\(UUID()).blob")
        FileManager.default.createFile(atPath: url.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: url) }
        #expect(throws: LayerReadError.self) { try LayerReader().read(fileAt: url) }
        #expect(throws: LayerReadError.self) {
            try LayerReader().read(fileAt: URL(fileURLWithPath: "/nonexistent/\(UUID())"))
        }
    }
}
