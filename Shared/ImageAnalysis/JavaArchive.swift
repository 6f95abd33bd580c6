/// What a Java archive (jar, war, ear, and Jenkins hpi/jpi) says about the Maven artifacts in it, read
/// with libarchive's zip reader from memory, nested archives included.
///
/// Read per archive: `META-INF/maven/<groupId>/<artifactId>/pom.properties` (Java properties written by
/// the Maven archiver) and the main section of `META-INF/MANIFEST.MF` (JAR File Specification,
/// "JAR Manifest": `Name: value` lines, continuation lines starting with one space). Archives inside
/// (`WEB-INF/lib/*.jar`, `BOOT-INF/lib/*.jar`, jars in ears) are read recursively, each with its own
/// record, to at most `maxDepth` levels and `maxTotalBytes` inflated bytes in all; past either bound the
/// result is partial and says so in `notes`.
struct JavaArchiveSummary: Codable, Hashable, Sendable {
    struct PomProperties: Codable, Hashable, Sendable {
        var groupId: String
        var artifactId: String
        var version: String
        /// The entry it was read from.
        var path: String
    }

    struct Archive: Codable, Hashable, Sendable {
        /// Where the archive is inside the outermost one, nested levels joined by `!/`; "" for the outermost.
        var virtualPath: String
        var poms: [PomProperties]
        /// The manifest's main attributes that identify a package (`JavaArchiveReader.manifestKeys`).
        var manifest: [String: String]
    }

    var archives: [Archive]
    var notes: [String]
}

/// Reads a `JavaArchiveSummary` within fixed bounds; never throws, never holds more than `maxTotalBytes`
/// of inflated data besides the outer archive.
struct JavaArchiveReader {
    /// Nesting levels below the outer archive that are read (the outer archive is level 0).
    var maxDepth = 10
    /// Inflated bytes read in all (metadata files and nested archives), across every level.
    var maxTotalBytes = 256 * 1024 * 1024
    /// Zip entries looked at in all, across every level.
    var maxEntries = 1_000_000
    /// The largest manifest or pom.properties read.
    var maxMetadataBytes = 1024 * 1024

    static let nestedSuffixes = [".jar", ".war", ".ear", ".hpi", ".jpi"]
    static let manifestKeys: Set<String> = [
        "Implementation-Title", "Implementation-Version", "Implementation-Vendor", "Implementation-Vendor-Id",
        "Specification-Title", "Specification-Version", "Specification-Vendor", "Bundle-SymbolicName",
        "Bundle-Version", "Bundle-Name", "Automatic-Module-Name",
    ]

    private struct State {
        var remainingBytes: Int
        var remainingEntries: Int
        var summary = JavaArchiveSummary(archives: [], notes: [])
        var exhausted = false
    }

    func read(_ bytes: [UInt8]) -> JavaArchiveSummary {
        var state = State(remainingBytes: maxTotalBytes, remainingEntries: maxEntries)
        visit(bytes, virtualPath: "", depth: 0, state: &state)
        return state.summary
    }

    private func visit(_ bytes: [UInt8], virtualPath: String, depth: Int, state: inout State) {
        let index = state.summary.archives.count
        state.summary.archives.append(.init(virtualPath: virtualPath, poms: [], manifest: [:]))
        let label = virtualPath.isEmpty ? "archive" : virtualPath
        bytes.withUnsafeBytes { buffer in
            let stream: ArchiveStream
            do { stream = try ArchiveStream(buffer, format: .zip) } catch {
                state.summary.notes.append("\(label): not a readable zip archive (\(error))")
                return
            }
            while !state.exhausted {
                let header: ArchiveStream.Header?
                do { header = try stream.next() } catch {
                    state.summary.notes.append("\(label): corrupt zip archive after \(stream.headersRead) entries (\(error)); partial result")
                    return
                }
                guard let header else { return }
                state.remainingEntries -= 1
                guard state.remainingEntries >= 0 else {
                    state.summary.notes.append("more than \(maxEntries) zip entries in all; the rest not read")
                    state.exhausted = true
                    return
                }
                guard let name = header.rawPath, header.fileType == ArchiveStream.regularFile || header.fileType == 0 else {
                    continue
                }
                if name == "META-INF/MANIFEST.MF" {
                    guard let data = readEntry(stream, name: name, header: header, limit: maxMetadataBytes, label: label,
                                               state: &state) else { continue }
                    state.summary.archives[index].manifest = Self.parseManifest(data)
                } else if name.hasPrefix("META-INF/maven/"), name.hasSuffix("/pom.properties") {
                    guard let data = readEntry(stream, name: name, header: header, limit: maxMetadataBytes, label: label,
                                               state: &state) else { continue }
                    let properties = Self.parseProperties(data)
                    state.summary.archives[index].poms.append(.init(
                        groupId: properties["groupId"] ?? "", artifactId: properties["artifactId"] ?? "",
                        version: properties["version"] ?? "", path: name))
                } else if Self.nestedSuffixes.contains(where: { name.lowercased().hasSuffix($0) }) {
                    let nestedPath = virtualPath.isEmpty ? name : virtualPath + "!/" + name
                    guard depth < maxDepth else {
                        state.summary.notes.append("\(nestedPath): nested more than \(maxDepth) archives deep; not read")
                        continue
                    }
                    guard let data = readEntry(stream, name: name, header: header, limit: state.remainingBytes, label: label,
                                               state: &state) else { continue }
                    visit(data, virtualPath: nestedPath, depth: depth + 1, state: &state)
                }
            }
        }
    }

    /// The entry's inflated bytes, counted against the total; nil (with a note) when it is too large or
    /// unreadable. Exhausting the total stops the whole read.
    private func readEntry(_ stream: ArchiveStream, name: String, header: ArchiveStream.Header, limit: Int,
                           label: String, state: inout State) -> [UInt8]? {
        let limit = min(limit, state.remainingBytes)
        if header.size > Int64(limit) {
            note(name, label: label, size: header.size, limit: limit, state: &state)
            return nil
        }
        do {
            let data = try stream.readData(path: name, declaredSize: header.size, limit: limit)
            state.remainingBytes -= data.count
            return data
        } catch {
            if case .fileTooLarge(_, let size, _) = error {
                note(name, label: label, size: size, limit: limit, state: &state)
            } else {
                state.summary.notes.append("\(label): entry \(name) unreadable (\(error))")
            }
            return nil
        }
    }

    private func note(_ name: String, label: String, size: Int64, limit: Int, state: inout State) {
        if limit == state.remainingBytes {
            state.summary.notes.append("\(label): entry \(name) (\(size)+ bytes) exceeds the remaining "
                + "\(ByteCount.describe(Int64(limit))) of the \(ByteCount.describe(Int64(maxTotalBytes))) bound; "
                + "partial result")
            state.exhausted = true
        } else {
            state.summary.notes.append("\(label): entry \(name) (\(size)+ bytes) exceeds \(ByteCount.describe(Int64(limit))); skipped")
        }
    }

    /// The main section of a manifest, only `manifestKeys`.
    static func parseManifest(_ bytes: [UInt8]) -> [String: String] {
        var attributes: [String: String] = [:]
        var lastKey: String?
        let text = String(decoding: bytes, as: UTF8.self)
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }) {
            if rawLine.isEmpty { break } // end of the main section
            if rawLine.hasPrefix(" ") {
                if let lastKey { attributes[lastKey, default: ""] += rawLine.dropFirst() }
                continue
            }
            guard let colon = rawLine.firstIndex(of: ":") else { lastKey = nil; continue }
            let key = String(rawLine[..<colon])
            lastKey = key
            attributes[key] = String(rawLine[rawLine.index(after: colon)...].drop { $0 == " " })
        }
        return attributes.filter { manifestKeys.contains($0.key) }
            .mapValues { $0.trimmingCharacters(in: " \t") }
    }

    /// Java `.properties` as Maven writes them: `key=value` or `key: value`, `#`/`!` comments.
    static func parseProperties(_ bytes: [UInt8]) -> [String: String] {
        var properties: [String: String] = [:]
        for rawLine in String(decoding: bytes, as: UTF8.self).split(whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }) {
            let line = rawLine.drop { $0 == " " || $0 == "\t" }
            guard let first = line.first, first != "#", first != "!" else { continue }
            guard let separator = line.firstIndex(where: { $0 == "=" || $0 == ":" }) else { continue }
            let key = line[..<separator].trimmingCharacters(in: " \t")
            let value = line[line.index(after: separator)...].trimmingCharacters(in: " \t")
            properties[key] = value
        }
        return properties
    }
}

private extension StringProtocol {
    func trimmingCharacters(in set: String) -> String {
        let characters = Set(set)
        return String(self.drop { characters.contains($0) }.reversed().drop { characters.contains($0) }.reversed())
    }
}
