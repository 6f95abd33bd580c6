import CArchive
import Foundation
import GantryModel
import Testing
@testable import ImageAnalysis

/// Hostile layers at full size: a gzip bomb (1 GiB of zeros), a million tiny files, byte limits,
/// unsafe names, escaping symlinks and damaged streams. Each gives a typed error or a bounded result,
/// in bounded time and memory (issue 3, "Bad input").
///
/// The two large layers are streamed by libarchive's write API to a temporary file (never held in
/// memory) and read back memory-mapped. The suite is serialised so the peak-RSS measurements of one
/// test are not inflated by another test of this suite.
@Suite(.serialized) struct HostileLayerTests {
    // MARK: - 1 GiB of zeros

    /// A gzip'd tar holding one file of 1 GiB of zeros, not of interest: skipped while streaming,
    /// in bounded time and with peak RSS growth far below the file's size.
    @Test(.timeLimit(.minutes(2))) func gigabyteOfZerosIsSkippedInBoundedMemory() throws {
        let layer = try HostileLayer.zeros(at: "var/cache/zeros.bin")
        defer { layer.remove() }
        let blob = try Data(contentsOf: layer.url, options: .alwaysMapped)
        #expect(blob.count < 8 << 20, "1 GiB of zeros gzips to a few MiB at most, got \(blob.count) bytes")

        let before = ProcessMemory.resetPeak()
        let clock = ContinuousClock()
        var contents = LayerContents()
        let elapsed = try clock.measure { contents = try LayerReader().read(blob) }
        let growth = ProcessMemory.peakResidentBytes() - before
        HostileLayer.report("1 GiB zeros skipped: \(elapsed), peak RSS growth \(growth >> 20) MiB "
            + "(blob \(blob.count) bytes, generated in \(layer.generation))")

        #expect(contents.entryCount == 1)
        #expect(contents.entries.isEmpty)
        #expect(contents.whiteouts.isEmpty && contents.opaqueDirectories.isEmpty)
        // The whole stream was decompressed (skipping a compressed entry means inflating it): header,
        // 1 GiB of data, the two end blocks, padded to a 10 KiB record.
        #expect(contents.uncompressedBytes >= (1 << 30) + 512 + 1024)
        #expect(contents.uncompressedBytes <= (1 << 30) + 512 + 10240)
        #expect(growth < 150 << 20, "peak RSS grew by \(growth >> 20) MiB reading a 1 GiB layer")
        #expect(elapsed < .seconds(60))
    }

    /// The same 1 GiB of zeros at a path of interest: refused from its header, before any of it is
    /// decompressed, naming the path, the declared size and the limit.
    @Test(.timeLimit(.minutes(2))) func gigabyteOfZerosAtAPathOfInterestIsTooLarge() throws {
        let layer = try HostileLayer.zeros(at: "lib/apk/db/installed")
        defer { layer.remove() }
        let blob = try Data(contentsOf: layer.url, options: .alwaysMapped)

        let before = ProcessMemory.resetPeak()
        let clock = ContinuousClock()
        let elapsed = clock.measure {
            #expect(throws: LayerReadError.fileTooLarge(path: "lib/apk/db/installed", size: 1 << 30, limit: 64 << 20)) {
                try LayerReader().read(blob)
            }
        }
        let growth = ProcessMemory.peakResidentBytes() - before
        HostileLayer.report("1 GiB zeros at lib/apk/db/installed refused: \(elapsed), peak RSS growth \(growth >> 20) MiB")
        #expect(LayerReadError.fileTooLarge(path: "lib/apk/db/installed", size: 1 << 30, limit: 64 << 20).description
            == "file lib/apk/db/installed (1073741824 bytes) exceeds the 64 MiB limit for files of interest")
        #expect(elapsed < .seconds(1), "refused from the header, nothing decompressed")
        #expect(growth < 16 << 20)

        // Over the byte limit the same layer is refused from its declared size, again before reading.
        let limited = LayerReader(limits: AnalysisLimits(maxUncompressedBytes: 512 << 20))
        let limitedElapsed = clock.measure {
            #expect(throws: LayerReadError.tooManyBytes(limit: 512 << 20)) { try limited.read(blob) }
        }
        #expect(limitedElapsed < .seconds(1))
    }

    // MARK: - A million tiny files

    /// One million 0-byte files (512 MiB of tar headers): the default limits (1 000 000 entries)
    /// accept it in bounded time and memory; `maxEntries: 100_000` refuses it at entry 100 001, and a
    /// 1 MiB byte limit refuses it after about 2 000 entries.
    @Test(.timeLimit(.minutes(2))) func millionTinyFilesAreBounded() throws {
        let count = 1_000_000
        let layer = try HostileLayer.tinyFiles(count: count)
        defer { layer.remove() }
        let blob = try Data(contentsOf: layer.url, options: .alwaysMapped)
        let clock = ContinuousClock()

        let before = ProcessMemory.resetPeak()
        var contents = LayerContents()
        let elapsed = try clock.measure { contents = try LayerReader().read(blob) }
        let growth = ProcessMemory.peakResidentBytes() - before
        HostileLayer.report("1 000 000 tiny files read: \(elapsed), peak RSS growth \(growth >> 20) MiB "
            + "(blob \(blob.count) bytes, generated in \(layer.generation))")
        #expect(contents.entryCount == count)
        #expect(contents.entries.isEmpty)
        #expect(contents.uncompressedBytes >= Int64(count) * 512 + 1024)
        #expect(growth < 150 << 20)
        #expect(elapsed < .seconds(60))

        let limited = LayerReader(limits: AnalysisLimits(maxEntries: 100_000))
        let limitedElapsed = clock.measure {
            #expect(throws: LayerReadError.tooManyEntries(limit: 100_000)) { try limited.read(blob) }
        }
        HostileLayer.report("1 000 000 tiny files, maxEntries 100 000: refused in \(limitedElapsed)")
        #expect(limitedElapsed < elapsed / 4 + .seconds(1), "stops at entry 100 001, not at the end")

        // 1 MiB of uncompressed tar holds 2 048 headers; the reader refuses at the first header past it.
        let byteLimited = LayerReader(limits: AnalysisLimits(maxUncompressedBytes: 1 << 20))
        let byteElapsed = clock.measure {
            #expect(throws: LayerReadError.tooManyBytes(limit: 1 << 20)) { try byteLimited.read(blob) }
        }
        #expect(byteElapsed < .seconds(2))
    }

    // MARK: - Byte limit

    /// `maxUncompressedBytes` is checked against what was consumed and against each declared size.
    @Test func uncompressedByteLimitIsEnforced() throws {
        var layer = TarBuilder()
        for index in 0..<10 { layer.file("var/data/f\(index)", String(repeating: "z", count: 10_000)) }
        let bytes = layer.build(.gzip)
        // Ten 10 000-byte files: 10 × (512 + 10 240) bytes of tar plus the end blocks.
        #expect(try LayerReader().read(bytes).uncompressedBytes >= 10 * 10_512)
        // Consumed bytes cross the limit part way through.
        #expect(throws: LayerReadError.tooManyBytes(limit: 50_000)) {
            try LayerReader(limits: AnalysisLimits(maxUncompressedBytes: 50_000)).read(bytes)
        }
        // The first entry's declared size alone is over the limit.
        #expect(throws: LayerReadError.tooManyBytes(limit: 5_000)) {
            try LayerReader(limits: AnalysisLimits(maxUncompressedBytes: 5_000)).read(bytes)
        }
        // Exactly enough is accepted: the limit is inclusive of what one layer needs.
        let needed = try LayerReader().read(bytes).uncompressedBytes
        #expect(throws: Never.self) { try LayerReader(limits: AnalysisLimits(maxUncompressedBytes: needed)).read(bytes) }
        #expect(LayerReadError.tooManyBytes(limit: 8 << 30).description == "layer decompresses to more than 8 GiB")
    }

    // MARK: - Unsafe and absolute names

    @Test(arguments: ["../../x", "../x", "etc/../../x", "/../etc/passwd", "./a/./../../b"])
    func dotDotEntriesAreUnsafe(_ name: String) {
        var layer = TarBuilder()
        layer.file("etc/os-release", "ID=alpine\n")
        layer.file(name, "escape")
        #expect(throws: LayerReadError.unsafePath(name)) { try LayerReader().read(layer.build()) }
    }

    @Test func dotDotSymlinkAndHardLinkNames() {
        var symlink = TarBuilder()
        symlink.symlink("../../etc/os-release", to: "usr/lib/os-release")
        #expect(throws: LayerReadError.unsafePath("../../etc/os-release")) { try LayerReader().read(symlink.build()) }
        var hardlink = TarBuilder()
        hardlink.hardlink("etc/os-release", to: "../../x")
        #expect(throws: LayerReadError.unsafePath("../../x")) { try LayerReader().read(hardlink.build()) }
    }

    @Test func absoluteNamesAreNormalisedIntoTheImage() throws {
        var layer = TarBuilder()
        layer.file("/etc/passwd", "root:x:0:0::/root:/bin/sh\n")
        layer.file("/etc/os-release", "ID=alpine\nVERSION_ID=3.20.0\n")
        layer.file("///usr//lib/./os-release", "ID=debian\n")
        layer.hardlink("/etc/passwd-", to: "/etc/passwd")
        let interest = FilesOfInterest(contentPaths: ["etc/passwd", "etc/passwd-", "etc/os-release", "usr/lib/os-release"])
        let contents = try LayerReader(interest: interest).read(layer.build())
        #expect(contents.entries.map(\.path) == ["etc/passwd", "etc/os-release", "usr/lib/os-release", "etc/passwd-"])
        var filesystem = MergedFilesystem()
        filesystem.apply(contents)
        #expect(filesystem.file("etc/passwd") == Array("root:x:0:0::/root:/bin/sh\n".utf8))
        #expect(filesystem.file("/etc/passwd-") == Array("root:x:0:0::/root:/bin/sh\n".utf8))
        #expect(filesystem.file("usr/lib/os-release") == Array("ID=debian\n".utf8))
    }

    // MARK: - Symlinks out of the image

    /// Symlinks aimed outside the image resolve inside the image root, lexically; the host
    /// filesystem is never read.
    @Test func escapingSymlinksStayInsideTheImage() throws {
        let interest = FilesOfInterest(contentPaths: ["etc/os-release", "etc/hostname", "usr/lib/os-release",
                                                      "proc/self/environ", "etc/passwd", "root/passwd"])
        let reader = LayerReader(interest: interest)

        // No in-image target: nothing, whatever the host has at /etc/hostname or /proc/self/environ.
        var bare = TarBuilder()
        bare.symlink("etc/os-release", to: "../../../../etc/hostname")
        bare.symlink("usr/lib/os-release", to: "/proc/self/environ")
        bare.symlink("root/passwd", to: "../../../../../../../../../../etc/passwd")
        var empty = MergedFilesystem()
        empty.apply(try reader.read(bare.build()))
        for path in ["etc/os-release", "usr/lib/os-release", "root/passwd", "/etc/os-release"] {
            #expect(empty.file(path) == nil)
            #expect(!empty.fileExists(path))
        }
        #expect(Cataloger.inventory(of: empty).operatingSystem == nil)

        // With in-image targets: the image's own bytes, never the host's.
        var lower = TarBuilder()
        lower.file("etc/hostname", "in-image-hostname\n")
        lower.file("proc/self/environ", "IN_IMAGE=1\n")
        lower.file("etc/passwd", "image:x:1:1::/:/bin/false\n")
        var filesystem = MergedFilesystem()
        filesystem.apply(try reader.read(lower.build()))
        filesystem.apply(try reader.read(bare.build()))
        #expect(filesystem.file("etc/os-release") == Array("in-image-hostname\n".utf8))
        #expect(filesystem.file("usr/lib/os-release") == Array("IN_IMAGE=1\n".utf8))
        #expect(filesystem.file("root/passwd") == Array("image:x:1:1::/:/bin/false\n".utf8))

        // Whatever the host holds at those paths never shows up.
        let host = ["/etc/hostname", "/proc/self/environ", "/etc/passwd"].compactMap { try? Data(contentsOf: URL(fileURLWithPath: $0)) }
            .filter { !$0.isEmpty }.map { [UInt8]($0) }
        for path in ["etc/os-release", "usr/lib/os-release", "root/passwd"] {
            let resolved = [empty.file(path), filesystem.file(path)].compactMap { $0 }
            for bytes in resolved { #expect(!host.contains(bytes)) }
        }
    }

    /// A directory symlink that climbs out of the root, and a symlink loop: resolved within the image,
    /// the loop gives up after 40 hops.
    @Test func escapingDirectorySymlinksAndLoops() throws {
        var layer = TarBuilder()
        layer.symlink("etc", to: "../../../../../")
        layer.file("os-release", "ID=image-root\n")
        layer.symlink("usr/lib/os-release", to: "loop-a")
        layer.symlink("usr/lib/loop-a", to: "loop-b")
        layer.symlink("usr/lib/loop-b", to: "/usr/lib/loop-a")
        let interest = FilesOfInterest(contentPaths: ["etc/os-release", "os-release", "usr/lib/os-release",
                                                      "usr/lib/loop-a", "usr/lib/loop-b"])
        var filesystem = MergedFilesystem()
        filesystem.apply(try LayerReader(interest: interest).read(layer.build()))
        // `etc` -> the image root, so `etc/os-release` is the image's `/os-release`.
        #expect(filesystem.file("etc/os-release") == Array("ID=image-root\n".utf8))
        #expect(filesystem.file("usr/lib/os-release") == nil)
        #expect(filesystem.file("../../../etc/os-release") == Array("ID=image-root\n".utf8))
    }

    // MARK: - Damaged streams

    /// A damaged gzip layer: damage to the gzip header or the first deflate block is refused at once,
    /// damage in the middle is `.corrupt` with the entries read before it.
    @Test func corruptGzipIsATypedError() throws {
        let full = Self.randomLayer().build(.gzip)
        #expect(full.starts(with: [0x1F, 0x8B, 0x08]))
        let original = try LayerReader().read(full)
        #expect(original.entryCount == 51)

        // Compression method 8 (deflate) replaced: no filter recognises it, and it is no tar either.
        var badMethod = full
        badMethod[2] = 0x07
        #expect(throws: LayerReadError.self) { try LayerReader().read(badMethod) }
        #expect(Self.outcome(badMethod) == "notATar")
        // The first deflate block made BFINAL=1, BTYPE=11 (reserved, RFC 1951 3.2.3): "invalid block type".
        var badBlock = full
        badBlock[10] = 0x07
        #expect(Self.outcome(badBlock) == "notATar")
        // Cut in the middle: the entries read so far, then `.corrupt`.
        // Cut in the middle: libarchive's read-ahead for the first header already runs out of input.
        #expect(throws: LayerReadError.notATar("truncated gzip input")) { try LayerReader().read(Array(full[0..<(full.count / 2)])) }

        let outcomes = Self.middleFlips(full)
        HostileLayer.report("gzip, 32 bytes flipped at 9 offsets: \(outcomes.map(\.outcome))")
        // Each damage desynchronises the Huffman decoding, so later tar headers fail their checksum.
        // (libarchive 3.6.2 does not verify the gzip CRC-32/ISIZE trailer, "XXX TODO: Verify the length
        // and CRC", so damage that inflated to same-length bytes inside unread file data would pass;
        // registry and OCI-layout blobs are digest-checked before LayerReader sees them.)
        for (offset, outcome) in outcomes {
            #expect(outcome.hasPrefix("corrupt("), "flip at \(offset) of \(full.count): \(outcome)")
        }
    }

    /// A damaged zstd layer (libarchive's zstd filter). Damage that reaches a tar header is `.corrupt`;
    /// libarchive writes frames without a content checksum, so damage confined to the literals of file
    /// data that is skipped cannot be seen (known issue, intermittent as it depends on the encoder).
    @Test func corruptZstdIsATypedError() throws {
        let full = Self.randomLayer().build(.zstd)
        try #require(full.starts(with: [0x28, 0xB5, 0x2F, 0xFD]), "libarchive was built without zstd write support")
        let checksummed = full[4] & 0x04 != 0
        #expect(try LayerReader().read(full).entryCount == 51)

        // The frame header's reserved bit set (RFC 8878 3.1.1.1.1): the frame is refused.
        var reserved = full
        reserved[4] |= 0x08
        #expect(Self.outcome(reserved) == "notATar")
        #expect(throws: LayerReadError.notATar("Truncated zstd input")) { try LayerReader().read(Array(full[0..<(full.count / 2)])) }

        let outcomes = Self.middleFlips(full)
        HostileLayer.report("zstd (content checksum: \(checksummed)), 32 bytes flipped at 9 offsets: \(outcomes.map(\.outcome))")
        #expect(outcomes.contains { $0.outcome.hasPrefix("corrupt(") }, "some damage breaks the zstd stream")
        for (offset, outcome) in outcomes {
            // Never a partial or garbage entry list: an error, or all 51 entries.
            #expect(outcome.hasPrefix("corrupt(") || outcome == "read(51)", "flip at \(offset) of \(full.count): \(outcome)")
        }
        withKnownIssue("zstd frames without a content checksum cannot reveal damaged literals; registry and OCI-layout blobs are digest-checked before LayerReader sees them", isIntermittent: true) {
            for (offset, outcome) in outcomes {
                #expect(!outcome.hasPrefix("read"), "flip at \(offset) of \(full.count) went unnoticed")
            }
        }
    }

    /// XORs 32 bytes at 9 offsets across the middle half of `blob` and reads each damaged copy.
    private static func middleFlips(_ blob: [UInt8]) -> [(offset: Int, outcome: String)] {
        stride(from: blob.count / 4, to: blob.count * 3 / 4, by: max(1, blob.count / 16)).map { offset in
            var damaged = blob
            for index in offset..<min(blob.count, offset + 32) { damaged[index] ^= 0xA5 }
            return (offset, outcome(damaged))
        }
    }

    /// "read" when `blob` reads without error, else the error case (`corrupt(entriesRead)` for `.corrupt`).
    private static func outcome(_ blob: [UInt8]) -> String {
        do {
            let contents = try LayerReader().read(blob)
            return "read(\(contents.entryCount))"
        } catch {
            switch error {
            case .notATar: return "notATar"
            case .corrupt(_, let entriesRead): return "corrupt(\(entriesRead))"
            default: return "\(error)"
            }
        }
    }

    /// A tar header whose checksum does not match (libarchive's ARCHIVE_RETRY, "Damaged tar archive"):
    /// `.corrupt`, not a garbage entry.
    @Test func damagedTarHeaderIsCorrupt() throws {
        var layer = TarBuilder()
        layer.file("etc/os-release", "ID=alpine\n")
        layer.file("lib/apk/db/installed", "P:musl\nV:1.2.5-r0\n\n")
        var tar = layer.build(.none)
        #expect(try LayerReader().read(tar).entryCount == 2)
        tar[1024 + 3] ^= 0x20 // a letter of the second name: the header checksum no longer matches
        #expect(throws: LayerReadError.corrupt("Damaged tar archive", entriesRead: 1)) { try LayerReader().read(tar) }
        var header = layer.build(.none)
        header[0] = 0xFF // the first header: nothing read yet
        #expect(throws: LayerReadError.self) { try LayerReader().read(header) }
    }

    /// A tar cut off inside a header or inside file data: `.corrupt`, with the entries read so far.
    @Test func truncatedTarIsCorrupt() throws {
        var layer = TarBuilder()
        layer.file("etc/os-release", "ID=alpine\n")
        layer.file("var/data", String(repeating: "d", count: 4000))
        layer.file("lib/apk/db/installed", "P:musl\nV:1.2.5-r0\n\n")
        let full = layer.build(.none)
        #expect(try LayerReader().read(full).entryCount == 3)
        // Inside the second entry's data (header at 1024, data 1536..<5536).
        #expect(throws: LayerReadError.self) { try LayerReader().read(Array(full[0..<3000])) }
        do {
            _ = try LayerReader().read(Array(full[0..<3000]))
        } catch {
            guard case .corrupt(_, let entriesRead) = error else { Issue.record("expected .corrupt, got \(error)"); return }
            #expect(entriesRead == 2)
        }
        // Inside the third header.
        do {
            _ = try LayerReader().read(Array(full[0..<(5632 + 200)]))
            Issue.record("a header cut in half was accepted")
        } catch {
            guard case .corrupt(_, let entriesRead) = error else { Issue.record("expected .corrupt, got \(error)"); return }
            #expect(entriesRead == 2)
        }
        // The gzip'd layer cut short: also a typed error.
        let gzip = layer.build(.gzip)
        #expect(throws: LayerReadError.self) { try LayerReader().read(Array(gzip[0..<(gzip.count / 2)])) }
    }

    /// 50 files of incompressible-ish text and an os-release: long enough to damage in the middle.
    private static func randomLayer() -> TarBuilder {
        var generator = SplitMix(seed: 0x9E37_79B9)
        var layer = TarBuilder()
        for index in 0..<50 {
            let text = (0..<2000).map { _ in Character(UnicodeScalar(UInt8(65 + generator.next() % 26))) }
            layer.file("var/data/file\(index)", String(text))
        }
        layer.file("etc/os-release", "ID=alpine\n")
        return layer
    }
}

// MARK: - Support

/// A deterministic generator, so damaged-stream tests hit the same bytes every run.
private struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var value = state
        value = (value ^ (value >> 30)) &* 0xBF58_476D_1CE4_E5B9
        value = (value ^ (value >> 27)) &* 0x94D0_49BB_1331_11EB
        return value ^ (value >> 31)
    }
}

/// The process's resident-set figures from /proc/self/status (Linux).
enum ProcessMemory {
    /// Resets the peak (VmHWM) to the current RSS where the kernel allows it (`/proc/self/clear_refs`,
    /// value 5) and returns the peak afterwards, the baseline to measure growth from.
    static func resetPeak() -> Int {
        if let handle = FileHandle(forWritingAtPath: "/proc/self/clear_refs") {
            try? handle.write(contentsOf: Data("5".utf8))
            try? handle.close()
        }
        return peakResidentBytes()
    }

    /// VmHWM, the peak resident set size, in bytes (0 where unavailable).
    static func peakResidentBytes() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let kilobytes = line.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
            return kilobytes * 1024
        }
        return 0
    }
}

/// A large layer streamed to a temporary file with libarchive's write API (gzip level 1 to keep the
/// generation fast); nothing of its size is held in memory.
private struct HostileLayer {
    let url: URL
    let generation: Duration

    func remove() { try? FileManager.default.removeItem(at: url) }

    static func report(_ line: String) {
        print("HostileLayerTests: \(line)")
    }

    /// One regular file of 1 GiB of zeros at `path`, gzip'd.
    static func zeros(at path: String, size: Int64 = 1 << 30) throws -> HostileLayer {
        try write { archive in
            guard let entry = archive_entry_new() else { throw HostileLayerError("archive_entry_new") }
            defer { archive_entry_free(entry) }
            archive_entry_set_pathname(entry, path)
            archive_entry_set_filetype(entry, 0o100000)
            archive_entry_set_perm(entry, 0o644)
            archive_entry_set_size(entry, size)
            archive_entry_set_mtime(entry, 1_600_000_000, 0)
            try check(archive_write_header(archive, entry), archive)
            let chunk = [UInt8](repeating: 0, count: 1 << 20)
            var remaining = size
            while remaining > 0 {
                let count = Int(min(remaining, Int64(chunk.count)))
                let written = chunk.withUnsafeBytes { archive_write_data(archive, $0.baseAddress, count) }
                guard written == count else { throw HostileLayerError("archive_write_data wrote \(written) of \(count)") }
                remaining -= Int64(count)
            }
        }
    }

    /// `count` empty regular files (`d/0000000` …), gzip'd.
    static func tinyFiles(count: Int) throws -> HostileLayer {
        try write { archive in
            guard let entry = archive_entry_new() else { throw HostileLayerError("archive_entry_new") }
            defer { archive_entry_free(entry) }
            for index in 0..<count {
                archive_entry_clear(entry)
                let digits = String(index)
                archive_entry_set_pathname(entry, "d/" + String(repeating: "0", count: max(0, 7 - digits.count)) + digits)
                archive_entry_set_filetype(entry, 0o100000)
                archive_entry_set_perm(entry, 0o644)
                archive_entry_set_size(entry, 0)
                archive_entry_set_mtime(entry, 1_600_000_000, 0)
                try check(archive_write_header(archive, entry), archive)
            }
        }
    }

    private static func write(_ body: (OpaquePointer) throws -> Void) throws -> HostileLayer {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("gantry-hostile-\(UUID().uuidString).tar.gz")
        let clock = ContinuousClock()
        let start = clock.now
        guard let archive = archive_write_new() else { throw HostileLayerError("archive_write_new") }
        defer { archive_write_free(archive) }
        try check(archive_write_set_format_pax_restricted(archive), archive)
        try check(archive_write_add_filter_gzip(archive), archive)
        try check(archive_write_set_filter_option(archive, "gzip", "compression-level", "1"), archive)
        try check(archive_write_open_filename(archive, url.path), archive)
        do {
            try body(archive)
            try check(archive_write_close(archive), archive)
        } catch {
            try? FileManager.default.removeItem(at: url)
            throw error
        }
        return HostileLayer(url: url, generation: clock.now - start)
    }

    private static func check(_ status: Int32, _ archive: OpaquePointer) throws {
        guard status == ARCHIVE_OK else {
            throw HostileLayerError(archive_error_string(archive).map { String(cString: $0) } ?? "status \(status)")
        }
    }
}

private struct HostileLayerError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
