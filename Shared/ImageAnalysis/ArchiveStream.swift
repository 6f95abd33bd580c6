import Foundation
import CArchive

/// A read-only libarchive handle over bytes already in memory: any compression filter libarchive
/// detects (gzip, zstd, bzip2, xz, none) and any tar dialect (ustar, pax, GNU, v7).
///
/// Not thread-safe and not Sendable: one stream belongs to one `LayerReader.read` call, and the
/// memory it reads must outlive it (the caller holds it inside `withUnsafeBytes`).
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

    /// Opens the file at `path` for reading in 64 KiB blocks, so memory stays bounded whatever its size
    /// (a memory map would count every touched page in the process's peak RSS).
    /// - Throws: `LayerReadError.notATar` for an empty or unreadable file, `.libarchive` if set-up fails.
    init(path: String, format: Format = .tar) throws(LayerReadError) {
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue ?? 0
        guard size > 0 else { throw .notATar("the blob is empty") }
        archive = try Self.makeArchive(format: format)
        guard archive_read_open_filename(archive, path, 64 * 1024) == ARCHIVE_OK else {
            throw .notATar(errorString)
        }
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
            if headersRead == 0 { throw .notATar(errorString) }
            throw .corrupt(errorString, entriesRead: headersRead)
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
            guard count > 0 else { throw .corrupt(errorString, entriesRead: headersRead) }
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
}
