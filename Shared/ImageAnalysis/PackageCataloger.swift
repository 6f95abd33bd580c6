import GantryModel

/// What one cataloger found: its packages and the package databases it read (paths in the image).
/// An OS package manager reports its database even when it lists no package, so that an image with an
/// empty database is told apart from one with none.
public struct CatalogResult: Sendable {
    public var packages: [InstalledPackage]
    public var databases: [String]

    public init(packages: [InstalledPackage], databases: [String]) {
        self.packages = packages
        self.databases = databases
    }
}

/// One ecosystem's cataloger (apk, dpkg, rpm, Python, npm, …). `Cataloger` runs every registered one over
/// the merged filesystem; `interest` tells `LayerReader` which files to keep while streaming layers.
public protocol PackageCataloger: Sendable {
    /// The ecosystem's name, as in `InstalledPackage.ecosystem` (`apk`, `dpkg`, `pypi`, …).
    var ecosystem: String { get }
    /// The files this cataloger reads.
    var interest: FilesOfInterest { get }
    /// The packages installed in `filesystem`. Parse problems go to `notes`, never crash.
    /// - Parameter operatingSystem: the image's OS, for purl qualifiers; nil when unidentified.
    func packages(in filesystem: MergedFilesystem, operatingSystem: OperatingSystem?, notes: inout [String]) -> CatalogResult
}
