import CArchive
import Foundation
import GantryModel
import GantryTesting
import ImageAnalysis
import Testing

/// `OCIArchive` unpacks an image archive once into a private scratch directory, hashing every file on the
/// way, and `LayerReader.readComputingDiffID` hashes a layer's uncompressed stream while reading it.
/// Oracles: Python's `tarfile` and `hashlib` for the members, the image configs' own `rootfs.diff_ids`
/// (written by the tools that built the corpus images) for the diff IDs.
@Suite(.serialized) struct OCIArchiveTests {
    static let corpusImages = ["alpine-3.7.3", "alpine-3.12.12-docker", "alpine-3.17.10-multiarch", "python-app",
                               "debian-bookworm-minbase"]

    @Test("members and their digests are what Python's tarfile and hashlib read", arguments: corpusImages)
    func membersMatchPython(image: String) throws {
        guard Corpus.isAvailable else { return }
        let url = try Corpus.file("images/\(image).oci.tar")
        let archive = try OCIArchive(fileAt: url)
        let expected = try #require(try PythonOracle.json("""
            import hashlib, json, sys, tarfile
            out = {}
            with tarfile.open(sys.argv[1]) as t:
                for m in t:
                    if m.isfile():
                        name = m.name
                        while name.startswith('./'): name = name[2:]
                        out[name.lstrip('/')] = hashlib.sha256(t.extractfile(m).read()).hexdigest()
            print(json.dumps(out))
            """, arguments: [url.path]) as? [String: String])
        #expect(Dictionary(uniqueKeysWithValues: archive.members.map { ($0.key, $0.value.digest.encoded) }) == expected)
        #expect(archive.members.values.allSatisfy { $0.isIntact })
        for member in archive.members.values {
            let attributes = try FileManager.default.attributesOfItem(atPath: member.file.path)
            #expect((attributes[.size] as? NSNumber)?.int64Value == member.size)
            #expect(try BlobHasher.digest(ofFileAt: member.file) == member.digest)
        }
        // Unpacking from memory gives the same members and layer list.
        let fromBytes = try OCIArchive(try Data(contentsOf: url))
        #expect(fromBytes.members.mapValues(\.digest) == archive.members.mapValues(\.digest))
        #expect(try fromBytes.layerDigests() == archive.layerDigests())
    }

    @Test("the scratch directory is private (0700) and removed with the archive")
    func scratchIsPrivateAndRemoved() throws {
        var layer = TarBuilder()
        layer.file("etc/os-release", "ID=alpine\n")
        let archiveBytes = ImageArchive.ociArchive(layers: [layer.build(.gzip)])
        var directory: URL?
        do {
            let archive = try OCIArchive(archiveBytes)
            directory = archive.scratchDirectory
            let attributes = try FileManager.default.attributesOfItem(atPath: archive.scratchDirectory.path)
            #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o700)
            for member in archive.members.values {
                let mode = try FileManager.default.attributesOfItem(atPath: member.file.path)[.posixPermissions] as? NSNumber
                #expect(mode?.intValue == 0o600)
            }
            let contents = try LayerReader().read(fileAt: try archive.blobFile(try #require(archive.layerDigests().first)))
            #expect(contents.entries.map(\.path).contains("etc/os-release"))
            #expect(FileManager.default.fileExists(atPath: archive.scratchDirectory.path))
        }
        let removed = try #require(directory)
        #expect(!FileManager.default.fileExists(atPath: removed.path), "the scratch directory outlived its archive")

        let explicit = try OCIArchive(archiveBytes)
        explicit.removeScratch()
        #expect(!FileManager.default.fileExists(atPath: explicit.scratchDirectory.path))
    }

    @Test("a blob whose bytes do not match its name is refused by digest, readable only unchecked")
    func mismatchedBlob() throws {
        var layer = TarBuilder()
        layer.file("etc/os-release", "ID=alpine\n")
        let real = layer.build(.gzip)
        var other = TarBuilder()
        other.file("etc/os-release", "ID=debian\n")
        // Built once: gzip stamps the time into its header, so two builds may differ.
        let otherBytes = other.build(.gzip)
        // The manifest names `real`, but the file at that name holds `other`'s bytes.
        let archive = try OCIArchive(ImageArchive.ociArchive(layers: [real], substitute: otherBytes))
        let digest = try #require(archive.layerDigests().first)
        #expect(digest == BlobHasher.digest(of: real))
        let error = #expect(throws: OCIArchive.Error.self) { try archive.blobFile(digest) }
        #expect(error == .digestMismatch(expected: digest, actual: BlobHasher.digest(of: otherBytes)))
        #expect(error?.description.contains("does not match its digest") == true)
        #expect(archive.blob(digest) == nil)
        #expect(throws: OCIArchive.Error.self) { try archive.contents(of: OCIArchive.blobPath(digest)) }
        #expect(try archive.contents(of: OCIArchive.blobPath(digest), checkingName: false) == otherBytes)
        #expect(archive.members[OCIArchive.blobPath(digest)]?.isIntact == false)
    }

    @Test("file count and size limits refuse an archive with a clear message; garbage is unreadable")
    func limitsAndGarbage() throws {
        var layer = TarBuilder()
        layer.file("etc/os-release", "ID=alpine\n")
        let bytes = ImageArchive.ociArchive(layers: [layer.build(.gzip)])
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("gantry-limits-\(UUID()).tar")
        try Data(bytes).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }

        let tooMany = #expect(throws: OCIArchive.Error.self) { try OCIArchive(fileAt: file, limits: .init(maxFiles: 2)) }
        #expect(tooMany?.description.contains("maxFiles") == true)
        let tooLarge = #expect(throws: OCIArchive.Error.self) { try OCIArchive(fileAt: file, limits: .init(maxFileBytes: 64)) }
        #expect(tooLarge?.description.contains("OCIArchive.Limits") == true)
        let tooMuch = #expect(throws: OCIArchive.Error.self) { try OCIArchive(fileAt: file, limits: .init(maxTotalBytes: 200)) }
        #expect(tooMuch?.description.contains("in all") == true)

        let garbage = #expect(throws: OCIArchive.Error.self) { try OCIArchive(Array("not a tar archive at all".utf8)) }
        guard case .unreadable = garbage else {
            Issue.record("expected unreadable, got \(String(describing: garbage))")
            return
        }
        // Cut short in the middle of the last blob: a typed error, and no scratch directory left behind.
        let before = Set(try FileManager.default.contentsOfDirectory(atPath: FileManager.default.temporaryDirectory.path))
        #expect(throws: OCIArchive.Error.self) { try OCIArchive(Array(bytes[0..<(bytes.count - 1024 - 100)])) }
        let after = Set(try FileManager.default.contentsOfDirectory(atPath: FileManager.default.temporaryDirectory.path))
        #expect(after.subtracting(before).filter { $0.hasPrefix("gantry-archive-") }.isEmpty)
    }

    @Test("a layer's computed diff ID is the one its image config lists", arguments: corpusImages)
    func diffIDsMatchTheConfig(image: String) throws {
        guard Corpus.isAvailable else { return }
        let archive = try OCIArchive(fileAt: try Corpus.file("images/\(image).oci.tar"))
        let layers = try archive.layerDigests()
        // The manifest names the config; its rootfs.diff_ids pair with the layers by position.
        let manifest = try #require(archive.members.values.compactMap { member -> [String: Any]? in
            guard let bytes = try? archive.contents(of: member.path),
                  let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any],
                  let listed = object["layers"] as? [[String: Any]],
                  listed.compactMap({ $0["digest"] as? String }) == layers.map(\.description)
            else { return nil }
            return object
        }.first)
        let configDigest = try Digest(parsing: try #require((manifest["config"] as? [String: Any])?["digest"] as? String))
        let configBytes = try #require(try archive.contents(of: OCIArchive.blobPath(configDigest)))
        let config = try #require(try JSONSerialization.jsonObject(with: Data(configBytes)) as? [String: Any])
        let diffIDs = try #require((config["rootfs"] as? [String: Any])?["diff_ids"] as? [String])
        #expect(diffIDs.count == layers.count)
        for (layer, diffID) in zip(layers, diffIDs) {
            let file = try archive.blobFile(layer)
            let (contents, computed) = try LayerReader().readComputingDiffID(fileAt: file)
            #expect(computed.description == diffID, "layer \(layer)")
            // Hashing on the way changes nothing about what is read.
            #expect(contents == (try LayerReader().read(fileAt: file)))
        }
    }

    @Test("diff IDs of gzip, zstd and uncompressed layers equal sha256 of the uncompressed tar; damage is a typed error")
    func diffIDAcrossCompressions() throws {
        var layer = TarBuilder()
        for index in 0..<40 { layer.file("usr/share/doc/file\(index)", String(repeating: "line \(index)\n", count: 400)) }
        layer.file("etc/os-release", "ID=alpine\n")
        let plain = layer.build(.none)
        let expected = BlobHasher.digest(of: plain)
        let directory = try ScratchDirectory(prefix: "gantry-diffid-test-")
        for (name, bytes) in [("plain", plain), ("gzip", layer.build(.gzip)), ("zstd", layer.build(.zstd))] {
            let file = directory.file(name)
            try Data(bytes).write(to: file)
            let (contents, diffID) = try LayerReader().readComputingDiffID(fileAt: file)
            #expect(diffID == expected, "\(name)")
            #expect(contents.entries.contains { $0.path == "etc/os-release" })
        }
        let gzip = layer.build(.gzip)
        let truncated = directory.file("truncated")
        try Data(gzip[0..<(gzip.count / 2)]).write(to: truncated)
        #expect(throws: LayerReadError.self) { try LayerReader().readComputingDiffID(fileAt: truncated) }
        let garbage = directory.file("garbage")
        try Data("definitely not a layer".utf8).write(to: garbage)
        #expect(throws: LayerReadError.self) { try LayerReader().readComputingDiffID(fileAt: garbage) }
    }

    /// "A layer that decompresses to 1 GB of zeros", delivered as an uncompressed 1 GiB layer inside a
    /// gzip'd oci-archive of about 1 MiB: unpacking writes the GiB to the scratch directory and reading it
    /// streams it back, each in bounded memory and time, and the directory is gone afterwards.
    @Test(.timeLimit(.minutes(3))) func gigabyteLayerInACompressedArchiveIsStreamed() throws {
        let generated = try GigabyteArchive.make()
        defer { try? FileManager.default.removeItem(at: generated.archive) }
        let archiveSize = try #require(try FileManager.default.attributesOfItem(atPath: generated.archive.path)[.size] as? NSNumber)
        #expect(archiveSize.intValue < 16 << 20)

        let clock = ContinuousClock()
        let before = ProcessMemory.resetPeak()
        var scratch: URL?
        var contents = LayerContents()
        let elapsed = try clock.measure {
            let archive = try OCIArchive(fileAt: generated.archive)
            scratch = archive.scratchDirectory
            let layer = try #require(archive.layerDigests().first)
            #expect(layer == generated.layerDigest)
            #expect(archive.members[OCIArchive.blobPath(layer)]?.size ?? 0 > 1 << 30)
            contents = try LayerReader().read(fileAt: try archive.blobFile(layer))
        }
        let growth = ProcessMemory.peakResidentBytes() - before
        print("OCIArchiveTests: 1 GiB layer in a \(archiveSize.intValue >> 10) KiB archive unpacked and read in \(elapsed), "
            + "peak RSS growth \(growth >> 20) MiB (generated in \(generated.generation))")
        #expect(contents.entryCount == 2)
        #expect(contents.entries.map(\.path) == ["etc/os-release"])
        #expect(contents.uncompressedBytes > 1 << 30)
        #expect(growth < 150 << 20, "peak RSS grew by \(growth >> 20) MiB")
        #expect(elapsed < .seconds(90))
        let directory = try #require(scratch)
        #expect(!FileManager.default.fileExists(atPath: directory.path))
    }
}

// MARK: - Support

/// Small OCI image-layout archives built in memory with libarchive (one manifest, one config).
enum ImageArchive {
    /// An oci-archive whose manifest lists `layers`; with `substitute`, the first layer's blob file holds
    /// those bytes instead (a layout that lies about a digest).
    static func ociArchive(layers: [[UInt8]], substitute: [UInt8]? = nil) -> [UInt8] {
        let layerDigests = layers.map { BlobHasher.digest(of: $0) }
        let config = Array("""
            {"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}
            """.utf8)
        let configDigest = BlobHasher.digest(of: config)
        let layerList = zip(layers, layerDigests).map { layer, digest in
            #"{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"\#(digest)","size":\#(layer.count)}"#
        }.joined(separator: ",")
        let manifest = Array("""
            {"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",\
            "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"\(configDigest)","size":\(config.count)},\
            "layers":[\(layerList)]}
            """.utf8)
        let manifestDigest = BlobHasher.digest(of: manifest)
        let index = Array("""
            {"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json",\
            "digest":"\(manifestDigest)","size":\(manifest.count),"platform":{"architecture":"amd64","os":"linux"}}]}
            """.utf8)
        var files: [(String, [UInt8])] = [("oci-layout", Array(#"{"imageLayoutVersion":"1.0.0"}"#.utf8)), ("index.json", index),
                                          (OCIArchive.blobPath(manifestDigest), manifest), (OCIArchive.blobPath(configDigest), config)]
        for (position, (layer, digest)) in zip(layers, layerDigests).enumerated() {
            files.append((OCIArchive.blobPath(digest), position == 0 ? substitute ?? layer : layer))
        }
        return tar(files)
    }

    /// An uncompressed tar of regular files.
    static func tar(_ files: [(String, [UInt8])]) -> [UInt8] {
        guard let archive = archive_write_new() else { return [] }
        defer { archive_write_free(archive) }
        archive_write_set_format_pax_restricted(archive)
        // No padding after the end-of-archive blocks, so cutting the tail cuts into the last file.
        archive_write_set_bytes_in_last_block(archive, 1)
        let capacity = files.reduce(64 << 10) { $0 + $1.1.count + 2048 }
        var buffer = [UInt8](repeating: 0, count: capacity)
        var used = 0
        buffer.withUnsafeMutableBytes { _ = archive_write_open_memory(archive, $0.baseAddress, capacity, &used) }
        for (path, bytes) in files {
            guard let entry = archive_entry_new() else { continue }
            archive_entry_set_pathname(entry, path)
            archive_entry_set_filetype(entry, 0o100000)
            archive_entry_set_perm(entry, 0o644)
            archive_entry_set_size(entry, Int64(bytes.count))
            archive_write_header(archive, entry)
            _ = bytes.withUnsafeBytes { archive_write_data(archive, $0.baseAddress, bytes.count) }
            archive_entry_free(entry)
        }
        archive_write_close(archive)
        return Array(buffer[0..<used])
    }
}

/// A gzip'd oci-archive whose one layer is an uncompressed tar of `etc/os-release` and 1 GiB of zeros,
/// written to a temporary file by libarchive's write API (the layer is streamed twice: once to hash it,
/// once into the archive), never held in memory.
private enum GigabyteArchive {
    struct Generated {
        var archive: URL
        var layerDigest: Digest
        var generation: Duration
    }

    static let zerosSize: Int64 = 1 << 30

    static func make() throws -> Generated {
        let clock = ContinuousClock()
        let start = clock.now
        // Pass 1: the layer's bytes into a hasher only (libarchive's write callback), for its digest and size.
        let (digest, size) = try hashLayer()
        let config = Array(#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["\#(digest)"]}}"#.utf8)
        let configDigest = BlobHasher.digest(of: config)
        let manifest = Array("""
            {"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",\
            "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"\(configDigest)","size":\(config.count)},\
            "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"\(digest)","size":\(size)}]}
            """.utf8)
        let manifestDigest = BlobHasher.digest(of: manifest)
        let index = Array(#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"\#(manifestDigest)","size":\#(manifest.count)}]}"#.utf8)

        // Pass 2: the archive, gzip level 1, with the layer regenerated straight into its blob entry.
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("gantry-gigabyte-\(UUID()).oci.tar.gz")
        guard let outer = archive_write_new() else { throw Failure("archive_write_new") }
        defer { archive_write_free(outer) }
        try check(archive_write_set_format_pax_restricted(outer), outer)
        try check(archive_write_add_filter_gzip(outer), outer)
        try check(archive_write_set_filter_option(outer, "gzip", "compression-level", "1"), outer)
        try check(archive_write_open_filename(outer, url.path), outer)
        do {
            for (path, bytes) in [("oci-layout", Array(#"{"imageLayoutVersion":"1.0.0"}"#.utf8)), ("index.json", index),
                                  (OCIArchive.blobPath(manifestDigest), manifest), (OCIArchive.blobPath(configDigest), config)] {
                try writeHeader(outer, path: path, size: Int64(bytes.count))
                _ = bytes.withUnsafeBytes { archive_write_data(outer, $0.baseAddress, bytes.count) }
            }
            try writeHeader(outer, path: OCIArchive.blobPath(digest), size: size)
            var written: Int64 = 0
            try writeLayer { block in
                let count = archive_write_data(outer, block.baseAddress, block.count)
                guard count == block.count else { return -1 }
                written += Int64(count)
                return count
            }
            guard written == size else { throw Failure("the layer was \(written) bytes the second time, \(size) the first") }
            try check(archive_write_close(outer), outer)
        } catch {
            try? FileManager.default.removeItem(at: url)
            throw error
        }
        return Generated(archive: url, layerDigest: digest, generation: clock.now - start)
    }

    private static func hashLayer() throws -> (Digest, Int64) {
        var hasher = BlobHasher()
        var size: Int64 = 0
        try writeLayer { block in
            hasher.update(block)
            size += Int64(block.count)
            return block.count
        }
        return (hasher.finalize(), size)
    }

    /// Writes the layer tar (uncompressed) through `sink`, which returns the bytes it took or -1.
    private static func writeLayer(_ sink: @escaping (UnsafeRawBufferPointer) -> Int) throws {
        final class Context {
            let sink: (UnsafeRawBufferPointer) -> Int
            init(_ sink: @escaping (UnsafeRawBufferPointer) -> Int) { self.sink = sink }
        }
        let context = Context(sink)
        guard let layer = archive_write_new() else { throw Failure("archive_write_new") }
        defer { archive_write_free(layer) }
        try check(archive_write_set_format_pax_restricted(layer), layer)
        try check(archive_write_set_bytes_in_last_block(layer, 1), layer)
        let opened = archive_write_open(layer, Unmanaged.passUnretained(context).toOpaque(), nil, { _, client, buffer, length in
            guard let client, let buffer else { return -1 }
            return Unmanaged<Context>.fromOpaque(client).takeUnretainedValue().sink(UnsafeRawBufferPointer(start: buffer, count: length))
        }, nil)
        try check(opened, layer)
        let release = Array("ID=alpine\nVERSION_ID=3.20.3\n".utf8)
        try writeHeader(layer, path: "etc/os-release", size: Int64(release.count))
        _ = release.withUnsafeBytes { archive_write_data(layer, $0.baseAddress, release.count) }
        try writeHeader(layer, path: "var/cache/zeros.bin", size: zerosSize)
        let chunk = [UInt8](repeating: 0, count: 1 << 20)
        var remaining = zerosSize
        while remaining > 0 {
            let count = Int(min(remaining, Int64(chunk.count)))
            let written = chunk.withUnsafeBytes { archive_write_data(layer, $0.baseAddress, count) }
            guard written == count else { throw Failure("archive_write_data wrote \(written) of \(count)") }
            remaining -= Int64(count)
        }
        try check(archive_write_close(layer), layer)
        withExtendedLifetime(context) {}
    }

    private static func writeHeader(_ archive: OpaquePointer, path: String, size: Int64) throws {
        guard let entry = archive_entry_new() else { throw Failure("archive_entry_new") }
        defer { archive_entry_free(entry) }
        archive_entry_set_pathname(entry, path)
        archive_entry_set_filetype(entry, 0o100000)
        archive_entry_set_perm(entry, 0o644)
        archive_entry_set_size(entry, size)
        archive_entry_set_mtime(entry, 1_600_000_000, 0)
        try check(archive_write_header(archive, entry), archive)
    }

    private static func check(_ status: Int32, _ archive: OpaquePointer) throws {
        guard status == ARCHIVE_OK else {
            throw Failure(archive_error_string(archive).map { String(cString: $0) } ?? "status \(status)")
        }
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }
}
