/// A parser for dpkg's status database (`var/lib/dpkg/status`) and distroless `status.d/` files:
/// Debian control-file syntax (Debian Policy 5.1, "Syntax of control files").
///
/// - Stanzas are separated by one or more blank lines (lines empty or only whitespace).
/// - A field is `Name: value`; names are case-insensitive. A line starting with a space or tab
///   continues the previous field (multiline fields such as `Description:` and `Conffiles:`).
/// - A line that is neither is reported in the notes and ignored.
enum DPKGStatus {
    /// One package stanza, reduced to the fields Gantry uses.
    struct Record: Sendable, Hashable {
        var package: String
        var version: String
        var architecture: String?
        /// `Status:`, three words: want, error flag, status (dpkg(1), "Package states"); nil in distroless files.
        var status: String?
        /// The source package name (`Source:` without its parenthesised version), nil when absent.
        var sourceName: String?
        /// The version in `Source: name (version)`, nil when absent.
        var sourceVersion: String?

        /// True when dpkg considers the package installed: its `Status:` status word is `installed`
        /// (want `install` or `hold`, dpkg(1) "Package states"), or the stanza has no `Status:` (distroless
        /// `status.d` files record only installed packages).
        var isInstalled: Bool {
            guard let status else { return true }
            let words = status.split(whereSeparator: { $0 == " " || $0 == "\t" })
            return words.count == 3 && words[2] == "installed"
        }
    }

    /// The stanzas of `bytes` that name a package and a version; others are reported in the notes.
    /// - Parameter location: the file's path, for the notes.
    static func parse(_ bytes: [UInt8], location: String) -> (records: [Record], notes: [String]) {
        var records: [Record] = []
        var notes: [String] = []
        for (stanzaNumber, stanza) in stanzas(String(decoding: bytes, as: UTF8.self), location: location, notes: &notes)
            .enumerated() {
            guard let package = stanza["package"], !package.isEmpty else {
                notes.append("/\(location): stanza \(stanzaNumber + 1) has no Package: name; skipped")
                continue
            }
            guard let version = stanza["version"], !version.isEmpty else {
                notes.append("/\(location): package \(package) has no Version:; skipped")
                continue
            }
            var record = Record(package: package, version: version, architecture: stanza["architecture"],
                                status: stanza["status"])
            if let source = stanza["source"], !source.isEmpty {
                // "Source: name" or "Source: name (version)" (deb-control(5), "Source:").
                if let open = source.firstIndex(of: "("), let close = source.lastIndex(of: ")"), open < close {
                    record.sourceName = source[..<open].trimmedWhitespace()
                    record.sourceVersion = source[source.index(after: open)..<close].trimmedWhitespace()
                } else {
                    record.sourceName = source
                }
            }
            records.append(record)
        }
        return (records, notes)
    }

    /// Each stanza as lowercased field name → value (first line of the value, trimmed; continuation
    /// lines are parsed but not kept since no field Gantry uses spans lines).
    static func stanzas(_ text: String, location: String, notes: inout [String]) -> [[String: String]] {
        var result: [[String: String]] = []
        var current: [String: String] = [:]
        var lastField: String?
        var strayLines = 0
        for line in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            if line.allSatisfy({ $0 == " " || $0 == "\t" || $0 == "\r" }) {
                if !current.isEmpty { result.append(current) }
                current = [:]
                lastField = nil
                continue
            }
            if line.first == " " || line.first == "\t" {
                if lastField == nil { strayLines += 1 }
                continue
            }
            guard let colon = line.firstIndex(of: ":") else {
                strayLines += 1
                lastField = nil
                continue
            }
            let name = line[..<colon].lowercased()
            // Later duplicates do not override the first occurrence (dpkg reports them as errors).
            if current[name] == nil {
                current[name] = line[line.index(after: colon)...].trimmedWhitespace()
            }
            lastField = name
        }
        if !current.isEmpty { result.append(current) }
        if strayLines > 0 {
            notes.append("/\(location): \(strayLines) line(s) that are neither a field nor a continuation; ignored")
        }
        return result
    }
}
