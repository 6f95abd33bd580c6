import Foundation
import GantryModel

/// Go modules compiled into executables, from their embedded build info (see `GoBuildInfo`).
///
/// Every executable file (execute bit set, ELF/PE/Mach-O magic, at most `maxBinaryBytes`) is read while
/// the layer streams; only the build info is kept. Packages, ecosystem `golang`:
/// - one per `dep` module, as built: a `=>` replacement's path and version where it has one (metadata
///   `replaces` names the original), purl `pkg:golang/<module path>@<version>` (purl spec, "golang");
/// - the main module, with its version, or `(devel)` unless `-ldflags -X` set `main.version`/`…/version.Version`;
/// - the standard library as `stdlib` at the toolchain version without its `go` prefix (`1.22.0`, as
///   vulnerability databases key it), metadata `goVersion` the exact `runtime.Version()`.
/// Each carries metadata `goVersion`, `h1Digest` where recorded, and the `GOARCH` as its architecture.
public struct GoBinaryCataloger: PackageCataloger {
    /// Extractor name under which summaries are kept.
    public static let extractorName = "go-buildinfo"

    /// The largest executable read, in bytes (default 256 MiB; the build info can be anywhere in it).
    public var maxBinaryBytes: Int

    public init(maxBinaryBytes: Int = 256 * 1024 * 1024) {
        self.maxBinaryBytes = maxBinaryBytes
    }

    public var ecosystem: String { "golang" }

    public var interest: FilesOfInterest {
        FilesOfInterest(contentPaths: [], extractors: [Self.extractor(maxBytes: maxBinaryBytes)])
    }

    /// The extractor: the JSON of `GoBuildInfo`, or nothing for a non-Go executable.
    static func extractor(maxBytes: Int) -> FileExtractor {
        FileExtractor(
            name: extractorName,
            selection: .init(executables: true, signatures: ExecutableSignatures.all, maxBytes: maxBytes),
            extract: { _, bytes in
                do {
                    guard let info = try GoBuildInfo.read(bytes) else { return .none }
                    return FileExtractor.Output(summary: Array(try summaryEncoder.encode(info)))
                } catch let error as ExecutableImageError {
                    // Every executable is offered; an unparseable one is only news if it looks like Go.
                    return containsGoMagic(bytes) ? FileExtractor.Output(summary: nil, notes: ["Go build info unreadable: \(error)"]) : .none
                } catch {
                    return FileExtractor.Output(summary: nil, notes: ["Go build info unreadable: \(error)"])
                }
            })
    }

    public func packages(in filesystem: MergedFilesystem, operatingSystem: OperatingSystem?,
                         notes: inout [String]) -> CatalogResult {
        var packages: [InstalledPackage] = []
        for (path, summary) in filesystem.extracted(by: Self.extractorName) {
            guard let info = try? JSONDecoder().decode(GoBuildInfo.self, from: Data(summary)) else {
                notes.append("\(path): stored Go build info could not be decoded")
                continue
            }
            packages += Self.packages(from: info, location: path)
        }
        return CatalogResult(packages: packages, databases: [])
    }

    /// The packages one binary's build info lists.
    static func packages(from info: GoBuildInfo, location: String) -> [InstalledPackage] {
        let architecture = info.setting("GOARCH")
        func package(path: String, version: String, metadata: [String: String]) -> InstalledPackage {
            var metadata = metadata
            metadata["goVersion"] = info.goVersion
            return InstalledPackage(
                ecosystem: "golang", name: path, version: version, sourceName: nil, architecture: architecture,
                purl: PackageURL.makePath(type: "golang", path: path, version: version), location: location,
                metadata: metadata)
        }
        var packages: [InstalledPackage] = []
        if let main = info.main {
            var version = main.version
            var metadata = ["mainModule": "true"]
            if version == "(devel)" || version.isEmpty, let ldflagsVersion = versionFromLDFlags(info.setting("-ldflags")) {
                version = ldflagsVersion
                metadata["versionSource"] = "ldflags"
            }
            packages.append(package(path: main.path, version: version, metadata: metadata))
        }
        for dep in info.deps {
            var metadata: [String: String] = [:]
            var (path, version, sum) = (dep.path, dep.version, dep.sum)
            if let replace = dep.replace {
                if replace.version.isEmpty {
                    // A local directory replacement (`=> ../fork`): no version to report but the original's.
                    metadata["replacedBy"] = replace.path
                } else {
                    metadata["replaces"] = dep.path + "@" + dep.version
                    (path, version, sum) = (replace.path, replace.version, replace.sum)
                }
            }
            if !sum.isEmpty { metadata["h1Digest"] = sum }
            packages.append(package(path: path, version: version, metadata: metadata))
        }
        if let stdlibVersion = stdlibVersion(info.goVersion) {
            packages.append(package(path: "stdlib", version: stdlibVersion, metadata: [:]))
        }
        return packages
    }

    /// `go1.22.0` → `1.22.0`, `go1.21.3 X:boringcrypto` → `1.21.3`, `go1.20` → `1.20.0`; nil for a
    /// development toolchain (`devel go1.23-abc`), whose standard library has no release version.
    static func stdlibVersion(_ goVersion: String) -> String? {
        guard goVersion.hasPrefix("go") else { return nil }
        let release = goVersion.dropFirst(2).prefix { $0 != " " }
        let parts = release.split(separator: ".")
        guard parts.count >= 2, parts.allSatisfy({ $0.allSatisfy(\.isNumber) }) else {
            // Pre-releases (go1.21rc2) are reported as written.
            return release.isEmpty ? nil : String(release)
        }
        return parts.count == 2 ? release + ".0" : String(release)
    }

    /// The main version set with `-X main.version=…` (or `main.Version`, `…/version.Version`) in
    /// `-ldflags`, as goreleaser and most release builds do; nil where none.
    static func versionFromLDFlags(_ ldflags: String?) -> String? {
        guard let ldflags else { return nil }
        let words = ldflags.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        for (index, word) in words.enumerated() {
            let assignment: String
            if word == "-X", index + 1 < words.count {
                assignment = words[index + 1]
            } else if word.hasPrefix("-X=") {
                assignment = String(word.dropFirst(3))
            } else {
                continue
            }
            guard let equals = assignment.firstIndex(of: "=") else { continue }
            let symbol = assignment[..<equals]
            let value = String(assignment[assignment.index(after: equals)...])
            let lastComponent = symbol.split(separator: "/").last.map(String.init) ?? ""
            if ["main.version", "version.version"].contains(lastComponent.lowercased()), !value.isEmpty {
                return value
            }
        }
        return nil
    }

    /// Sorted keys, so the same binary always gives the same summary bytes (layer results are cached).
    private static var summaryEncoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }

    private static func containsGoMagic(_ bytes: [UInt8]) -> Bool {
        let magic = Array("\u{FF} Go buildinf:".unicodeScalars.map { UInt8($0.value) })
        var index = bytes.startIndex
        while let found = bytes[index...].firstIndex(of: magic[0]) {
            if bytes[found...].starts(with: magic) { return true }
            index = found + 1
        }
        return false
    }
}

/// Leading bytes of the executables Gantry reads: ELF, PE (`MZ`), thin Mach-O 32/64-bit little-endian.
enum ExecutableSignatures {
    static let all: [[UInt8]] = [[0x7F, 0x45, 0x4C, 0x46], [0x4D, 0x5A], [0xCF, 0xFA, 0xED, 0xFE], [0xCE, 0xFA, 0xED, 0xFE]]
}
