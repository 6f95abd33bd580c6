import GantryModel

/// The distribution spec's grammars for repository names and references ("Pulling manifests"):
/// checked before a name or reference is put into a URL path.
enum ReferenceGrammar {
    /// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`, at most 255 characters.
    static func validateRepository(_ name: String) throws {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.count <= 255 else {
            throw RegistryError.invalidReference("repository name must be 1 to 255 characters, got \(bytes.count)")
        }
        for component in bytes.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
            guard let first = component.first, let last = component.last, isLowerAlnum(first), isLowerAlnum(last),
                  component.allSatisfy({ isLowerAlnum($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }),
                  !containsBadSeparator(component)
            else {
                throw RegistryError.invalidReference(
                    "'\(name.prefix(100))' is not a repository name: components are lowercase letters and digits separated by '.', '_', '__' or '-'")
            }
        }
    }

    /// A tag (`[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`) or a digest; returns the digest when it is one.
    static func parseReference(_ reference: String) throws -> Digest? {
        if reference.contains(":") {
            do {
                return try Digest(parsing: reference)
            } catch {
                throw RegistryError.invalidReference("'\(reference.prefix(200))' is neither a tag nor a sha256/sha512 digest")
            }
        }
        let bytes = Array(reference.utf8)
        guard let first = bytes.first, bytes.count <= 128,
              isAlnum(first) || first == UInt8(ascii: "_"),
              bytes.allSatisfy({ isAlnum($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") })
        else {
            throw RegistryError.invalidReference("'\(reference.prefix(200))' is not a tag ([A-Za-z0-9_][A-Za-z0-9._-]{0,127}) or a digest")
        }
        return nil
    }

    private static func isLowerAlnum(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
    }

    private static func isAlnum(_ byte: UInt8) -> Bool {
        isLowerAlnum(byte) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
    }

    /// Separators may be one '.', one or two '_', or any number of '-', never mixed.
    private static func containsBadSeparator(_ component: ArraySlice<UInt8>) -> Bool {
        var run: [UInt8] = []
        for byte in component {
            if isLowerAlnum(byte) {
                if !run.isEmpty && !isAllowedSeparator(run) { return true }
                run.removeAll()
            } else {
                run.append(byte)
            }
        }
        return false
    }

    private static func isAllowedSeparator(_ run: [UInt8]) -> Bool {
        run == [UInt8(ascii: ".")] || run == [UInt8(ascii: "_")] || run == [UInt8(ascii: "_"), UInt8(ascii: "_")]
            || run.allSatisfy { $0 == UInt8(ascii: "-") }
    }
}
