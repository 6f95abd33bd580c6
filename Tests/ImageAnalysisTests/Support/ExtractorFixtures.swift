import CArchive

/// A tar layer builder like `TarBuilder`, but with permission bits and room for large files
/// (real executables, jars), for the `FileExtractor` tests.
struct ModeTarBuilder {
    enum Item {
        case file(String, [UInt8], mode: UInt32)
        case hardlink(String, target: String, mode: UInt32)
    }

    var items: [Item] = []

    mutating func file(_ path: String, _ bytes: [UInt8], mode: UInt32 = 0o644) { items.append(.file(path, bytes, mode: mode)) }
    mutating func hardlink(_ path: String, to target: String, mode: UInt32 = 0o755) {
        items.append(.hardlink(path, target: target, mode: mode))
    }
    mutating func whiteout(_ path: String) {
        let parts = path.split(separator: "/")
        let name = ".wh." + (parts.last.map(String.init) ?? "")
        items.append(.file((parts.dropLast().map(String.init) + [name]).joined(separator: "/"), [], mode: 0o644))
    }

    /// Uncompressed tar bytes (ustar/pax), sized to fit.
    func build() -> [UInt8] {
        guard let archive = archive_write_new() else { return [] }
        defer { archive_write_free(archive) }
        archive_write_set_format_pax_restricted(archive)
        let payload = items.reduce(0) { total, item in
            if case .file(_, let bytes, _) = item { return total + bytes.count + 2048 }
            return total + 2048
        }
        var buffer = [UInt8](repeating: 0, count: payload + (1 << 16))
        var used = 0
        buffer.withUnsafeMutableBytes { raw in
            archive_write_open_memory(archive, raw.baseAddress, raw.count, &used)
            for item in items {
                guard let entry = archive_entry_new() else { continue }
                defer { archive_entry_free(entry) }
                archive_entry_set_mtime(entry, 1_600_000_000, 0)
                archive_entry_set_filetype(entry, 0o100000)
                switch item {
                case .file(let path, let bytes, let mode):
                    archive_entry_set_pathname(entry, path)
                    archive_entry_set_perm(entry, mode_t(mode))
                    archive_entry_set_size(entry, Int64(bytes.count))
                    archive_write_header(archive, entry)
                    if !bytes.isEmpty { _ = bytes.withUnsafeBytes { archive_write_data(archive, $0.baseAddress, $0.count) } }
                case .hardlink(let path, let target, let mode):
                    archive_entry_set_pathname(entry, path)
                    archive_entry_set_perm(entry, mode_t(mode))
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

/// Builds zip archives (jars) in memory with libarchive's zip writer, deflated.
struct ZipBuilder {
    var entries: [(path: String, bytes: [UInt8])] = []

    mutating func add(_ path: String, _ bytes: [UInt8]) { entries.append((path, bytes)) }
    mutating func add(_ path: String, _ text: String) { entries.append((path, Array(text.utf8))) }

    func build() -> [UInt8] {
        guard let archive = archive_write_new() else { return [] }
        defer { archive_write_free(archive) }
        archive_write_set_format_zip(archive)
        let payload = entries.reduce(0) { $0 + $1.bytes.count + $1.path.utf8.count * 2 + 200 }
        var buffer = [UInt8](repeating: 0, count: payload + (1 << 16))
        var used = 0
        buffer.withUnsafeMutableBytes { raw in
            archive_write_open_memory(archive, raw.baseAddress, raw.count, &used)
            for (path, bytes) in entries {
                guard let entry = archive_entry_new() else { continue }
                defer { archive_entry_free(entry) }
                archive_entry_set_pathname(entry, path)
                archive_entry_set_filetype(entry, 0o100000)
                archive_entry_set_perm(entry, 0o644)
                archive_entry_set_size(entry, Int64(bytes.count))
                archive_entry_set_mtime(entry, 1_600_000_000, 0)
                archive_write_header(archive, entry)
                if !bytes.isEmpty { _ = bytes.withUnsafeBytes { archive_write_data(archive, $0.baseAddress, $0.count) } }
            }
            archive_write_close(archive)
        }
        return Array(buffer[0..<used])
    }
}

/// A minimal little-endian ELF64 file with the named sections (plus the null section and `.shstrtab`),
/// each section's bytes laid out after the header; enough for section lookups.
enum ELFBuilder {
    static func build(sections: [(name: String, bytes: [UInt8])]) -> [UInt8] {
        var strtab: [UInt8] = [0]
        var nameOffsets: [Int] = []
        for section in sections + [(name: ".shstrtab", bytes: [])] {
            nameOffsets.append(strtab.count)
            strtab += Array(section.name.utf8) + [0]
        }
        var file = [UInt8](repeating: 0, count: 64)
        var placed: [(offset: Int, size: Int)] = []
        for section in sections {
            placed.append((file.count, section.bytes.count))
            file += section.bytes
        }
        placed.append((file.count, strtab.count))
        file += strtab
        while file.count % 8 != 0 { file.append(0) }
        let shoff = file.count
        file += [UInt8](repeating: 0, count: 64) // SHN_UNDEF
        for (index, place) in placed.enumerated() {
            var header = [UInt8](repeating: 0, count: 64)
            put(&header, 0, UInt64(nameOffsets[index]), 4)
            put(&header, 4, index == placed.count - 1 ? 3 : 1, 4) // SHT_STRTAB / SHT_PROGBITS
            put(&header, 24, UInt64(place.offset), 8)
            put(&header, 32, UInt64(place.size), 8)
            file += header
        }
        // ELF header: magic, ELFCLASS64, ELFDATA2LSB, EV_CURRENT; ET_EXEC, EM_X86_64.
        file.replaceSubrange(0..<7, with: [0x7F, 0x45, 0x4C, 0x46, 2, 1, 1])
        put(&file, 16, 2, 2)
        put(&file, 18, 62, 2)
        put(&file, 20, 1, 4)
        put(&file, 40, UInt64(shoff), 8)
        put(&file, 52, 64, 2)
        put(&file, 58, 64, 2)
        put(&file, 60, UInt64(placed.count + 1), 2)
        put(&file, 62, UInt64(placed.count), 2)
        return file
    }

    static func put(_ bytes: inout [UInt8], _ offset: Int, _ value: UInt64, _ size: Int) {
        for index in 0..<size { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(index))) }
    }
}
