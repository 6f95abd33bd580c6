import GantryModel

/// NuGet packages a .NET application was built against, from its `<app>.deps.json` (the dependency
/// manifest the .NET host reads; dotnet/runtime docs, "design-docs/host/dependency-resolution"): the
/// `libraries` object maps `Name/Version` to an entry whose `type` is `package` for NuGet packages,
/// `project` for the application's own projects, `runtimepack` / `referenceassembly` for parts of the
/// runtime. Only `package` entries are reported, as `pkg:nuget/<Name>@<Version>` (purl spec, "nuget"
/// type), with the entry's `path` (`newtonsoft.json/9.0.1`) in `metadata["path"]` and the lowercased
/// name in `metadata["normalizedName"]` (NuGet package IDs are case-insensitive). Each deps.json read is
/// reported as a database, so an application with no NuGet dependencies still counts as catalogued.
public struct DotNetCataloger: PackageCataloger {
    public init() {}

    public var ecosystem: String { "nuget" }

    static let manifestSuffix = ".deps.json"

    public var interest: FilesOfInterest { FilesOfInterest(contentPaths: [], contentSuffixes: [Self.manifestSuffix]) }

    public func packages(in filesystem: MergedFilesystem, operatingSystem: OperatingSystem?,
                         notes: inout [String]) -> CatalogResult {
        var packages: [InstalledPackage] = []
        var databases: [String] = []
        for file in filesystem.files(withSuffix: Self.manifestSuffix) {
            // `.deps.json` alone is a hidden file, not an application's manifest.
            guard file.path.split(separator: "/").last != Substring(Self.manifestSuffix),
                  let found = Self.packages(file.contents, path: file.path, notes: &notes) else { continue }
            packages += found
            databases.append(file.path)
        }
        return CatalogResult(packages: packages, databases: databases)
    }

    /// The NuGet packages one deps.json lists, or nil with a note when it is not a deps.json.
    static func packages(_ bytes: [UInt8], path: String, notes: inout [String]) -> [InstalledPackage]? {
        guard let value = LanguagePackageSupport.jsonValue(bytes, path: path, notes: &notes) else { return nil }
        guard let object = value as? [String: Any], let libraries = object["libraries"] as? [String: Any] else {
            notes.append("/\(path): no `libraries` object; not a .NET deps.json, skipped")
            return nil
        }
        var packages: [InstalledPackage] = []
        for key in libraries.keys.sorted() {
            guard let library = libraries[key] as? [String: Any] else {
                notes.append("/\(path): library \(key.prefix(200)) is not a JSON object; skipped")
                continue
            }
            guard LanguagePackageSupport.string(library["type"]) == "package" else { continue }
            let parts = key.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            let name = parts.count == 2 ? String(parts[0]) : key
            let version = parts.count == 2 ? String(parts[1]) : ""
            if let problem = LanguagePackageSupport.problem(name: name, version: version) {
                notes.append("/\(path): library \(key.prefix(200)) skipped: \(problem)")
                continue
            }
            let libraryPath = LanguagePackageSupport.string(library["path"])
                .flatMap { $0.isEmpty || $0.utf8.count > 1024 ? nil : $0 }
            packages.append(InstalledPackage(
                ecosystem: "nuget", name: name, version: version, sourceName: nil, architecture: nil,
                purl: PackageURL.make(type: "nuget", namespace: nil, name: name, version: version, qualifiers: [:]),
                location: path,
                metadata: ["normalizedName": name.lowercased()].merging(libraryPath.map { ["path": $0] } ?? [:]) { $1 }))
        }
        return packages
    }
}
