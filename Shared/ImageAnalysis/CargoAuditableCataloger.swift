import Foundation
import GantryModel

/// Rust crates in binaries built with `cargo auditable` (see `CargoAuditable`): one `cargo` package per
/// runtime dependency, purl `pkg:cargo/<name>@<version>` (purl spec, "cargo"). Build-time-only crates
/// (`kind: build`) are not in the binary and are left out. Metadata: `source`, and `root` for the
/// binary's own crate.
public struct CargoAuditableCataloger: PackageCataloger {
    /// Extractor name under which summaries are kept.
    public static let extractorName = "cargo-auditable"

    /// The largest executable read, in bytes (default 256 MiB).
    public var maxBinaryBytes: Int

    public init(maxBinaryBytes: Int = 256 * 1024 * 1024) {
        self.maxBinaryBytes = maxBinaryBytes
    }

    public var ecosystem: String { "cargo" }

    public var interest: FilesOfInterest {
        FilesOfInterest(contentPaths: [], extractors: [Self.extractor(maxBytes: maxBinaryBytes)])
    }

    /// The extractor: the inflated, re-encoded dependency list, or nothing for other executables.
    static func extractor(maxBytes: Int) -> FileExtractor {
        FileExtractor(
            name: extractorName,
            selection: .init(executables: true, signatures: ExecutableSignatures.all, maxBytes: maxBytes),
            extract: { _, bytes in
                do {
                    guard let list = try CargoAuditable.read(bytes) else { return .none }
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.sortedKeys]
                    return FileExtractor.Output(summary: Array(try encoder.encode(list)))
                } catch CargoAuditableError.executable {
                    // Every executable is offered; the Go extractor reports broken headers of Go binaries,
                    // and a broken non-Rust executable is no news here.
                    return .none
                } catch {
                    return FileExtractor.Output(summary: nil, notes: ["\(error)"])
                }
            })
    }

    public func packages(in filesystem: MergedFilesystem, operatingSystem: OperatingSystem?,
                         notes: inout [String]) -> CatalogResult {
        var packages: [InstalledPackage] = []
        for (path, summary) in filesystem.extracted(by: Self.extractorName) {
            guard let list = try? JSONDecoder().decode(CargoAuditable.self, from: Data(summary)) else {
                notes.append("\(path): stored cargo-auditable data could not be decoded")
                continue
            }
            packages += Self.packages(from: list, location: path)
        }
        return CatalogResult(packages: packages, databases: [])
    }

    static func packages(from list: CargoAuditable, location: String) -> [InstalledPackage] {
        list.packages.filter { ($0.kind ?? "runtime") == "runtime" }.map { crate in
            var metadata = ["source": crate.source]
            if crate.root == true { metadata["root"] = "true" }
            return InstalledPackage(
                ecosystem: "cargo", name: crate.name, version: crate.version, sourceName: nil, architecture: nil,
                purl: PackageURL.make(type: "cargo", namespace: nil, name: crate.name, version: crate.version,
                                      qualifiers: [:]),
                location: location, metadata: metadata)
        }
    }
}
