/// The header fields of a Python core-metadata file (`*.dist-info/METADATA`, `*.egg-info/PKG-INFO` or a
/// single-file `*.egg-info`).
///
/// Core metadata ("Core metadata specifications", packaging.python.org) is an RFC 822 style header
/// block read with Python's `email.parser`: `Name: value` lines, continuation lines starting with a
/// space or tab, repeated fields (`Classifier`) allowed, and a blank line before an optional body
/// (the description since Metadata-Version 2.1). As `email.feedparser` does, a line that is neither a
/// header (`[!-9;-~]*:` at its start) nor a continuation ends the headers: everything from there on
/// is body, so a multi-line `Summary` that breaks the format (a real mxnet PKG-INFO does) keeps the
/// fields before it.
struct PythonMetadata: Sendable {
    /// Every header in file order; names as written, values with continuation lines joined by `\n`.
    var fields: [(name: String, value: String)]

    /// The first value of header `name` (case-insensitive, as `email.message.Message.__getitem__`),
    /// trimmed; nil when absent.
    func first(_ name: String) -> String? {
        let wanted = name.lowercased()
        return fields.first { $0.name.lowercased() == wanted }.map { $0.value.trimmedWhitespace() }
    }

    /// Every value of header `name` (case-insensitive), trimmed.
    func all(_ name: String) -> [String] {
        let wanted = name.lowercased()
        return fields.filter { $0.name.lowercased() == wanted }.map { $0.value.trimmedWhitespace() }
    }

    /// Parses the header block of `bytes` (UTF-8; invalid bytes become U+FFFD).
    static func parse(_ bytes: [UInt8]) -> PythonMetadata {
        var fields: [(name: String, value: String)] = []
        let text = String(decoding: bytes, as: UTF8.self)
        // Lines end in \r\n, \r or \n, as for the email parser (`email.feedparser.NLCRE`); Swift
        // treats \r\n as one Character.
        for line in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }) {
            if line.isEmpty { break }
            if let first = line.first, first == " " || first == "\t" {
                // A continuation; one before any header is a defect the email parser drops.
                guard !fields.isEmpty else { continue }
                fields[fields.count - 1].value += "\n" + line
                continue
            }
            guard let colon = line.firstIndex(of: ":"),
                  line[..<colon].unicodeScalars.allSatisfy({ (0x21...0x7E).contains($0.value) })
            else { break }
            fields.append((String(line[..<colon]), String(line[line.index(after: colon)...])))
        }
        return PythonMetadata(fields: fields)
    }

    /// The name normalised as PEP 503 ("Normalized Names") defines it: runs of `-`, `_` and `.`
    /// become one `-`, and the result is lowercased.
    static func normalize(_ name: String) -> String {
        var result = ""
        var inSeparatorRun = false
        for character in name.lowercased() {
            if character == "-" || character == "_" || character == "." {
                if !inSeparatorRun { result.append("-") }
                inSeparatorRun = true
            } else {
                result.append(character)
                inSeparatorRun = false
            }
        }
        return result
    }

    /// The declared licenses: `License-Expression` (PEP 639) when present; else `License` when it is a
    /// short one-line value other than `UNKNOWN` (some packages paste a whole license text there);
    /// else the last segment of each `License ::` trove classifier other than `OSI Approved`.
    var licenses: [String]? {
        if let expression = first("License-Expression"), !expression.isEmpty { return [expression] }
        if let license = first("License"), !license.isEmpty, license.uppercased() != "UNKNOWN",
           !license.contains("\n"), license.utf8.count <= 200 {
            return [license]
        }
        let fromClassifiers = all("Classifier").compactMap { classifier -> String? in
            let parts = classifier.split(separator: "::").map { $0.trimmedWhitespace() }
            guard parts.count >= 2, parts[0] == "License", let last = parts.last, last != "OSI Approved" else {
                return nil
            }
            return last
        }
        return fromClassifiers.isEmpty ? nil : fromClassifiers
    }
}
