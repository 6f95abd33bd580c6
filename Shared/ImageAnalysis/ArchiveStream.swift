import CArchive
import Foundation
import GantryModel

/// A read-only libarchive handle over bytes in memory or a file read in blocks: any compression filter
/// libarchive detects (gzip, zstd, bzip2, xz, none) and any tar dialect (ustar, pax, GNU, v7).
///
/// Not thread-safe and not Sendable: one stream belongs to one `LayerReader.read` call (or one
/// `OCIArchive` unpacking), and memory it reads must outlive it (the caller holds it inside `withUnsafeBytes`).
final class ArchiveStream {
    /// The tar header fields Gantry uses, copied out of libarchive's entry.
    struct Header {
        /// The entry name as stored, UTF-8; nil where libarchive could not decode it.
        var rawPath: String?
        /// `AE_IFREG`, `AE_IFDIR`, … (the `S_IFMT` bits of the mode).
        var fileType: UInt32
        /// Declared data size in bytes (0 where unset).
        var size: Int64
        var hardlinkTarget: String?
        var symlinkTarget: String?
        /// The permission bits (`archive_entry_perm`: rwx for owner, group, other, plus set-id and sticky).
        var permissions: UInt32 = 0
    }

    /// The container formats a stream accepts.
    enum Format {
        /// Tar in any dialect, behind any compression filter (layers).
        case tar
        /// Zip, read seekably through the central directory (jar, war, ear), no filters.
        case zip
        /// A single gzip member, no container (`archive_read_support_format_raw`).
        case gzipRaw
    }

    // archive_entry.h defines these as casts, which Swift does not import; values are POSIX S_IF*.
    static let regularFile: UInt32 = 0o100000
    static let symbolicLink: UInt32 = 0o120000
    static let directory: UInt32 = 0o040000

    private let archive: OpaquePointer
    private(set) var headersRead = 0

    /// Opens `buffer` for reading.
    /// - Throws: `LayerReadError.notATar` for an empty buffer, `.libarchive` if set-up fails.
    init(_ buffer: UnsafeRawBufferPointer, format: Format = .tar) throws(LayerReadError) {
        guard let base = buffer.baseAddress, !buffer.isEmpty else { throw .notATar("the blob is empty") }
        archive = try Self.makeArchive(format: format)
        guard archive_read_open_memory(archive, base, buffer.count) == ARCHIVE_OK else {
            throw .notATar(errorString)
        }
    }

    /// Opens the file at `path` for reading in `blockSize` blocks (default 1 MiB), so memory stays bounded
    /// whatever its size (a memory map would count every touched page in the process's peak RSS).
    /// - Throws: `LayerReadError.notATar` for an empty or unreadable file, `.libarchive` if set-up fails.
    init(path: String, format: Format = .tar, blockSize: Int = ArchiveStream.fileBlockSize) throws(LayerReadError) {
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue ?? 0
        guard size > 0 else { throw .notATar("the blob is empty") }
        archive = try Self.makeArchive(format: format)
        guard archive_read_open_filename(archive, path, blockSize) == ARCHIVE_OK else {
            throw .notATar(errorString)
        }
    }

    /// Opens the tar inside the (possibly compressed) file at `path` and hashes its uncompressed bytes on
    /// the way, in the same pass: a raw libarchive reader decompresses (any filter) and hands its blocks to
    /// the tar reader through a read callback; every byte, skipped entries and the trailing padding
    /// included, goes through `uncompressedDigest()`'s sha256 — the layer's diff ID (OCI image spec,
    /// "Image Configuration", `rootfs.diff_ids`).
    /// - Throws: as `init(path:)`.
    init(hashingUncompressed path: String) throws(LayerReadError) {
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue ?? 0
        guard size > 0 else { throw .notATar("the blob is empty") }
        let source = try DecompressedSource(path: path)
        guard let archive = archive_read_new() else { throw .libarchive("archive_read_new returned NULL") }
        guard archive_read_support_format_tar(archive) == ARCHIVE_OK else {
            let message = archive_error_string(archive).map { String(cString: $0) } ?? "unknown libarchive error"
            archive_read_free(archive)
            throw .libarchive(message)
        }
        self.archive = archive
        self.source = source
        let status = archive_read_open(archive, Unmanaged.passUnretained(source).toOpaque(), nil, { _, context, buffer in
            guard let context, let buffer else { return -1 }
            return Unmanaged<DecompressedSource>.fromOpaque(context).takeUnretainedValue().next(buffer)
        }, nil)
        guard status == ARCHIVE_OK else { throw .notATar(source.failure ?? errorString) }
    }

    /// Block size for files: large enough that reading costs few system calls, small enough to be
    /// irrelevant to peak memory.
    static let fileBlockSize = 1 << 20

    /// The decompressing reader under a hashing stream (kept alive as long as the tar reader uses it).
    private var source: DecompressedSource?

    /// sha256 of the whole uncompressed stream, after reading the rest of it; only for a stream opened
    /// with `init(hashingUncompressed:)`, nil otherwise.
    /// - Throws: `.corrupt` when the rest of the stream cannot be decompressed.
    func uncompressedDigest() throws(LayerReadError) -> Digest? {
        guard let source else { return nil }
        try source.drain(entriesRead: headersRead)
        return source.hasher.finalize()
    }

    private static func makeArchive(format: Format) throws(LayerReadError) -> OpaquePointer {
        guard let archive = archive_read_new() else { throw .libarchive("archive_read_new returned NULL") }
        let supported: Bool
        switch format {
        case .tar:
            // The media type is only a hint: let libarchive sniff the compression (OCI image spec,
            // "Image Layer Filesystem Changeset", "Distributable Format").
            supported = archive_read_support_filter_all(archive) >= ARCHIVE_WARN
                && archive_read_support_format_tar(archive) == ARCHIVE_OK
        case .zip:
            supported = archive_read_support_format_zip(archive) == ARCHIVE_OK
        case .gzipRaw:
            supported = archive_read_support_filter_gzip(archive) >= ARCHIVE_WARN
                && archive_read_support_format_raw(archive) == ARCHIVE_OK
        }
        guard supported else {
            let message = archive_error_string(archive).map { String(cString: $0) } ?? "unknown libarchive error"
            archive_read_free(archive)
            throw .libarchive(message)
        }
        return archive
    }

    deinit {
        archive_read_free(archive)
        // `source` is released after the tar reader that calls into it.
    }

    /// libarchive's message for the last failure.
    var errorString: String {
        archive_error_string(archive).map { String(cString: $0) } ?? "unknown libarchive error"
    }

    /// Bytes of decompressed tar stream consumed so far (filter 0 is the one nearest the format).
    var uncompressedBytes: Int64 { archive_filter_bytes(archive, 0) }

    /// The next header, or nil at the end of the archive.
    /// - Throws: `.notATar` when the very first header fails (garbage, unknown format),
    ///   `.corrupt` for any later failure (truncated stream, bad checksum).
    func next() throws(LayerReadError) -> Header? {
        var entry: OpaquePointer?
        let status = archive_read_next_header(archive, &entry)
        if status == ARCHIVE_EOF { return nil }
        // ARCHIVE_RETRY (-10) sorts above ARCHIVE_WARN (-20) but is a failure: libarchive's tar reader
        // returns it for a header whose checksum is wrong ("Damaged tar archive"), with no usable entry.
        guard status == ARCHIVE_OK || status == ARCHIVE_WARN, let entry else {
            // Under a hashing stream the decompressor's own message says what broke.
            let message = source?.failure ?? errorString
            if headersRead == 0 { throw .notATar(message) }
            throw .corrupt(message, entriesRead: headersRead)
        }
        headersRead += 1
        let rawPath = (archive_entry_pathname_utf8(entry) ?? archive_entry_pathname(entry)).map { String(cString: $0) }
        return Header(
            rawPath: rawPath,
            fileType: UInt32(archive_entry_filetype(entry)),
            size: archive_entry_size_is_set(entry) != 0 ? max(0, archive_entry_size(entry)) : 0,
            hardlinkTarget: (archive_entry_hardlink_utf8(entry) ?? archive_entry_hardlink(entry))
                .map { String(cString: $0) },
            symlinkTarget: (archive_entry_symlink_utf8(entry) ?? archive_entry_symlink(entry))
                .map { String(cString: $0) },
            permissions: UInt32(archive_entry_perm(entry)))
    }

    /// Reads the current entry's data, refusing to hold more than `limit` bytes.
    /// - Throws: `.fileTooLarge` past `limit`, `.corrupt` when the data cannot be read.
    func readData(path: String, declaredSize: Int64, limit: Int) throws(LayerReadError) -> [UInt8] {
        // `accept` always answers true, so the result is never nil.
        try readData(path: path, declaredSize: declaredSize, limit: limit, prefixLength: 0) { _ in true } ?? []
    }

    /// Reads the current entry's data like `readData(path:declaredSize:limit:)`, but first shows its
    /// leading `prefixLength` bytes (fewer if the entry is shorter) to `accept` and returns nil without
    /// reading further when it refuses them; libarchive skips the rest at the next header.
    func readData(path: String, declaredSize: Int64, limit: Int, prefixLength: Int,
                  accept: (ArraySlice<UInt8>) -> Bool) throws(LayerReadError) -> [UInt8]? {
        var checked = prefixLength == 0 && accept([])
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Int(min(declaredSize, Int64(limit))))
        let chunkSize = 64 * 1024
        var chunk = [UInt8](repeating: 0, count: chunkSize)
        while true {
            let count = chunk.withUnsafeMutableBytes { archive_read_data(archive, $0.baseAddress, chunkSize) }
            if count == 0 { break }
            guard count > 0 else { throw .corrupt(source?.failure ?? errorString, entriesRead: headersRead) }
            if !checked, bytes.count + count >= prefixLength {
                // The prefix decides before the limit does: a refused file is never "too large".
                guard accept((bytes + chunk[0..<count]).prefix(prefixLength)) else { return nil }
                checked = true
            }
            guard bytes.count + count <= limit else {
                throw .fileTooLarge(path: path, size: Int64(bytes.count + count), limit: limit)
            }
            bytes.append(contentsOf: chunk[0..<count])
        }
        if !checked, !accept(bytes[...]) { return nil }
        return bytes
    }

    /// Hands the current entry's data to `sink` block by block, in libarchive's own buffers (no copy);
    /// holes of a sparse entry are given as zeros, so the sink sees the file's bytes in order.
    /// - Returns: the number of bytes handed over.
    /// - Throws: `.fileTooLarge` past `limit` bytes, `.corrupt` when the data cannot be read, and
    ///   whatever `sink` throws.
    func streamData(path: String, limit: Int64,
                    into sink: (UnsafeRawBufferPointer) throws(LayerReadError) -> Void) throws(LayerReadError) -> Int64 {
        var written: Int64 = 0
        var zeros: UnsafeMutableRawBufferPointer?
        defer { zeros?.deallocate() }
        while true {
            var block: UnsafeRawPointer?
            var size = 0
            var offset: la_int64_t = 0
            let status = archive_read_data_block(archive, &block, &size, &offset)
            if status == ARCHIVE_EOF { return written }
            guard status == ARCHIVE_OK || status == ARCHIVE_WARN else {
                throw .corrupt(source?.failure ?? errorString, entriesRead: headersRead)
            }
            guard offset >= written, offset <= limit, Int64(size) <= limit - offset else {
                throw .fileTooLarge(path: path, size: max(offset, written) + Int64(size), limit: Int(min(limit, Int64(Int.max))))
            }
            while written < offset {
                let hole = zeros ?? {
                    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 1)
                    buffer.initializeMemory(as: UInt8.self, repeating: 0)
                    return buffer
                }()
                zeros = hole
                let count = Int(min(Int64(hole.count), offset - written))
                try sink(UnsafeRawBufferPointer(rebasing: hole[0..<count]))
                written += Int64(count)
            }
            if let block, size > 0 {
                try sink(UnsafeRawBufferPointer(start: block, count: size))
                written += Int64(size)
            }
        }
    }
}

/// The decompressed bytes of one file, from a raw-format libarchive reader (any compression filter, no
/// container), handed out block by block to a tar reader's read callback and hashed on the way.
private final class DecompressedSource {
    private let archive: OpaquePointer
    /// sha256 of every byte handed out or drained.
    var hasher = BlobHasher()
    /// The decompressor's message once it has failed.
    private(set) var failure: String?
    private var finished = false

    init(path: String) throws(LayerReadError) {
        guard let archive = archive_read_new() else { throw .libarchive("archive_read_new returned NULL") }
        self.archive = archive
        guard archive_read_support_filter_all(archive) >= ARCHIVE_WARN,
              archive_read_support_format_raw(archive) == ARCHIVE_OK
        else { throw .libarchive(message) }
        guard archive_read_open_filename(archive, path, ArchiveStream.fileBlockSize) == ARCHIVE_OK else {
            throw .notATar(message)
        }
        var entry: OpaquePointer?
        guard archive_read_next_header(archive, &entry) == ARCHIVE_OK else { throw .notATar(message) }
    }

    deinit { archive_read_free(archive) }

    private var message: String {
        archive_error_string(archive).map { String(cString: $0) } ?? "unknown libarchive error"
    }

    /// The read callback's work: points `buffer` at the next decompressed block (valid until the next
    /// call) and returns its length; 0 at the end, -1 on failure (the message kept in `failure`).
    func next(_ buffer: UnsafeMutablePointer<UnsafeRawPointer?>) -> Int {
        guard !finished else { return 0 }
        var block: UnsafeRawPointer?
        var size = 0
        var offset: la_int64_t = 0
        let status = archive_read_data_block(archive, &block, &size, &offset)
        if status == ARCHIVE_EOF {
            finished = true
            return 0
        }
        guard status == ARCHIVE_OK || status == ARCHIVE_WARN, let block else {
            failure = message
            finished = true
            return -1
        }
        hasher.update(UnsafeRawBufferPointer(start: block, count: size))
        buffer.pointee = block
        return size
    }

    /// Hashes whatever the tar reader left unread (the end-of-archive blocks' record padding).
    /// - Throws: `.corrupt` when decompression fails on the way.
    func drain(entriesRead: Int) throws(LayerReadError) {
        var ignored: UnsafeRawPointer?
        while !finished {
            if next(&ignored) < 0 { throw .corrupt(failure ?? message, entriesRead: entriesRead) }
        }
        if let failure { throw .corrupt(failure, entriesRead: entriesRead) }
    }
}
