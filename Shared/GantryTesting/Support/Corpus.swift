import Foundation

/// Locates the shared test corpus (CORPUS.md): `GANTRY_CORPUS` if set, else `../shared/corpus`
/// relative to the repository root.
///
/// Tests call `Corpus.root()`; where the corpus is absent they skip locally, but under CI
/// (`CI=true`) its absence is a failure.
package enum Corpus {
    /// Errors a test reports when the corpus is missing.
    package struct Missing: Error, CustomStringConvertible {
        package let path: String
        package var description: String {
            "the test corpus is missing at \(path); set GANTRY_CORPUS or place shared/corpus beside the repository"
        }
    }

    /// The repository root, found from this source file's location (Shared/GantryTesting/Support/).
    package static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
    }

    /// The corpus directory, or nil where it does not exist.
    package static var rootIfPresent: URL? {
        let env = ProcessInfo.processInfo.environment
        let url = env["GANTRY_CORPUS"].map { URL(fileURLWithPath: $0) }
            ?? repositoryRoot.deletingLastPathComponent().appendingPathComponent("shared/corpus")
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) && isDirectory.boolValue
            ? url.standardizedFileURL : nil
    }

    /// True when tests that need the corpus should run: it exists, or CI demands it (and then fails loudly).
    package static var isAvailable: Bool {
        rootIfPresent != nil || ProcessInfo.processInfo.environment["CI"] == "true"
    }

    /// The corpus directory.
    /// - Throws: `Missing` when it does not exist.
    package static func root() throws -> URL {
        guard let url = rootIfPresent else {
            let env = ProcessInfo.processInfo.environment
            throw Missing(path: env["GANTRY_CORPUS"] ?? repositoryRoot.deletingLastPathComponent().appendingPathComponent("shared/corpus").path)
        }
        return url
    }

    /// A file inside the corpus, for example `images/alpine-3.7.3.oci.tar`.
    /// - Throws: `Missing` when the corpus or the file does not exist.
    package static func file(_ relativePath: String) throws -> URL {
        let url = try root().appendingPathComponent(relativePath)
        guard FileManager.default.fileExists(atPath: url.path) else { throw Missing(path: url.path) }
        return url
    }
}
