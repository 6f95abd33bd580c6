import GantryModel

/// Turns a merged image filesystem into an `ImageInventory`: the operating system and every
/// installed package that Gantry can catalogue.
///
/// - OS: `etc/os-release`, falling back to `usr/lib/os-release` (os-release(5): "The file
///   /etc/os-release takes precedence over /usr/lib/os-release"), then `etc/alpine-release`,
///   `etc/lsb-release`, `etc/redhat-release` and `etc/debian_version`; distroless; end of life
///   (see `OSIdentification`, `EndOfLife`).
/// - Packages: apk from `lib/apk/db/installed` (see `APKDatabase`), each with the purl
///   `pkg:apk/<os id>/<name>@<version>?arch=<arch>&distro=<os id>-<VERSION_ID>`.
/// - No package database at all: `notApplicable = .noPackageDatabase`, with a note.
/// - dpkg (`DPKGCataloger`) and rpm (`RPMCataloger`) databases likewise.
/// - A package database no cataloger reads: `notApplicable = .unsupportedOperatingSystem`, with a note.
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

    /// The package catalogers, each a `PackageCataloger`; a new ecosystem is one more entry here.
    public static let catalogers: [any PackageCataloger] = [
        APKCataloger(),
        PythonCataloger(),
        NPMCataloger(),
        RubyGemCataloger(),
        ComposerCataloger(),
        DotNetCataloger(),
        DPKGCataloger(),
        RPMCataloger(),
        GoBinaryCataloger(),
        CargoAuditableCataloger(),
        JavaCataloger(),
    ]

    /// What `LayerReader` must keep for `inventory(of:)`: the OS files and every cataloger's interest.
    public static let filesOfInterest: FilesOfInterest = catalogers.reduce(
        FilesOfInterest(contentPaths: OSIdentification.paths,
                        markerPaths: Set(otherPackageDatabases + [dpkgStatusDirectory]))
    ) { $0.union($1.interest) }

    /// The inventory of `filesystem`: its OS and the packages every cataloger finds.
    public static func inventory(of filesystem: MergedFilesystem) -> ImageInventory {
        var notes = filesystem.notes
        let operatingSystem = detectOperatingSystem(filesystem, notes: &notes)
        var packages: [InstalledPackage] = []
        var databases: [String] = []
        for cataloger in catalogers {
            let found = cataloger.packages(in: filesystem, operatingSystem: operatingSystem, notes: &notes)
            packages += found.packages
            databases += found.databases
        }
        if databases.isEmpty {
            let others = otherPackageDatabases.filter(filesystem.fileExists)
                + (filesystem.fileExists(dpkgStatusDirectory) || !filesystem.files(under: dpkgStatusDirectory).isEmpty
                    ? [dpkgStatusDirectory] : [])
            if !others.isEmpty {
                notes.append("package database \(others.joined(separator: ", ")) found, but Gantry does not catalogue it yet")
                return ImageInventory(operatingSystem: operatingSystem, packages: packages,
                                      notApplicable: .unsupportedOperatingSystem, notes: notes)
            }
            if packages.isEmpty {
                notes.append("no package database found (looked for /\(apkDatabasePath), /var/lib/dpkg/status and rpm databases)")
                return ImageInventory(operatingSystem: operatingSystem, packages: [], notApplicable: .noPackageDatabase,
                                      notes: notes)
            }
        }
        return ImageInventory(operatingSystem: operatingSystem, packages: packages, notes: notes)
    }

    /// The OS from its release files, with its end-of-life flag (`OSIdentification`); nil where none identifies one.
    static func detectOperatingSystem(_ filesystem: MergedFilesystem, notes: inout [String]) -> OperatingSystem? {
        OSIdentification.identify(filesystem, notes: &notes)
    }
}
