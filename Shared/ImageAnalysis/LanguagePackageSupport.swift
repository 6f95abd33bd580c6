import Foundation

/// Helpers the language-package catalogers (Python, npm, RubyGems, Composer, .NET) share: path
/// matching on whole components, JSON decoding that turns hostile input into notes, and sanity
/// bounds on the names and versions taken from untrusted metadata.
enum LanguagePackageSupport {
    /// Longest name accepted from metadata, in UTF-8 bytes. npm caps names at 214 characters, PyPI
    /// and RubyGems have no formal cap but no real package comes near this.
    static let maxNameBytes = 512
    /// Longest version accepted from metadata, in UTF-8 bytes.
    static let maxVersionBytes = 256

    /// Every kept file whose path is `suffix` itself or ends with `/` + `suffix` (so that
    /// `vendor/composer/installed.json` does not match `xvendor/composer/installed.json`), sorted by path.
    static func files(in filesystem: MergedFilesystem, endingWithComponents suffix: String)
        -> [(path: String, contents: [UInt8])]
    {
        filesystem.files(withSuffix: suffix).filter { $0.path == suffix || $0.path.hasSuffix("/" + suffix) }
    }

    /// Why `name` and `version` cannot identify a package (empty, too long, control characters), or nil
    /// when they can.
    static func problem(name: String, version: String) -> String? {
        if name.isEmpty { return "no package name" }
        if version.isEmpty { return "no version for \(name)" }
        if name.utf8.count > maxNameBytes { return "package name longer than \(maxNameBytes) bytes" }
        if version.utf8.count > maxVersionBytes { return "version of \(name) longer than \(maxVersionBytes) bytes" }
        let hasControl = { (text: String) in text.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F } }
        if hasControl(name) || hasControl(version) { return "control characters in the name or version" }
        return nil
    }

    /// The top-level JSON value of `bytes`, or nil with a note naming `path` when it is not valid JSON.
    static func jsonValue(_ bytes: [UInt8], path: String, notes: inout [String]) -> Any? {
        do {
            return try JSONSerialization.jsonObject(with: Data(bytes), options: [])
        } catch {
            notes.append("/\(path): not valid JSON (\(bytes.count) bytes); skipped")
            return nil
        }
    }

    /// A JSON string value trimmed of surrounding whitespace, or nil when `value` is not a string.
    static func string(_ value: Any?) -> String? {
        (value as? String)?.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Licenses in the shapes package manifests use: a string, an object with `type` (or `name`), or an
    /// array of either. Empty values are dropped; nil when nothing remains.
    static func licenses(_ value: Any?) -> [String]? {
        var found: [String] = []
        func add(_ item: Any?) {
            if let text = string(item), !text.isEmpty {
                found.append(text)
            } else if let object = item as? [String: Any] {
                if let text = string(object["type"]) ?? string(object["name"]), !text.isEmpty { found.append(text) }
            }
        }
        if let array = value as? [Any] {
            for item in array { add(item) }
        } else {
            add(value)
        }
        return found.isEmpty ? nil : found
    }
}
