import Foundation
import GantryModel

/// Input checks shared by the services' handlers; each failure is a 400 problem naming the field.
public enum Validate {
    /// Parses a UUID path or body field.
    /// - Throws: `ProblemError` 400 naming `field`.
    public static func uuid(_ value: String, field: String) throws -> UUID {
        guard let uuid = UUID(uuidString: value) else {
            throw ProblemError.badRequest("\(field) '\(value.prefix(100))' is not a UUID")
        }
        return uuid
    }

    /// Parses a digest field (OCI image spec, "Digests").
    /// - Throws: `ProblemError` 400 naming `field`.
    public static func digest(_ value: String, field: String) throws -> Digest {
        do { return try Digest(parsing: value) } catch {
            throw ProblemError.badRequest("\(field): \(error)")
        }
    }

    /// A non-empty string of at most `maxLength` characters, trimmed.
    /// - Throws: `ProblemError` 400 naming `field`.
    public static func text(_ value: String, field: String, maxLength: Int = 200) throws -> String {
        let trimmed = value.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { throw ProblemError.badRequest("\(field) must not be empty") }
        guard trimmed.count <= maxLength else {
            throw ProblemError.badRequest("\(field) is longer than \(maxLength) characters")
        }
        return trimmed
    }

    /// A repository name per the OCI distribution spec ("Pulling manifests": path components
    /// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` joined by `/`), at most 255 characters.
    /// - Throws: `ProblemError` 400 naming `field`.
    public static func repository(_ value: String, field: String) throws -> String {
        guard isRepositoryName(value) else {
            throw ProblemError.badRequest("\(field) '\(value.prefix(100))' is not a valid repository name")
        }
        return value
    }

    /// Whether `value` is a repository name (see `repository(_:field:)`). Matched byte by byte: this runs for
    /// every webhook event, and a regular expression (ICU, through NSRegularExpression) cost several times more.
    public static func isRepositoryName(_ value: String) -> Bool {
        guard value.utf8.count <= 255 else { return false }
        return value.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).allSatisfy(isPathComponent)
    }

    /// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`: runs of lowercase letters and digits, separated by one `.`, one or
    /// two `_`, or any number of `-`.
    private static func isPathComponent(_ bytes: Substring.UTF8View.SubSequence) -> Bool {
        enum Previous { case start, alphanumeric, dot, underscore, doubleUnderscore, dash }
        var previous = Previous.start
        for byte in bytes {
            switch (byte, previous) {
            case (UInt8(ascii: "a")...UInt8(ascii: "z"), _), (UInt8(ascii: "0")...UInt8(ascii: "9"), _): previous = .alphanumeric
            case (UInt8(ascii: "."), .alphanumeric): previous = .dot
            case (UInt8(ascii: "_"), .alphanumeric): previous = .underscore
            case (UInt8(ascii: "_"), .underscore): previous = .doubleUnderscore
            case (UInt8(ascii: "-"), .alphanumeric), (UInt8(ascii: "-"), .dash): previous = .dash
            default: return false
            }
        }
        return previous == .alphanumeric
    }

    /// A tag per the OCI distribution spec (see `isTag`).
    /// - Throws: `ProblemError` 400 naming `field`.
    public static func tag(_ value: String, field: String) throws -> String {
        guard isTag(value) else { throw ProblemError.badRequest("\(field) '\(value.prefix(130))' is not a valid tag") }
        return value
    }

    /// Whether `value` is a tag per the OCI distribution spec ("Pulling manifests": `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`).
    public static func isTag(_ value: String) -> Bool {
        let bytes = value.utf8
        guard let first = bytes.first, bytes.count <= 128 else { return false }
        func isWord(_ byte: UInt8) -> Bool {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "_"): true
            default: false
            }
        }
        return isWord(first) && bytes.dropFirst().allSatisfy { isWord($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
    }
}

extension ServiceRuntime {
    /// Loads a service's migrations from its `Migrations` resource folder.
    /// - Throws: `ConfigurationError` when the folder is missing from the bundle.
    public static func migrations(in bundle: Bundle) throws -> [Migration] {
        guard let url = bundle.url(forResource: "Migrations", withExtension: nil) else {
            throw ConfigurationError(variable: "bundle", message: "the Migrations resource folder is missing from \(bundle.bundlePath)")
        }
        return try Migration.load(from: url)
    }
}
