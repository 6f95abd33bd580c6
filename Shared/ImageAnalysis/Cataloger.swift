import GantryModel

/// Turns a merged image filesystem into an `ImageInventory`: the operating system and every
/// installed package that Gantry can catalogue.
///
/// - OS: `etc/os-release`, falling back to `usr/lib/os-release` (os-release(5): "The file
///   /etc/os-release takes precedence over /usr/lib/os-release"), then `etc/alpine-release`
///   (Alpine's one-line release file) when neither exists or `VERSION_ID` is missing.
/// - Packages: apk from `lib/apk/db/installed` (see `APKDatabase`), each with the purl
///   `pkg:apk/<os id>/<name>@<version>?arch=<arch>&distro=<os id>-<VERSION_ID>`.
/// - No package database at all: `notApplicable = .noPackageDatabase`, with a note.
/// - A dpkg or rpm database but no apk one: `notApplicable = .unsupportedOperatingSystem`, with a
///   note (those catalogers are not implemented yet).
public enum Cataloger {
    /// Paths read in full.
    public static let osReleasePath = "etc/os-release"
    public static let osReleaseFallbackPath = "usr/lib/os-release"
    public static let alpineReleasePath = "etc/alpine-release"
    public static let apkDatabasePath = "lib/apk/db/installed"
    /// Package databases whose presence is recorded (never read) to tell "no package database"
    /// from "a package manager Gantry does not catalogue yet".
    public static let otherPackageDatabases = [
        "var/lib/dpkg/status", "var/lib/rpm/Packages", "var/lib/rpm/Packages.db", "var/lib/rpm/rpmdb.sqlite",
        "usr/lib/sysimage/rpm/rpmdb.sqlite", "usr/lib/sysimage/rpm/Packages.db",
    ]
    /// Distroless images keep one dpkg stanza file per package here.
    public static let dpkgStatusDirectory = "var/lib/dpkg/status.d"

    /// What `LayerReader` must keep for `inventory(of:)`.
    public static let filesOfInterest = FilesOfInterest(
        contentPaths: [osReleasePath, osReleaseFallbackPath, alpineReleasePath, apkDatabasePath],
        markerPaths: Set(otherPackageDatabases + [dpkgStatusDirectory]))

    /// The inventory of `filesystem`.
    public static func inventory(of filesystem: MergedFilesystem) -> ImageInventory {
        var notes = filesystem.notes
        let operatingSystem = detectOperatingSystem(filesystem, notes: &notes)
        guard let database = filesystem.file(apkDatabasePath) else {
            let others = otherPackageDatabases.filter(filesystem.fileExists)
            if !others.isEmpty {
                notes.append("package database \(others.joined(separator: ", ")) found, but Gantry catalogues only apk so far")
                return ImageInventory(operatingSystem: operatingSystem, packages: [],
                                      notApplicable: .unsupportedOperatingSystem, notes: notes)
            }
            notes.append("no package database found (looked for /\(apkDatabasePath), /var/lib/dpkg/status and rpm databases)")
            return ImageInventory(operatingSystem: operatingSystem, packages: [], notApplicable: .noPackageDatabase,
                                  notes: notes)
        }
        let (records, parseNotes) = APKDatabase.parse(database)
        notes += parseNotes
        let distro = operatingSystem?.id ?? "alpine"
        let packages = records.map { record in
            InstalledPackage(
                ecosystem: "apk", name: record.name, version: record.version, sourceName: record.origin,
                architecture: record.architecture,
                purl: PackageURL.make(
                    type: "apk", namespace: distro, name: record.name, version: record.version,
                    qualifiers: ["arch": record.architecture ?? "",
                                 "distro": operatingSystem?.versionID.map { "\(distro)-\($0)" } ?? ""]),
                location: apkDatabasePath)
        }
        return ImageInventory(operatingSystem: operatingSystem, packages: packages, notes: notes)
    }

    /// The OS from os-release, or Alpine's release file; nil where neither identifies one.
    static func detectOperatingSystem(_ filesystem: MergedFilesystem, notes: inout [String]) -> OperatingSystem? {
        let alpineRelease = filesystem.file(alpineReleasePath)
            .map { String(decoding: $0, as: UTF8.self).trimmedWhitespace() }
            .flatMap { $0.isEmpty ? nil : $0 }
        guard let bytes = filesystem.file(osReleasePath) ?? filesystem.file(osReleaseFallbackPath) else {
            guard let alpineRelease else { return nil }
            notes.append("no os-release file; operating system taken from /\(alpineReleasePath)")
            return OperatingSystem(id: "alpine", versionID: alpineRelease, prettyName: "Alpine Linux v\(alpineRelease)")
        }
        let fields = OSRelease.parse(bytes)
        // os-release(5): ID defaults to "linux" when absent.
        let id = (fields["ID"].flatMap { $0.isEmpty ? nil : $0 } ?? "linux").lowercased()
        var versionID = fields["VERSION_ID"].flatMap { $0.isEmpty ? nil : $0 }
        if versionID == nil, id == "alpine", let alpineRelease {
            versionID = alpineRelease
            notes.append("os-release has no VERSION_ID; taken from /\(alpineReleasePath)")
        }
        return OperatingSystem(id: id, versionID: versionID, prettyName: fields["PRETTY_NAME"])
    }
}
