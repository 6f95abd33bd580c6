import GantryModel

/// rpm packages from the image's rpm database, read with librpm (`RPMDatabase`) or, for NDB, with
/// `NDBReader` plus librpm's header parser.
///
/// Databases, by directory (`usr/lib/sysimage/rpm` first: Fedora ≥ 36 and SUSE keep the database
/// there with `var/lib/rpm` a symlink to it; RHEL and Amazon Linux use `var/lib/rpm`), and within a
/// directory the newest format first: `rpmdb.sqlite` (with its `-wal` journal when present),
/// `Packages.db` (NDB), `Packages` (Berkeley DB). Only one database per image is catalogued; another,
/// different one is reported in the notes.
///
/// Each package: `version` is `version-release`, prefixed `epoch:` when the epoch is non-zero (rpm's
/// EVR); `sourceName` is the source RPM's name (`util-linux` from
/// `util-linux-2.32.1-42.el8_8.src.rpm`) and `sourceVersion` its `version-release` where that differs
/// from the binary's; `licenses` is `RPMTAG_LICENSE`; `metadata` has `epoch`, `modularitylabel` and
/// `sourceRpm` where present. The purl is
/// `pkg:rpm/<os id>/<name>@<version>-<release>?arch=<arch>&epoch=<epoch>&distro=<os id>-<VERSION_ID>`
/// (purl spec, "rpm" type: the epoch is a qualifier, never part of the version). `gpg-pubkey`
/// entries (imported signing keys, not software) are skipped.
public struct RPMCataloger: PackageCataloger {
    public init() {}

    public var ecosystem: String { "rpm" }

    /// Database directories, in order of preference.
    public static let databaseDirectories = ["usr/lib/sysimage/rpm", "var/lib/rpm"]
    /// File names in a database directory, in order of preference.
    static let sqliteName = "rpmdb.sqlite"
    static let ndbName = "Packages.db"
    static let berkeleyName = "Packages"

    public var interest: FilesOfInterest {
        FilesOfInterest(contentPaths: Set(Self.databaseDirectories.flatMap { directory in
            [Self.sqliteName, Self.sqliteName + "-wal", Self.ndbName, Self.berkeleyName].map { "\(directory)/\($0)" }
        }))
    }

    public func packages(in filesystem: MergedFilesystem, operatingSystem: OperatingSystem?,
                         notes: inout [String]) -> CatalogResult {
        var chosen: (path: String, bytes: [UInt8])?
        for directory in Self.databaseDirectories {
            for name in [Self.sqliteName, Self.ndbName, Self.berkeleyName] {
                let path = "\(directory)/\(name)"
                guard filesystem.fileExists(path) else { continue }
                guard let bytes = filesystem.file(path) else {
                    notes.append("rpm database /\(path) exists but was not read")
                    continue
                }
                if let chosen {
                    // The same file through a symlink (var/lib/rpm -> ../../usr/lib/sysimage/rpm) is no news.
                    if chosen.bytes != bytes {
                        notes.append("rpm database /\(path) ignored: /\(chosen.path) was catalogued instead")
                    }
                } else {
                    chosen = (path, bytes)
                }
                break
            }
        }
        guard let chosen else { return CatalogResult(packages: [], databases: []) }

        let records: [RPMHeaderRecord]
        let name = String(chosen.path.split(separator: "/").last ?? "")
        switch name {
        case Self.ndbName:
            guard let contents = NDBReader.read(chosen.bytes) else {
                notes.append("rpm database /\(chosen.path) is not an NDB database; not catalogued")
                return CatalogResult(packages: [], databases: [chosen.path])
            }
            notes += contents.notes.map { "/\(chosen.path): \($0)" }
            var parsed: [RPMHeaderRecord] = []
            for (index, blob) in contents.blobs {
                if let record = RPMDatabase.header(blob: blob) {
                    parsed.append(record)
                } else {
                    notes.append("/\(chosen.path): package \(index) has a header librpm rejects; skipped")
                }
            }
            records = parsed
        default:
            var files = [name: chosen.bytes]
            if name == Self.sqliteName, let journal = filesystem.file(chosen.path + "-wal") {
                files[name + "-wal"] = journal
            }
            do {
                let result = try RPMDatabase.headers(files: files, backend: name == Self.sqliteName ? .sqlite : .berkeleyReadOnly)
                records = result.records
                // Berkeley DB images often lack the index files librpm looks for; they are not needed.
                notes += result.warnings.filter { !$0.hasPrefix("could not open") }.map { "/\(chosen.path): librpm: \($0)" }
            } catch {
                notes.append("rpm database /\(chosen.path) not catalogued: \(error)")
                return CatalogResult(packages: [], databases: [chosen.path])
            }
        }
        let packages = records.filter { $0.name != "gpg-pubkey" }.map {
            Self.package($0, location: chosen.path, operatingSystem: operatingSystem)
        }
        return CatalogResult(packages: packages, databases: [chosen.path])
    }

    /// The `InstalledPackage` for one header.
    static func package(_ record: RPMHeaderRecord, location: String, operatingSystem: OperatingSystem?) -> InstalledPackage {
        let distro = operatingSystem?.id ?? ""
        let source = record.sourceRPM.flatMap(Self.parseSourceRPM)
        var metadata: [String: String] = [:]
        if let epoch = record.epoch { metadata["epoch"] = String(epoch) }
        if let label = record.modularityLabel, !label.isEmpty, label != "(none)" { metadata["modularitylabel"] = label }
        if let sourceRPM = record.sourceRPM { metadata["sourceRpm"] = sourceRPM }
        let epochPrefix = record.epoch.flatMap { $0 == 0 ? nil : "\($0):" } ?? ""
        return InstalledPackage(
            ecosystem: "rpm", name: record.name, version: epochPrefix + record.versionRelease,
            sourceName: source?.name ?? record.name, architecture: record.architecture,
            purl: PackageURL.make(
                type: "rpm", namespace: distro.isEmpty ? nil : distro, name: record.name, version: record.versionRelease,
                qualifiers: ["arch": record.architecture ?? "",
                             "epoch": record.epoch.flatMap { $0 == 0 ? nil : String($0) } ?? "",
                             "distro": operatingSystem?.versionID.map { "\(distro)-\($0)" } ?? ""]),
            location: location,
            sourceVersion: source.flatMap { $0.versionRelease == record.versionRelease ? nil : $0.versionRelease },
            licenses: record.license.flatMap { $0.isEmpty ? nil : [$0] },
            metadata: metadata.isEmpty ? nil : metadata)
    }

    /// Splits a source RPM file name `NAME-VERSION-RELEASE.src.rpm` (or `.nosrc.rpm`) into the name and
    /// `VERSION-RELEASE`; nil where it has not that shape. Names may contain `-`; version and release
    /// never do (rpm forbids it), so the last two `-` separate them.
    static func parseSourceRPM(_ file: String) -> (name: String, versionRelease: String)? {
        var stem = Substring(file)
        for suffix in [".src.rpm", ".nosrc.rpm"] where stem.hasSuffix(suffix) {
            stem = stem.dropLast(suffix.count)
            break
        }
        guard let releaseDash = stem.lastIndex(of: "-") else { return nil }
        let beforeRelease = stem[..<releaseDash]
        guard let versionDash = beforeRelease.lastIndex(of: "-") else { return nil }
        let name = beforeRelease[..<versionDash]
        let versionRelease = stem[stem.index(after: versionDash)...]
        guard !name.isEmpty, !beforeRelease[beforeRelease.index(after: versionDash)...].isEmpty,
              stem.index(after: releaseDash) < stem.endIndex
        else { return nil }
        return (String(name), String(versionRelease))
    }
}
