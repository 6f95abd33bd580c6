import GantryModel

/// Installed npm packages from `node_modules/**/package.json` (npm docs, "package.json" and
/// "Folders": an installed package is the directory `node_modules/<name>` or
/// `node_modules/@scope/<name>`, with its manifest at the top).
///
/// Only a manifest directly inside such a package directory counts: the project's own `package.json`
/// outside `node_modules`, and manifests nested deeper in a package (test fixtures, `lib/package.json`
/// module markers), are not installed packages. A manifest without a version is skipped (silently when
/// `private`, as workspace packages are); one without a usable name or that is not valid JSON is
/// skipped with a note. Licenses come from `license` (an SPDX string, or the deprecated `{type, url}`
/// object) or the deprecated `licenses` array. Purls are `pkg:npm/<name>@<version>` with a scope as
/// the namespace, percent-encoded (`pkg:npm/%40babel/core@7.0.0`, purl spec "npm" type).
public struct NPMCataloger: PackageCataloger {
    public init() {}

    public var ecosystem: String { "npm" }

    static let manifestSuffix = "/package.json"

    public var interest: FilesOfInterest { FilesOfInterest(contentPaths: [], contentSuffixes: [Self.manifestSuffix]) }

    public func packages(in filesystem: MergedFilesystem, operatingSystem: OperatingSystem?,
                         notes: inout [String]) -> CatalogResult {
        var packages: [InstalledPackage] = []
        for file in filesystem.files(withSuffix: Self.manifestSuffix) where Self.isInstalledManifest(file.path) {
            if let package = Self.package(file.contents, path: file.path, notes: &notes) { packages.append(package) }
        }
        return CatalogResult(packages: packages, databases: [])
    }

    /// True when `path` is `…node_modules/<name>/package.json` or `…node_modules/@scope/<name>/package.json`.
    static func isInstalledManifest(_ path: String) -> Bool {
        let components = path.split(separator: "/")
        guard components.count >= 3, components[components.count - 1] == "package.json" else { return false }
        if components[components.count - 3] == "node_modules" {
            return !components[components.count - 2].hasPrefix("@")
        }
        return components.count >= 4 && components[components.count - 4] == "node_modules"
            && components[components.count - 3].hasPrefix("@")
    }

    /// The package one installed manifest describes, or nil (with a note unless it is a private package).
    static func package(_ bytes: [UInt8], path: String, notes: inout [String]) -> InstalledPackage? {
        guard let value = LanguagePackageSupport.jsonValue(bytes, path: path, notes: &notes) else { return nil }
        guard let manifest = value as? [String: Any] else {
            notes.append("/\(path): package.json is not a JSON object; skipped")
            return nil
        }
        let name = LanguagePackageSupport.string(manifest["name"]) ?? ""
        let version = LanguagePackageSupport.string(manifest["version"]) ?? ""
        if version.isEmpty, manifest["private"] as? Bool == true { return nil }
        if let problem = LanguagePackageSupport.problem(name: name, version: version) {
            notes.append("/\(path): npm package skipped: \(problem)")
            return nil
        }
        var namespace: String?
        var shortName = name
        if name.hasPrefix("@"), let slash = name.firstIndex(of: "/") {
            namespace = String(name[..<slash])
            shortName = String(name[name.index(after: slash)...])
        }
        guard !shortName.isEmpty else {
            notes.append("/\(path): npm package skipped: malformed scoped name \(name)")
            return nil
        }
        return InstalledPackage(
            ecosystem: "npm", name: name, version: version, sourceName: nil, architecture: nil,
            purl: PackageURL.make(type: "npm", namespace: namespace, name: shortName, version: version, qualifiers: [:]),
            location: path,
            licenses: LanguagePackageSupport.licenses(manifest["license"])
                ?? LanguagePackageSupport.licenses(manifest["licenses"]))
    }
}
