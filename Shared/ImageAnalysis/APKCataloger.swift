import GantryModel

/// apk packages from `lib/apk/db/installed` (apk-tools "Installed database" format, see `APKDatabase`),
/// each with the purl `pkg:apk/<os id>/<name>@<version>?arch=<arch>&distro=<os id>-<VERSION_ID>`
/// (purl spec, "apk" type) and its origin as the source package advisories are keyed on.
public struct APKCataloger: PackageCataloger {
    public init() {}

    public var ecosystem: String { "apk" }

    public var interest: FilesOfInterest { FilesOfInterest(contentPaths: [Cataloger.apkDatabasePath]) }

    public func packages(in filesystem: MergedFilesystem, operatingSystem: OperatingSystem?,
                         notes: inout [String]) -> CatalogResult {
        guard let database = filesystem.file(Cataloger.apkDatabasePath) else { return CatalogResult(packages: [], databases: []) }
        let (records, parseNotes) = APKDatabase.parse(database)
        notes += parseNotes
        let distro = operatingSystem?.id ?? "alpine"
        let packages = records.map { record in
            InstalledPackage(
                ecosystem: ecosystem, name: record.name, version: record.version, sourceName: record.origin,
                architecture: record.architecture,
                purl: PackageURL.make(
                    type: "apk", namespace: distro, name: record.name, version: record.version,
                    qualifiers: ["arch": record.architecture ?? "",
                                 "distro": operatingSystem?.versionID.map { "\(distro)-\($0)" } ?? ""]),
                location: Cataloger.apkDatabasePath)
        }
        return CatalogResult(packages: packages, databases: [Cataloger.apkDatabasePath])
    }
}
