import Foundation
import GantryModel

/// Maven artifacts in Java archives (see `JavaArchiveSummary`) and in exploded archives
/// (`…/META-INF/maven/<groupId>/<artifactId>/pom.properties` files on the filesystem).
///
/// Per archive, nested ones included: one package per complete `pom.properties` (groupId, artifactId and
/// version all set); plus, unless one of those is the archive itself (its artifactId is the name taken
/// from the file name), one package from the manifest and file name: name from the file name
/// (`name-1.2.3.jar`), else `Bundle-SymbolicName`, else `Implementation-Title`; version from
/// `Implementation-Version`, `Bundle-Version`, the file name, then `Specification-Version`; groupId
/// from `Implementation-Vendor-Id`, `Bundle-SymbolicName` or `Automatic-Module-Name` where one looks like
/// a reverse domain, else the name. Ecosystem `maven`, purl `pkg:maven/<groupId>/<artifactId>@<version>`
/// (purl spec, "maven"); metadata `groupId`, `artifactId`, `virtualPath` (`image/path.war!/WEB-INF/lib/x.jar`)
/// and `source` (`pom.properties` or `manifest`).
public struct JavaCataloger: PackageCataloger {
    /// Extractor name under which summaries are kept.
    public static let extractorName = "java-archive"
    static let archiveSuffixes: Set<String> = [".jar", ".war", ".ear", ".hpi", ".jpi"]

    /// The largest archive read, in bytes (default 256 MiB).
    public var maxArchiveBytes: Int
    /// Bounds on nesting and inflated bytes.
    var reader: JavaArchiveReader

    public init(maxArchiveBytes: Int = 256 * 1024 * 1024) {
        self.maxArchiveBytes = maxArchiveBytes
        self.reader = JavaArchiveReader()
    }

    public var ecosystem: String { "maven" }

    public var interest: FilesOfInterest {
        FilesOfInterest(contentPaths: [], contentSuffixes: ["/pom.properties"],
                        extractors: [Self.extractor(maxBytes: maxArchiveBytes, reader: reader)])
    }

    static func extractor(maxBytes: Int, reader: JavaArchiveReader) -> FileExtractor {
        FileExtractor(
            name: extractorName,
            selection: .init(suffixes: archiveSuffixes, maxBytes: maxBytes),
            extract: { _, bytes in
                let summary = reader.read(bytes)
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                guard let encoded = try? encoder.encode(summary) else { return .none }
                // The notes travel in the summary too, so that the cataloger reports them with the packages.
                return FileExtractor.Output(summary: Array(encoded))
            })
    }

    public func packages(in filesystem: MergedFilesystem, operatingSystem: OperatingSystem?,
                         notes: inout [String]) -> CatalogResult {
        var packages: [InstalledPackage] = []
        for (path, summaryBytes) in filesystem.extracted(by: Self.extractorName) {
            guard let summary = try? JSONDecoder().decode(JavaArchiveSummary.self, from: Data(summaryBytes)) else {
                notes.append("\(path): stored Java archive summary could not be decoded")
                continue
            }
            notes += summary.notes.map { "\(path): \($0)" }
            packages += Self.packages(from: summary, location: path)
        }
        for (path, bytes) in filesystem.files(withSuffix: "/pom.properties") where path.contains("META-INF/maven/") {
            let properties = JavaArchiveReader.parseProperties(bytes)
            guard let pom = Self.completePom(properties, path: path) else { continue }
            packages.append(Self.package(pom, location: path, virtualPath: path, source: "pom.properties"))
        }
        return CatalogResult(packages: packages, databases: [])
    }

    static func packages(from summary: JavaArchiveSummary, location: String) -> [InstalledPackage] {
        var packages: [InstalledPackage] = []
        var seen: Set<String> = []
        for archive in summary.archives {
            let virtualPath = archive.virtualPath.isEmpty ? location : location + "!/" + archive.virtualPath
            let fileName = String((archive.virtualPath.isEmpty ? location : archive.virtualPath)
                .split(separator: "/").last ?? "")
            let fromName = nameAndVersion(fromFileName: fileName)
            var coversArchive = false
            for pom in archive.poms {
                guard !pom.groupId.isEmpty, !pom.artifactId.isEmpty, !pom.version.isEmpty else { continue }
                if pom.artifactId == fromName.name { coversArchive = true }
                guard seen.insert(virtualPath + "\u{0}" + pom.groupId + ":" + pom.artifactId + ":" + pom.version).inserted
                else { continue }
                packages.append(package(pom, location: location, virtualPath: virtualPath, source: "pom.properties"))
            }
            guard !coversArchive, let pom = manifestIdentity(archive.manifest, fromName: fromName, fileName: fileName),
                  !archive.poms.contains(where: { $0.artifactId == pom.artifactId && $0.version == pom.version })
            else { continue }
            packages.append(package(pom, location: location, virtualPath: virtualPath, source: "manifest"))
        }
        return packages
    }

    static func package(_ pom: JavaArchiveSummary.PomProperties, location: String, virtualPath: String,
                        source: String) -> InstalledPackage {
        InstalledPackage(
            ecosystem: "maven", name: pom.artifactId, version: pom.version, sourceName: nil, architecture: nil,
            purl: PackageURL.makePath(type: "maven", path: pom.groupId + "/" + pom.artifactId, version: pom.version),
            location: location,
            metadata: ["groupId": pom.groupId, "artifactId": pom.artifactId, "virtualPath": virtualPath, "source": source])
    }

    static func completePom(_ properties: [String: String], path: String) -> JavaArchiveSummary.PomProperties? {
        guard let group = properties["groupId"], let artifact = properties["artifactId"], let version = properties["version"],
              !group.isEmpty, !artifact.isEmpty, !version.isEmpty else { return nil }
        return .init(groupId: group, artifactId: artifact, version: version, path: path)
    }

    /// The archive's identity from its manifest and file name; nil where no name or no version is known.
    static func manifestIdentity(_ manifest: [String: String], fromName: (name: String?, version: String?),
                                 fileName: String) -> JavaArchiveSummary.PomProperties? {
        let symbolicName = manifest["Bundle-SymbolicName"].map { String($0.prefix { $0 != ";" }).trimmed }
        guard let name = fromName.name ?? symbolicName ?? manifest["Implementation-Title"], !name.isEmpty else { return nil }
        let versions = [manifest["Implementation-Version"], manifest["Bundle-Version"], fromName.version,
                        manifest["Specification-Version"]]
        guard let version = versions.compactMap({ $0 }).first(where: { !$0.isEmpty }) else { return nil }
        let groupCandidates = [manifest["Implementation-Vendor-Id"], symbolicName, manifest["Automatic-Module-Name"]]
            .compactMap { $0 }
            .map { candidate in candidate.hasSuffix("." + name) ? String(candidate.dropLast(name.count + 1)) : candidate }
        let group = groupCandidates.first(where: looksLikeReverseDomain) ?? name
        return .init(groupId: group, artifactId: name, version: version, path: "META-INF/MANIFEST.MF")
    }

    /// `log4j-1.2.16.jar` → (`log4j`, `1.2.16`); `jackson-mapper-asl-1.9.13-atlassian-1.jar` →
    /// (`jackson-mapper-asl`, `1.9.13-atlassian-1`); `tomcat-coyote.jar` → (`tomcat-coyote`, nil). The
    /// version starts at the first `-` followed by a digit.
    static func nameAndVersion(fromFileName fileName: String) -> (name: String?, version: String?) {
        var base = Substring(fileName)
        if let dot = base.lastIndex(of: "."), archiveSuffixes.contains(base[dot...].lowercased()) { base = base[..<dot] }
        guard !base.isEmpty else { return (nil, nil) }
        var index = base.startIndex
        while let dash = base[index...].firstIndex(of: "-") {
            let next = base.index(after: dash)
            if next < base.endIndex, base[next].isNumber {
                return (base[..<dash].isEmpty ? nil : String(base[..<dash]), String(base[next...]))
            }
            index = next
        }
        return (String(base), nil)
    }

    private static func looksLikeReverseDomain(_ candidate: String) -> Bool {
        let parts = candidate.split(separator: ".")
        let topLevel: Set<Substring> = ["com", "org", "net", "io", "de", "edu", "gov", "uk", "fr", "nl", "ch", "be",
                                        "eu", "jp", "cn", "ru", "info", "dev", "app", "javax", "jakarta", "software"]
        return parts.count >= 2 && topLevel.contains(parts[0])
            && candidate.allSatisfy { $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == "_" }
    }
}

private extension String {
    var trimmed: String {
        String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}
