/// A parser for apk-tools' installed-package database, `lib/apk/db/installed`.
///
/// Format (apk-tools, "Apk spec" on the Alpine wiki, section "Installed Database"): one stanza per
/// package, stanzas separated by a blank line, each line `K:value` with a single-letter key.
/// Gantry uses `P` (name), `V` (version), `A` (architecture) and `o` (origin, the source package
/// advisories are keyed on); file lists (`F`, `R`, `Z`, `a`, `M`) and the rest are skipped.
enum APKDatabase {
    /// One package stanza.
    struct Record: Equatable {
        var name: String
        var version: String
        var architecture: String?
        var origin: String?
    }

    /// The packages in `bytes`, in file order, and notes on what was skipped: stanzas without `P`
    /// or `V`, and lines that are not `K:value` (counted, not listed one by one).
    static func parse(_ bytes: [UInt8]) -> (records: [Record], notes: [String]) {
        var records: [Record] = []
        var notes: [String] = []
        var fields: [Character: String] = [:]
        var stanzaStart = 1
        var malformedLines = 0

        func finishStanza() {
            defer { fields = [:] }
            guard !fields.isEmpty else { return }
            guard let name = fields["P"], !name.isEmpty, let version = fields["V"], !version.isEmpty else {
                notes.append("apk database entry at line \(stanzaStart) has no \(fields["P"] == nil ? "P: (name)" : "V: (version)"); skipped")
                return
            }
            records.append(Record(name: name, version: version, architecture: fields["A"], origin: fields["o"]))
        }

        let text = String(decoding: bytes, as: UTF8.self)
        var lineNumber = 0
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            let line = line.hasSuffix("\r") ? line.dropLast() : line
            if line.isEmpty {
                finishStanza()
                stanzaStart = lineNumber + 1
                continue
            }
            guard line.count >= 2, let key = line.first, line[line.index(after: line.startIndex)] == ":" else {
                malformedLines += 1
                continue
            }
            // Only the first occurrence of a package-level key counts (file lists repeat others).
            if fields[key] == nil { fields[key] = String(line.dropFirst(2)) }
        }
        finishStanza()
        if malformedLines > 0 {
            notes.append("apk database has \(malformedLines) line(s) that are not K:value; ignored")
        }
        return (records, notes)
    }
}
