import GantryModel

/// Installed Ruby gems from RubyGems' specification files: `<GEM_HOME>/specifications/*.gemspec` and the
/// default gems in `specifications/default/*.gemspec` (read by `GemspecParser`, never evaluated).
/// A `.gemspec` anywhere else (a gem's own source tree, an application checkout) is a build file, not an
/// installed gem, and is ignored. Purls are `pkg:gem/<name>@<version>` (purl spec, "gem" type).
public struct RubyGemCataloger: PackageCataloger {
    public init() {}

    public var ecosystem: String { "gem" }

    static let specificationSuffix = ".gemspec"

    public var interest: FilesOfInterest { FilesOfInterest(contentPaths: [], contentSuffixes: [Self.specificationSuffix]) }

    public func packages(in filesystem: MergedFilesystem, operatingSystem: OperatingSystem?,
                         notes: inout [String]) -> CatalogResult {
        var packages: [InstalledPackage] = []
        for file in filesystem.files(withSuffix: Self.specificationSuffix) where Self.isInstalledSpecification(file.path) {
            if let package = Self.package(file.contents, path: file.path, notes: &notes) { packages.append(package) }
        }
        return CatalogResult(packages: packages, databases: [])
    }

    /// True for `…/specifications/<file>.gemspec` and `…/specifications/default/<file>.gemspec`.
    static func isInstalledSpecification(_ path: String) -> Bool {
        let components = path.split(separator: "/")
        guard components.count >= 2, let file = components.last, file.count > Self.specificationSuffix.count else {
            return false
        }
        let parent = components[components.count - 2]
        return parent == "specifications"
            || (parent == "default" && components.count >= 3 && components[components.count - 3] == "specifications")
    }

    /// The gem one specification describes, or nil with a note.
    static func package(_ bytes: [UInt8], path: String, notes: inout [String]) -> InstalledPackage? {
        let specification = GemspecParser.parse(bytes)
        let name = specification.name ?? ""
        let version = specification.version ?? ""
        if let problem = LanguagePackageSupport.problem(name: name, version: version) {
            notes.append("/\(path): gem specification skipped: \(problem)")
            return nil
        }
        return InstalledPackage(
            ecosystem: "gem", name: name, version: version, sourceName: nil, architecture: nil,
            purl: PackageURL.make(type: "gem", namespace: nil, name: name, version: version, qualifiers: [:]),
            location: path, licenses: specification.licenses.isEmpty ? nil : specification.licenses)
    }
}
