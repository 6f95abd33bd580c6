import GantryModel

/// Installed PHP packages from Composer's record of what it installed, `vendor/composer/installed.json`:
/// a JSON array of package objects (Composer 1) or an object whose `packages` holds that array
/// (Composer 2, which adds `dev` and `dev-package-names`). Each package has `name` (`vendor/project`)
/// and `version` as installed (`v1.8.1`, kept as written; `version_normalized` goes to
/// `metadata["versionNormalized"]`), and `license` as an array of SPDX identifiers. Purls are
/// `pkg:composer/<vendor>/<project>@<version>` (purl spec, "composer" type). Packages Composer 2
/// lists under `dev-package-names` get `metadata["dev"] = "true"`; they are still installed. Each
/// installed.json read is reported as a database, so a project with no dependencies counts as catalogued.
public struct ComposerCataloger: PackageCataloger {
    public init() {}

    public var ecosystem: String { "composer" }

    static let installedSuffix = "vendor/composer/installed.json"

    public var interest: FilesOfInterest { FilesOfInterest(contentPaths: [], contentSuffixes: [Self.installedSuffix]) }

    public func packages(in filesystem: MergedFilesystem, operatingSystem: OperatingSystem?,
                         notes: inout [String]) -> CatalogResult {
        var packages: [InstalledPackage] = []
        var databases: [String] = []
        for file in LanguagePackageSupport.files(in: filesystem, endingWithComponents: Self.installedSuffix) {
            guard let found = Self.packages(file.contents, path: file.path, notes: &notes) else { continue }
            packages += found
            databases.append(file.path)
        }
        return CatalogResult(packages: packages, databases: databases)
    }

    /// The packages one `installed.json` lists, or nil with a note when it is not in either format.
    static func packages(_ bytes: [UInt8], path: String, notes: inout [String]) -> [InstalledPackage]? {
        guard let value = LanguagePackageSupport.jsonValue(bytes, path: path, notes: &notes) else { return nil }
        let entries: [Any]
        var devNames: Set<String> = []
        if let array = value as? [Any] {
            entries = array
        } else if let object = value as? [String: Any], let array = object["packages"] as? [Any] {
            entries = array
            devNames = Set((object["dev-package-names"] as? [Any] ?? []).compactMap { $0 as? String })
        } else {
            notes.append("/\(path): neither a Composer 1 package array nor a Composer 2 object with `packages`; skipped")
            return nil
        }
        var packages: [InstalledPackage] = []
        for (index, entry) in entries.enumerated() {
            guard let object = entry as? [String: Any] else {
                notes.append("/\(path): package entry \(index) is not a JSON object; skipped")
                continue
            }
            let name = LanguagePackageSupport.string(object["name"]) ?? ""
            let version = LanguagePackageSupport.string(object["version"]) ?? ""
            if let problem = LanguagePackageSupport.problem(name: name, version: version) {
                notes.append("/\(path): Composer package entry \(index) skipped: \(problem)")
                continue
            }
            let parts = name.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            let (vendor, project) = parts.count == 2 ? (String(parts[0]), String(parts[1])) : (nil, name)
            var metadata: [String: String] = [:]
            if let normalized = LanguagePackageSupport.string(object["version_normalized"]), !normalized.isEmpty,
               normalized.utf8.count <= LanguagePackageSupport.maxVersionBytes {
                metadata["versionNormalized"] = normalized
            }
            if devNames.contains(name) { metadata["dev"] = "true" }
            packages.append(InstalledPackage(
                ecosystem: "composer", name: name, version: version, sourceName: nil, architecture: nil,
                purl: PackageURL.make(type: "composer", namespace: vendor, name: project, version: version, qualifiers: [:]),
                location: path, licenses: LanguagePackageSupport.licenses(object["license"]),
                metadata: metadata.isEmpty ? nil : metadata))
        }
        return packages
    }
}
