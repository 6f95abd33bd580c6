import CArchive

/// Builds small tar layers in memory with libarchive's write API (pax restricted format, optional
/// gzip), so the layer rules are tested on real tar bytes, not on hand-made `LayerContents`.
struct TarBuilder {
    enum Compression { case none, gzip, zstd }
    enum Item {
        case file(String, [UInt8])
        case directory(String)
        case symlink(String, target: String)
        case hardlink(String, target: String)
        /// A regular file header declaring `size` bytes, with only `written` actually written.
        case declaredFile(String, size: Int64, written: [UInt8])
    }

    var items: [Item] = []

    mutating func file(_ path: String, _ text: String) { items.append(.file(path, Array(text.utf8))) }
    mutating func directory(_ path: String) { items.append(.directory(path)) }
    mutating func symlink(_ path: String, to target: String) { items.append(.symlink(path, target: target)) }
    mutating func hardlink(_ path: String, to target: String) { items.append(.hardlink(path, target: target)) }
    /// A whiteout for `path` (`dir/.wh.name`).
    mutating func whiteout(_ path: String) {
        let parts = path.split(separator: "/")
        let name = ".wh." + (parts.last.map(String.init) ?? "")
        items.append(.file((parts.dropLast().map(String.init) + [name]).joined(separator: "/"), []))
    }
    /// An opaque marker for directory `path`.
    mutating func opaque(_ path: String) { items.append(.file(path + "/.wh..wh..opq", [])) }

    /// The archive bytes.
    func build(_ compression: Compression = .gzip) -> [UInt8] {
        guard let archive = archive_write_new() else { return [] }
        defer { archive_write_free(archive) }
        archive_write_set_format_pax_restricted(archive)
        switch compression {
        case .none: break
        case .gzip: archive_write_add_filter_gzip(archive)
        case .zstd: archive_write_add_filter_zstd(archive)
        }
        // Tar blocks pad to 10 KiB records; 1 MiB is ample for test layers.
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var used = 0
        buffer.withUnsafeMutableBytes { raw in
            archive_write_open_memory(archive, raw.baseAddress, raw.count, &used)
            for item in items {
                guard let entry = archive_entry_new() else { continue }
                defer { archive_entry_free(entry) }
                archive_entry_set_mtime(entry, 1_600_000_000, 0)
                switch item {
                case .file(let path, let bytes), .declaredFile(let path, _, let bytes):
                    archive_entry_set_pathname(entry, path)
                    archive_entry_set_filetype(entry, 0o100000)
                    archive_entry_set_perm(entry, 0o644)
                    if case .declaredFile(_, let size, _) = item {
                        archive_entry_set_size(entry, size)
                    } else {
                        archive_entry_set_size(entry, Int64(bytes.count))
                    }
                    archive_write_header(archive, entry)
                    if !bytes.isEmpty { _ = bytes.withUnsafeBytes { archive_write_data(archive, $0.baseAddress, $0.count) } }
                case .directory(let path):
                    archive_entry_set_pathname(entry, path)
                    archive_entry_set_filetype(entry, 0o040000)
                    archive_entry_set_perm(entry, 0o755)
                    archive_write_header(archive, entry)
                case .symlink(let path, let target):
                    archive_entry_set_pathname(entry, path)
                    archive_entry_set_filetype(entry, 0o120000)
                    archive_entry_set_perm(entry, 0o777)
                    archive_entry_set_symlink(entry, target)
                    archive_write_header(archive, entry)
                case .hardlink(let path, let target):
                    archive_entry_set_pathname(entry, path)
                    archive_entry_set_filetype(entry, 0o100000)
                    archive_entry_set_perm(entry, 0o644)
                    archive_entry_set_hardlink(entry, target)
                    archive_entry_set_size(entry, 0)
                    archive_write_header(archive, entry)
                }
            }
            archive_write_close(archive)
        }
        return Array(buffer[0..<used])
    }
}
