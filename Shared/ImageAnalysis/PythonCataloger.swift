import GantryModel

/// Installed Python distributions from their core metadata (see `PythonMetadata`):
/// - `*.dist-info/METADATA`, what pip and other wheel installers write ("Recording installed
///   projects", packaging.python.org);
/// - `*.egg-info/PKG-INFO` and the single-file `*.egg-info` form, what setuptools and distribution
///   packages (Debian's `python3-*` in `dist-packages`) leave;
/// - `*.egg/EGG-INFO/PKG-INFO`, inside an egg installed unzipped by `easy_install`.
///
/// Each package keeps its declared `Name` and `Version`; its purl is `pkg:pypi/<name>@<version>` with
/// the name normalised as PEP 503 requires (purl spec, "pypi" type), and the same normalised name is in
/// `metadata["normalizedName"]` for matching advisories. A file without a usable name and version is
/// skipped with a note.
public struct PythonCataloger: PackageCataloger {
    public init() {}

    public var ecosystem: String { "pypi" }

    static let distInfoSuffix = ".dist-info/METADATA"
    static let eggInfoSuffix = ".egg-info/PKG-INFO"
    static let eggInfoFileSuffix = ".egg-info"
    static let eggDirectorySuffix = "/EGG-INFO/PKG-INFO"

    public var interest: FilesOfInterest {
        FilesOfInterest(contentPaths: [], contentSuffixes: [Self.distInfoSuffix, Self.eggInfoSuffix, Self.eggInfoFileSuffix,
                                                           Self.eggDirectorySuffix])
    }

    public func packages(in filesystem: MergedFilesystem, operatingSystem: OperatingSystem?,
                         notes: inout [String]) -> CatalogResult {
        let files = filesystem.files(withSuffix: Self.distInfoSuffix)
            + filesystem.files(withSuffix: Self.eggInfoSuffix)
            + filesystem.files(withSuffix: Self.eggInfoFileSuffix)
            + filesystem.files(withSuffix: Self.eggDirectorySuffix).filter { file in
                // Only `<name>.egg/EGG-INFO/PKG-INFO`; an `EGG-INFO` elsewhere is a build leftover.
                let components = file.path.split(separator: "/")
                return components.count >= 3 && components[components.count - 3].hasSuffix(".egg")
            }
        var packages: [InstalledPackage] = []
        for file in files.sorted(by: { $0.path < $1.path }) {
            // A bare `.egg-info` name (a hidden file) is not a distribution.
            guard !file.path.split(separator: "/").contains(where: { $0 == ".dist-info" || $0 == ".egg-info" }) else {
                continue
            }
            if let package = Self.package(file.contents, path: file.path, notes: &notes) { packages.append(package) }
        }
        return CatalogResult(packages: packages, databases: [])
    }

    /// The package one metadata file describes, or nil with a note.
    static func package(_ bytes: [UInt8], path: String, notes: inout [String]) -> InstalledPackage? {
        let metadata = PythonMetadata.parse(bytes)
        let name = metadata.first("Name") ?? ""
        let version = metadata.first("Version") ?? ""
        if let problem = LanguagePackageSupport.problem(name: name, version: version) {
            notes.append("/\(path): Python metadata skipped: \(problem)")
            return nil
        }
        let normalized = PythonMetadata.normalize(name)
        return InstalledPackage(
            ecosystem: "pypi", name: name, version: version, sourceName: nil, architecture: nil,
            purl: PackageURL.make(type: "pypi", namespace: nil, name: normalized, version: version, qualifiers: [:]),
            location: path, licenses: metadata.licenses, metadata: ["normalizedName": normalized])
    }
}
