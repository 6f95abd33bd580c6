/// The section and segment tables of an ELF, PE or Mach-O executable, enough to find a named section
/// and to turn a virtual address into file bytes. Every offset is bounds-checked against the file;
/// nothing is trusted.
///
/// Formats: ELF (System V gABI, "ELF Header", "Sections", "Program Header"; 32/64-bit, either byte
/// order), PE/COFF (Microsoft "PE Format": DOS stub, COFF header, optional header `ImageBase`, section
/// table), Mach-O (`<mach-o/loader.h>`: `mach_header(_64)`, `LC_SEGMENT(_64)`; little-endian thin files).
struct ExecutableImage {
    enum Format: String, Sendable { case elf, pe, machO }

    struct Section {
        var name: String
        /// Virtual address where it is loaded (PE: image base included).
        var address: UInt64
        /// Size in memory.
        var size: UInt64
        /// Where its bytes are in the file; nil for sections with no file data (`SHT_NOBITS`, zero-fill).
        var fileRange: Range<Int>?
        /// ELF `sh_flags`, PE `Characteristics`, Mach-O `flags`.
        var flags: UInt64
    }

    struct Segment {
        var address: UInt64
        var memorySize: UInt64
        var fileRange: Range<Int>
        /// ELF `p_flags` (PF_X 1, PF_W 2, PF_R 4); Mach-O `initprot`; 0 for PE.
        var flags: UInt32
        var maxFlags: UInt32 = 0
        var isLoadable: Bool
    }

    let format: Format
    let bytes: [UInt8]
    let bigEndian: Bool
    let is64Bit: Bool
    private(set) var sections: [Section] = []
    private(set) var segments: [Segment] = []

    /// Parses the headers of `bytes`.
    /// - Throws: `ExecutableImageError.notAnExecutable` when no known magic is present, `.truncated` and
    ///   `.malformed` for tables that run past the end of the file or contradict themselves.
    init(_ bytes: [UInt8]) throws(ExecutableImageError) {
        self.bytes = bytes
        if bytes.starts(with: [0x7F, 0x45, 0x4C, 0x46]) {
            guard bytes.count >= 6, [1, 2].contains(bytes[4]), [1, 2].contains(bytes[5]) else {
                throw .malformed("ELF identification has an unknown class or data encoding")
            }
            format = .elf
            is64Bit = bytes[4] == 2
            bigEndian = bytes[5] == 2
            try parseELF()
        } else if bytes.starts(with: [0x4D, 0x5A]) {
            format = .pe
            bigEndian = false
            is64Bit = false // set from the optional header; only the image base width depends on it
            try parsePE()
        } else if bytes.starts(with: [0xCF, 0xFA, 0xED, 0xFE]) || bytes.starts(with: [0xCE, 0xFA, 0xED, 0xFE]) {
            format = .machO
            bigEndian = false
            is64Bit = bytes[0] == 0xCF
            try parseMachO()
        } else {
            throw .notAnExecutable
        }
    }

    /// The first section called `name` (for Mach-O, the section name without the segment).
    func section(named name: String) -> Section? {
        sections.first { $0.name == name }
    }

    /// The file bytes of `section`.
    /// - Throws: `.malformed` when the section has no file data.
    func contents(of section: Section) throws(ExecutableImageError) -> ArraySlice<UInt8> {
        guard let range = section.fileRange else { throw .malformed("section \(section.name) has no file data") }
        return bytes[range]
    }

    /// Up to `count` file bytes at virtual address `address`, from the segment (or section) that maps it;
    /// nil where no file data backs the address.
    func read(address: UInt64, count: Int) -> ArraySlice<UInt8>? {
        let mappings = segments.map { ($0.address, $0.fileRange) }
            + sections.compactMap { section in section.fileRange.map { (section.address, $0) } }
        for (start, range) in mappings where address >= start {
            let delta = address - start
            guard delta < UInt64(range.count) else { continue }
            let from = range.lowerBound + Int(delta)
            return bytes[from..<min(range.upperBound, from + max(0, count))]
        }
        return nil
    }

    // MARK: - Reading integers

    func integer(at offset: Int, size: Int) throws(ExecutableImageError) -> UInt64 {
        guard offset >= 0, size <= 8, offset <= bytes.count - size else {
            throw .truncated("a \(size)-byte field at offset \(offset) is past the end of the \(bytes.count)-byte file")
        }
        var value: UInt64 = 0
        for index in 0..<size {
            let byte = UInt64(bytes[offset + (bigEndian ? index : size - 1 - index)])
            value = value << 8 | byte
        }
        return value
    }

    private func u16(_ offset: Int) throws(ExecutableImageError) -> Int { Int(try integer(at: offset, size: 2)) }
    private func u32(_ offset: Int) throws(ExecutableImageError) -> UInt64 { try integer(at: offset, size: 4) }
    private func u64(_ offset: Int) throws(ExecutableImageError) -> UInt64 { try integer(at: offset, size: 8) }
    private func word(_ offset: Int) throws(ExecutableImageError) -> UInt64 {
        is64Bit ? try u64(offset) : try u32(offset)
    }

    /// A file range from an untrusted offset and size, or nil where it does not fit in the file.
    private func fileRange(offset: UInt64, size: UInt64) -> Range<Int>? {
        guard offset <= UInt64(bytes.count), size <= UInt64(bytes.count) - offset else { return nil }
        return Int(offset)..<Int(offset + size)
    }

    private func cString(at offset: Int, max: Int = 256) -> String {
        guard offset >= 0, offset < bytes.count else { return "" }
        let end = bytes[offset..<min(bytes.count, offset + max)].firstIndex(of: 0) ?? min(bytes.count, offset + max)
        return String(decoding: bytes[offset..<end], as: UTF8.self)
    }

    // MARK: - ELF

    private mutating func parseELF() throws(ExecutableImageError) {
        let headerSize = is64Bit ? 64 : 52
        guard bytes.count >= headerSize else { throw .truncated("ELF header needs \(headerSize) bytes") }
        let phoff = try word(is64Bit ? 32 : 28)
        let shoff = try word(is64Bit ? 40 : 32)
        let phentsize = try u16(is64Bit ? 54 : 42)
        let phnum = try u16(is64Bit ? 56 : 44)
        let shentsize = try u16(is64Bit ? 58 : 46)
        var shnum = try u16(is64Bit ? 60 : 48)
        var shstrndx = try u16(is64Bit ? 62 : 50)

        if phnum > 0 {
            guard phentsize >= (is64Bit ? 56 : 32),
                  fileRange(offset: phoff, size: UInt64(phnum) * UInt64(phentsize)) != nil
            else { throw .malformed("program header table (\(phnum) × \(phentsize) bytes at \(phoff)) is outside the file") }
            for index in 0..<phnum {
                let base = Int(phoff) + index * phentsize
                let type = try u32(base)
                let flags, offset, vaddr, filesz, memsz: UInt64
                if is64Bit {
                    flags = try u32(base + 4); offset = try u64(base + 8); vaddr = try u64(base + 16)
                    filesz = try u64(base + 32); memsz = try u64(base + 40)
                } else {
                    offset = try u32(base + 4); vaddr = try u32(base + 8); filesz = try u32(base + 16)
                    memsz = try u32(base + 20); flags = try u32(base + 24)
                }
                // A segment whose bytes are not all in the file is kept only as far as they are.
                let available = offset <= UInt64(bytes.count) ? min(filesz, UInt64(bytes.count) - offset) : 0
                guard let range = fileRange(offset: offset, size: available) else { continue }
                segments.append(Segment(address: vaddr, memorySize: memsz, fileRange: range, flags: UInt32(flags),
                                        isLoadable: type == 1))
            }
        }

        guard shoff != 0 else { return }
        guard shentsize >= (is64Bit ? 64 : 40) else { throw .malformed("section header entries of \(shentsize) bytes") }
        guard fileRange(offset: shoff, size: UInt64(shentsize)) != nil else {
            throw .malformed("section header table at \(shoff) is outside the file")
        }
        // Extended numbering (gABI): 0 sections or SHN_XINDEX mean the real value is in section 0.
        if shnum == 0 { shnum = Int(min(try word(Int(shoff) + (is64Bit ? 32 : 20)), 1 << 20)) }
        if shstrndx == 0xFFFF { shstrndx = Int(try u32(Int(shoff) + (is64Bit ? 40 : 24))) }
        guard fileRange(offset: shoff, size: UInt64(shnum) * UInt64(shentsize)) != nil else {
            throw .malformed("section header table (\(shnum) × \(shentsize) bytes at \(shoff)) is outside the file")
        }
        var raw: [(nameOffset: Int, type: UInt64, flags: UInt64, address: UInt64, offset: UInt64, size: UInt64)] = []
        for index in 0..<shnum {
            let base = Int(shoff) + index * shentsize
            if is64Bit {
                raw.append((Int(try u32(base)), try u32(base + 4), try u64(base + 8), try u64(base + 16),
                            try u64(base + 24), try u64(base + 32)))
            } else {
                raw.append((Int(try u32(base)), try u32(base + 4), try u32(base + 8), try u32(base + 12),
                            try u32(base + 16), try u32(base + 20)))
            }
        }
        guard shstrndx < raw.count else { throw .malformed("section name table index \(shstrndx) of \(raw.count)") }
        let names = raw[shstrndx]
        guard let namesRange = fileRange(offset: names.offset, size: names.size) else {
            throw .malformed("section name table is outside the file")
        }
        for entry in raw {
            let name = entry.nameOffset < namesRange.count ? cString(at: namesRange.lowerBound + entry.nameOffset) : ""
            let noBits = entry.type == 8 // SHT_NOBITS
            sections.append(Section(name: name, address: entry.address, size: entry.size,
                                    fileRange: noBits ? nil : fileRange(offset: entry.offset, size: entry.size),
                                    flags: entry.flags))
        }
    }

    // MARK: - PE

    private mutating func parsePE() throws(ExecutableImageError) {
        let peOffset = Int(try u32(0x3C))
        guard peOffset <= bytes.count - 24, bytes[peOffset..<peOffset + 4].elementsEqual([0x50, 0x45, 0, 0]) else {
            throw .notAnExecutable
        }
        let coff = peOffset + 4
        let sectionCount = try u16(coff + 2)
        let optionalSize = try u16(coff + 16)
        let optional = coff + 20
        let magic = try u16(optional)
        let imageBase: UInt64
        switch magic {
        case 0x10B: imageBase = try u32(optional + 28)
        case 0x20B: imageBase = try u64(optional + 24)
        default: throw .malformed("PE optional header magic \(magic)")
        }
        let table = optional + optionalSize
        guard fileRange(offset: UInt64(table), size: UInt64(sectionCount) * 40) != nil else {
            throw .malformed("PE section table (\(sectionCount) sections at \(table)) is outside the file")
        }
        for index in 0..<sectionCount {
            let base = table + index * 40
            let nameBytes = bytes[base..<base + 8]
            let name = String(decoding: nameBytes.prefix { $0 != 0 }, as: UTF8.self)
            let virtualSize = try u32(base + 8)
            let virtualAddress = try u32(base + 12)
            let rawSize = try u32(base + 16)
            let rawPointer = try u32(base + 20)
            let characteristics = try u32(base + 36)
            let range = rawSize == 0 ? nil : fileRange(offset: rawPointer, size: min(rawSize, max(virtualSize, rawSize)))
            sections.append(Section(name: name, address: imageBase + virtualAddress, size: virtualSize,
                                    fileRange: range, flags: characteristics))
        }
    }

    // MARK: - Mach-O

    private mutating func parseMachO() throws(ExecutableImageError) {
        let headerSize = is64Bit ? 32 : 28
        guard bytes.count >= headerSize else { throw .truncated("Mach-O header needs \(headerSize) bytes") }
        let commandCount = Int(try u32(16))
        var offset = headerSize
        for _ in 0..<min(commandCount, 100_000) {
            let command = try u32(offset)
            let size = Int(try u32(offset + 4))
            guard size >= 8, offset <= bytes.count - size else { throw .malformed("load command at \(offset) overruns the file") }
            let segmentCommand: UInt64 = is64Bit ? 0x19 : 0x1
            if command == segmentCommand {
                try parseMachOSegment(at: offset, size: size)
            }
            offset += size
        }
    }

    private mutating func parseMachOSegment(at offset: Int, size: Int) throws(ExecutableImageError) {
        let word = is64Bit ? 8 : 4
        let vmaddr = try self.word(offset + 24)
        let vmsize = try self.word(offset + 24 + word)
        let fileoff = try self.word(offset + 24 + 2 * word)
        let filesize = try self.word(offset + 24 + 3 * word)
        let fieldsEnd = offset + 24 + 4 * word
        let maxprot = try u32(fieldsEnd)
        let initprot = try u32(fieldsEnd + 4)
        let sectionCount = Int(try u32(fieldsEnd + 8))
        if let range = fileRange(offset: fileoff, size: filesize) {
            segments.append(Segment(address: vmaddr, memorySize: vmsize, fileRange: range, flags: UInt32(initprot),
                                    maxFlags: UInt32(maxprot), isLoadable: true))
        }
        let sectionSize = is64Bit ? 80 : 68
        let first = fieldsEnd + 16
        guard sectionCount <= (size - (first - offset)) / sectionSize else {
            throw .malformed("segment at \(offset) declares \(sectionCount) sections that do not fit its command")
        }
        for index in 0..<sectionCount {
            let base = first + index * sectionSize
            let name = String(decoding: bytes[base..<base + 16].prefix { $0 != 0 }, as: UTF8.self)
            let address = try self.word(base + 32)
            let sectionSizeValue = try self.word(base + 32 + word)
            let fileOffset = try u32(base + 32 + 2 * word)
            let flags = try u32(base + 32 + 2 * word + 4 * 4)
            let zeroFill = flags & 0xFF == 1 || flags & 0xFF == 12 // S_ZEROFILL, S_GB_ZEROFILL
            sections.append(Section(name: name, address: address, size: sectionSizeValue,
                                    fileRange: zeroFill ? nil : fileRange(offset: fileOffset, size: sectionSizeValue),
                                    flags: flags))
        }
    }
}

/// Why an executable's headers could not be read.
enum ExecutableImageError: Error, Equatable, CustomStringConvertible {
    /// No ELF, PE or Mach-O magic.
    case notAnExecutable
    /// The file ends inside a header.
    case truncated(String)
    /// A table points outside the file or contradicts itself.
    case malformed(String)

    var description: String {
        switch self {
        case .notAnExecutable: "not an ELF, PE or Mach-O executable"
        case .truncated(let detail): "truncated executable: \(detail)"
        case .malformed(let detail): "malformed executable: \(detail)"
        }
    }
}
