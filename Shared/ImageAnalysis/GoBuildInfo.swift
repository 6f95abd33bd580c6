/// The build information the Go linker embeds in every module-aware binary (Go 1.13+), as
/// `go version -m` prints it.
///
/// Where it is (Go's `debug/buildinfo`): a 32-byte header starting with the magic `"\xff Go buildinf:"`
/// on a 16-byte boundary, in ELF section `.go.buildinfo` (else the first writable, non-executable
/// `PT_LOAD` segment), Mach-O section `__go_buildinfo` (else the first read-write segment), or PE's first
/// initialized, readable, writable data section. Byte 14 is the pointer size, byte 15 the flags: with bit
/// 2 set (Go 1.18+) the Go version and the module information follow the header as two uvarint-length
/// strings; otherwise the header holds two pointers (byte order from bit 1) to Go string headers
/// (`data pointer, length`) for `runtime.buildVersion` and `runtime.modinfo`.
///
/// The module information (Go's `runtime/debug.ParseBuildInfo`) is framed by 16-byte sentinels and is
/// tab-separated lines: `go` (1.18+; ignored, the version string above is used), `path`, `mod` and `dep`
/// (`path version [sum]`), `=>` (replacement of the line before) and `build` (`key=value`, quoted with Go
/// syntax when it holds spaces, tabs, quotes or, in the key, `=`).
struct GoBuildInfo: Codable, Hashable, Sendable {
    struct Module: Codable, Hashable, Sendable {
        var path: String
        var version: String
        var sum: String
        var replace: Replacement?
    }

    /// A `=>` line: the module actually built in place of the one before.
    struct Replacement: Codable, Hashable, Sendable {
        var path: String
        var version: String
        var sum: String
    }

    struct Setting: Codable, Hashable, Sendable {
        var key: String
        var value: String
    }

    /// `runtime.Version()` of the toolchain, for example `go1.22.0`.
    var goVersion: String
    /// The main package's import path.
    var path: String
    /// The main module; nil for a binary built outside a module.
    var main: Module?
    var deps: [Module]
    var settings: [Setting]

    /// Reads the build info of the executable in `bytes`.
    /// - Returns: nil for an executable that is not a Go binary or carries no build info.
    /// - Throws: `ExecutableImageError` for an executable whose headers or build-info pointers are broken.
    static func read(_ bytes: [UInt8]) throws(ExecutableImageError) -> GoBuildInfo? {
        let image = try ExecutableImage(bytes)
        guard let region = dataRegion(of: image), let header = findHeader(in: region) else { return nil }
        let version: [UInt8]
        let modinfo: [UInt8]
        let pointerSize = Int(header[header.startIndex + 14])
        let flags = header[header.startIndex + 15]
        if flags & 2 != 0 {
            var cursor = header.startIndex + 32
            version = try uvarintString(header, &cursor)
            modinfo = try uvarintString(header, &cursor)
        } else {
            guard pointerSize == 4 || pointerSize == 8, header.count >= 16 + 2 * pointerSize else {
                throw .malformed("Go build info pointer size \(pointerSize)")
            }
            let bigEndian = flags & 1 != 0
            let versionAddress = integer(header.dropFirst(16).prefix(pointerSize), bigEndian: bigEndian)
            let modinfoAddress = integer(header.dropFirst(16 + pointerSize).prefix(pointerSize), bigEndian: bigEndian)
            version = try goString(in: image, at: versionAddress, pointerSize: pointerSize, bigEndian: bigEndian)
            modinfo = try goString(in: image, at: modinfoAddress, pointerSize: pointerSize, bigEndian: bigEndian)
        }
        guard !version.isEmpty else { return nil }
        return parse(goVersion: String(decoding: version, as: UTF8.self), modinfo: unframe(modinfo))
    }

    /// Parses module information text (sentinels already removed).
    static func parse(goVersion: String, modinfo: String) -> GoBuildInfo {
        var info = GoBuildInfo(goVersion: goVersion, path: "", main: nil, deps: [], settings: [])
        var lastWasDep = false
        for line in modinfo.split(separator: "\n", omittingEmptySubsequences: true) {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            switch fields.first {
            case "path" where fields.count >= 2:
                info.path = fields[1]
            case "mod" where fields.count >= 3:
                info.main = Module(path: fields[1], version: fields[2], sum: fields.count > 3 ? fields[3] : "")
                lastWasDep = false
            case "dep" where fields.count >= 3:
                info.deps.append(Module(path: fields[1], version: fields[2], sum: fields.count > 3 ? fields[3] : ""))
                lastWasDep = true
            case "=>" where fields.count >= 3:
                let replacement = Replacement(path: fields[1], version: fields[2], sum: fields.count > 3 ? fields[3] : "")
                if lastWasDep, !info.deps.isEmpty {
                    info.deps[info.deps.count - 1].replace = replacement
                } else {
                    info.main?.replace = replacement
                }
            case "build" where fields.count >= 2:
                let text = fields.dropFirst().joined(separator: "\t")
                let (key, rest) = GoQuoting.unquotePrefix(text, stopAt: "=")
                guard rest.first == "=" else { continue }
                info.settings.append(Setting(key: key, value: GoQuoting.unquotePrefix(String(rest.dropFirst()), stopAt: nil).0))
            default:
                continue
            }
        }
        return info
    }

    /// The module lines as `go version -m` prints them after `FILE: VERSION`, each line prefixed by a tab
    /// (`runtime/debug.BuildInfo.String` without its `go` line).
    var versionMLines: String {
        var lines: [String] = []
        if !path.isEmpty { lines.append("path\t\(path)") }
        func append(_ word: String, _ module: Module) {
            if let replace = module.replace {
                lines.append("\(word)\t\(module.path)\t\(module.version)")
                lines.append("=>\t\(replace.path)\t\(replace.version)\t\(replace.sum)")
            } else {
                lines.append("\(word)\t\(module.path)\t\(module.version)\t\(module.sum)")
            }
        }
        if let main { append("mod", main) }
        for dep in deps { append("dep", dep) }
        for setting in settings {
            lines.append("build\t\(GoQuoting.quoteIfNeeded(setting.key, isKey: true))="
                + GoQuoting.quoteIfNeeded(setting.value, isKey: false))
        }
        return lines.map { "\t" + $0 + "\n" }.joined()
    }

    /// A build setting's value (`GOARCH`, `-ldflags`), nil where absent.
    func setting(_ key: String) -> String? {
        settings.last { $0.key == key }?.value
    }

    // MARK: - Locating the header

    /// The bytes Go searches for the header: at most 64 KiB from the start of the data region.
    private static func dataRegion(of image: ExecutableImage) -> ArraySlice<UInt8>? {
        let limit = 64 * 1024
        switch image.format {
        case .elf:
            if let section = image.section(named: ".go.buildinfo"), let range = section.fileRange {
                return image.bytes[range].prefix(limit)
            }
            // PF_W set, PF_X clear.
            if let segment = image.segments.first(where: { $0.isLoadable && $0.flags & 3 == 2 }) {
                return image.bytes[segment.fileRange].prefix(limit)
            }
        case .machO:
            if let section = image.section(named: "__go_buildinfo"), let range = section.fileRange {
                return image.bytes[range].prefix(limit)
            }
            if let segment = image.segments.first(where: { $0.address != 0 && !$0.fileRange.isEmpty
                && $0.flags == 3 && $0.maxFlags == 3 }) {
                return image.bytes[segment.fileRange].prefix(limit)
            }
        case .pe:
            // IMAGE_SCN_CNT_INITIALIZED_DATA | MEM_READ | MEM_WRITE, alignment bits aside.
            let wanted: UInt64 = 0x40 | 0x4000_0000 | 0x8000_0000
            if let section = image.sections.first(where: { $0.address != 0 && $0.size != 0
                && $0.flags & ~0x60_0000 == wanted }), let range = section.fileRange {
                return image.bytes[range].prefix(limit)
            }
        }
        return nil
    }

    private static let magic: [UInt8] = Array("\u{FF} Go buildinf:".unicodeScalars.map { UInt8($0.value) })

    /// The header and everything after it in `region`, found on a 16-byte boundary of the region.
    private static func findHeader(in region: ArraySlice<UInt8>) -> ArraySlice<UInt8>? {
        var offset = 0
        while offset + 32 <= region.count {
            let start = region.startIndex + offset
            if region[start..<start + magic.count].elementsEqual(magic) { return region[start...] }
            offset += 16
        }
        return nil
    }

    // MARK: - Decoding

    private static func uvarintString(_ bytes: ArraySlice<UInt8>, _ cursor: inout Int) throws(ExecutableImageError) -> [UInt8] {
        var length: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard cursor < bytes.endIndex, shift < 64 else { throw .truncated("Go build info string length") }
            let byte = bytes[cursor]
            cursor += 1
            length |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { break }
            shift += 7
        }
        guard length <= UInt64(bytes.endIndex - cursor) else {
            throw .truncated("Go build info string of \(length) bytes runs past the data")
        }
        defer { cursor += Int(length) }
        return Array(bytes[cursor..<cursor + Int(length)])
    }

    private static func integer(_ bytes: some Collection<UInt8>, bigEndian: Bool) -> UInt64 {
        let ordered = bigEndian ? Array(bytes) : bytes.reversed()
        return ordered.reduce(0) { $0 << 8 | UInt64($1) }
    }

    /// The bytes of the Go string whose header (data pointer, length) is at virtual address `address`.
    private static func goString(in image: ExecutableImage, at address: UInt64, pointerSize: Int,
                                 bigEndian: Bool) throws(ExecutableImageError) -> [UInt8] {
        guard let header = image.read(address: address, count: 2 * pointerSize), header.count == 2 * pointerSize else {
            throw .malformed("Go string header at 0x\(String(address, radix: 16)) is not in the file")
        }
        let data = integer(header.prefix(pointerSize), bigEndian: bigEndian)
        let length = integer(header.suffix(pointerSize), bigEndian: bigEndian)
        // Go refuses anything unreasonably long; the module info of real binaries is a few KiB.
        guard length <= 16 * 1024 * 1024 else { throw .malformed("Go string of \(length) bytes") }
        guard length > 0 else { return [] }
        guard let bytes = image.read(address: data, count: Int(length)), bytes.count == Int(length) else {
            throw .malformed("Go string data at 0x\(String(data, radix: 16)) is not in the file")
        }
        return Array(bytes)
    }

    /// Removes the 16-byte sentinels around module info; "" where they are missing.
    private static func unframe(_ modinfo: [UInt8]) -> String {
        guard modinfo.count >= 33, modinfo[modinfo.count - 17] == UInt8(ascii: "\n") else { return "" }
        return String(decoding: modinfo[16..<modinfo.count - 16], as: UTF8.self)
    }
}

/// Go's `strconv.Quote`/`Unquote` as far as build settings need them (`runtime/debug`, `quoteKey` and
/// `quoteValue`).
enum GoQuoting {
    static func quoteIfNeeded(_ text: String, isKey: Bool) -> String {
        let special: Set<Character> = isKey ? [" ", "\t", "\r", "\n", "\"", "`", "="] : [" ", "\t", "\r", "\n", "\"", "`"]
        guard text.isEmpty ? false : text.contains(where: special.contains) else { return text }
        var quoted = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": quoted += "\\\""
            case "\\": quoted += "\\\\"
            case "\n": quoted += "\\n"
            case "\t": quoted += "\\t"
            case "\r": quoted += "\\r"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    quoted += "\\x" + (scalar.value < 16 ? "0" : "") + String(scalar.value, radix: 16)
                } else {
                    quoted.unicodeScalars.append(scalar)
                }
            }
        }
        return quoted + "\""
    }

    /// Splits `text` into a leading (possibly quoted) token and the rest. An unquoted token ends at
    /// `stopAt` (or runs to the end); a quoted one at its closing quote.
    static func unquotePrefix(_ text: String, stopAt: Character?) -> (String, Substring) {
        guard text.first == "\"" else {
            guard let stopAt, let index = text.firstIndex(of: stopAt) else { return (text, "") }
            return (String(text[..<index]), text[index...])
        }
        var result = ""
        var iterator = text.dropFirst().makeIterator()
        var consumed = 1
        while let character = iterator.next() {
            consumed += 1
            if character == "\"" { return (result, text.dropFirst(consumed)) }
            guard character == "\\", let escaped = iterator.next() else {
                result.append(character)
                continue
            }
            consumed += 1
            switch escaped {
            case "n": result.append("\n")
            case "t": result.append("\t")
            case "r": result.append("\r")
            default: result.append(escaped)
            }
        }
        // No closing quote: keep the text as written.
        guard let stopAt, let index = text.firstIndex(of: stopAt) else { return (text, "") }
        return (String(text[..<index]), text[index...])
    }
}
