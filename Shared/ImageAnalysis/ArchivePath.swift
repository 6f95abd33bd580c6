/// Normalisation of tar entry names and symlink targets to image-root-relative paths.
///
/// Tar writers differ (`./etc/os-release`, `etc/os-release`, `/etc/os-release`); Gantry keys
/// everything on the form without a leading `./` or `/` and without empty or `.` components.
enum ArchivePath {
    /// The outcome of normalising one entry name.
    enum Normalised: Equatable {
        /// The image root itself (`./`, `/`).
        case root
        /// A normal path such as `etc/os-release`.
        case path(String)
        /// The name has a `..` component; such names are refused rather than resolved, since a
        /// layer never needs them and they are how extraction escapes the root (CVE-2007-4131 class).
        case unsafe
    }

    static func normalise(_ raw: String) -> Normalised {
        var components: [Substring] = []
        for component in raw.split(separator: "/", omittingEmptySubsequences: true) {
            if component == "." { continue }
            if component == ".." { return .unsafe }
            components.append(component)
        }
        return components.isEmpty ? .root : .path(components.joined(separator: "/"))
    }

    /// Splits `a/b/c` into (`a/b`, `c`); the parent of a top-level name is `""` (the root).
    static func split(_ path: String) -> (parent: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return ("", path) }
        return (String(path[..<slash]), String(path[path.index(after: slash)...]))
    }

    /// Joins a parent (possibly the root `""`) and a name.
    static func join(_ parent: String, _ name: String) -> String {
        parent.isEmpty ? name : parent + "/" + name
    }

    /// Resolves a symlink target lexically, as the kernel would inside a chroot at the image root:
    /// an absolute target starts at the root, a relative one at the link's directory, and `..`
    /// stops at the root (it never escapes).
    static func resolveLink(target: String, parentComponents: [String]) -> [String] {
        var components = target.hasPrefix("/") ? [] : parentComponents
        for component in target.split(separator: "/", omittingEmptySubsequences: true) {
            switch component {
            case ".": continue
            case "..": if !components.isEmpty { components.removeLast() }
            default: components.append(String(component))
            }
        }
        return components
    }
}
