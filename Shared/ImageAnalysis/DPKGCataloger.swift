import GantryModel

/// dpkg packages from `var/lib/dpkg/status` and from distroless images' `var/lib/dpkg/status.d/*`
/// (one or more stanzas per file, no `Status:`; `*.md5sums` companions skipped), parsed by `DPKGStatus`.
///
/// Only installed packages are listed (`DPKGStatus.Record.isInstalled`: status word `installed`, so
/// `install ok installed` and `hold ok installed`; `deinstall ok config-files`, half-installed and
/// not-installed stanzas are left out). Each package: `sourceName` from `Source:` (the binary name
/// when absent) and `sourceVersion` from `Source: name (version)` (nil when absent, that is when the
/// source version is the binary's, per `InstalledPackage.sourceVersion`); `location` is the file read.
/// The purl is `pkg:deb/<os id>/<name>@<version>?arch=<arch>&distro=<os id>-<VERSION_ID>` plus
/// `upstream=<source name>` where the source name differs from the binary's (purl spec, "deb" type).
public struct DPKGCataloger: PackageCataloger {
    public init() {}

    public var ecosystem: String { "dpkg" }

    public static let statusPath = "var/lib/dpkg/status"
    public static let statusDirectory = "var/lib/dpkg/status.d"

    public var interest: FilesOfInterest {
        FilesOfInterest(contentPaths: [Self.statusPath], contentDirectories: [Self.statusDirectory])
    }

    public func packages(in filesystem: MergedFilesystem, operatingSystem: OperatingSystem?,
                         notes: inout [String]) -> CatalogResult {
        var files: [(path: String, contents: [UInt8])] = []
        if let status = filesystem.file(Self.statusPath) {
            files.append((Self.statusPath, status))
        } else if filesystem.fileExists(Self.statusPath) {
            notes.append("dpkg database /\(Self.statusPath) exists but was not read")
        }
        files += filesystem.files(under: Self.statusDirectory).filter { file in
            // Distroless keeps `<package>.md5sums` beside each stanza file; only the stanzas are read.
            let name = file.path.split(separator: "/").last ?? ""
            return !name.hasSuffix(".md5sums") && !name.hasPrefix(".")
        }
        guard !files.isEmpty else { return CatalogResult(packages: [], databases: []) }

        let distro = operatingSystem?.id ?? "debian"
        var packages: [InstalledPackage] = []
        for file in files {
            let (records, parseNotes) = DPKGStatus.parse(file.contents, location: file.path)
            notes += parseNotes
            for record in records where record.isInstalled {
                packages.append(Self.package(record, location: file.path, distro: distro,
                                             versionID: operatingSystem?.versionID))
            }
        }
        let databases = (files.first?.path == Self.statusPath ? [Self.statusPath] : [])
            + (files.contains { $0.path.hasPrefix(Self.statusDirectory + "/") } ? [Self.statusDirectory] : [])
        return CatalogResult(packages: packages, databases: databases)
    }

    static func package(_ record: DPKGStatus.Record, location: String, distro: String, versionID: String?) -> InstalledPackage {
        let sourceName = record.sourceName ?? record.package
        let sourceVersion = record.sourceVersion.flatMap { $0 == record.version ? nil : $0 }
        return InstalledPackage(
            ecosystem: "dpkg", name: record.package, version: record.version, sourceName: sourceName,
            architecture: record.architecture,
            purl: PackageURL.make(
                type: "deb", namespace: distro, name: record.package, version: record.version,
                qualifiers: ["arch": record.architecture ?? "",
                             "distro": versionID.map { "\(distro)-\($0)" } ?? "",
                             "upstream": sourceName == record.package ? "" : sourceName]),
            location: location, sourceVersion: sourceVersion)
    }
}
