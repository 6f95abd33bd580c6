/// The operating system an image declares, from `os-release(5)` fields.
public struct OperatingSystem: Hashable, Sendable, Codable {
    /// `ID`, lowercase, for example `alpine`, `debian`.
    public var id: String
    /// `VERSION_ID`, for example `3.7.3`, `12`; nil where the file has none.
    public var versionID: String?
    /// `PRETTY_NAME`, for display.
    public var prettyName: String?
    /// True when the release is past its vendor's end of life (no more security updates) on the day of
    /// the analysis, false when it is still supported; nil when the release or its date is unknown.
    public var endOfLife: Bool?
    /// The release's end-of-life date, `YYYY-MM-DD`; nil when unknown.
    public var endOfLifeDate: String?

    public init(id: String, versionID: String?, prettyName: String?, endOfLife: Bool? = nil,
                endOfLifeDate: String? = nil) {
        self.id = id
        self.versionID = versionID
        self.prettyName = prettyName
        self.endOfLife = endOfLife
        self.endOfLifeDate = endOfLifeDate
    }
}

/// One installed package found in an image.
public struct InstalledPackage: Hashable, Sendable, Codable {
    /// The package manager's ecosystem: `apk`, `dpkg`, `rpm`, `pypi`, …
    public var ecosystem: String
    /// The binary package name as installed (apk `P:`).
    public var name: String
    /// The installed version string exactly as the database records it (apk `V:`).
    public var version: String
    /// The source (origin) package name that advisories are keyed on (apk `o:`); nil if unknown.
    public var sourceName: String?
    /// The architecture (apk `A:`), if recorded.
    public var architecture: String?
    /// The package URL (purl spec, https://github.com/package-url/purl-spec).
    public var purl: String
    /// The file in the image the package was read from, without a leading slash.
    public var location: String
    /// The source package's version where it differs from the binary's (dpkg `Source: name (version)`,
    /// the source RPM's version); nil when the same or unknown.
    public var sourceVersion: String?
    /// Licenses as declared by the package metadata (SPDX expressions where the ecosystem uses them).
    public var licenses: [String]?
    /// Ecosystem-specific facts matching needs (rpm `epoch`, `modularitylabel`, Go `goVersion`, Maven `groupId` …).
    public var metadata: [String: String]?

    public init(ecosystem: String, name: String, version: String, sourceName: String?, architecture: String?,
                purl: String, location: String, sourceVersion: String? = nil, licenses: [String]? = nil,
                metadata: [String: String]? = nil) {
        self.ecosystem = ecosystem
        self.name = name
        self.version = version
        self.sourceName = sourceName
        self.architecture = architecture
        self.purl = purl
        self.location = location
        self.sourceVersion = sourceVersion
        self.licenses = licenses
        self.metadata = metadata
    }
}

/// Why an image cannot be scanned; an image with one is reported NotApplicable and never billed.
public enum NotApplicableReason: String, Sendable, Codable, CaseIterable {
    case windowsImage = "WindowsImage"
    case noPackageDatabase = "NoPackageDatabase"
    case unsupportedManifest = "UnsupportedManifest"
    case notAnImage = "NotAnImage"
    case unsupportedOperatingSystem = "UnsupportedOperatingSystem"
}

/// What the analysis of one image found: its OS and every installed package.
public struct ImageInventory: Hashable, Sendable, Codable {
    public var operatingSystem: OperatingSystem?
    public var packages: [InstalledPackage]
    /// Set when the image cannot be assessed, with the reason.
    public var notApplicable: NotApplicableReason?
    /// Human-readable notes (skipped layers, missing files), for the report.
    public var notes: [String]

    public init(operatingSystem: OperatingSystem?, packages: [InstalledPackage],
                notApplicable: NotApplicableReason? = nil, notes: [String] = []) {
        self.operatingSystem = operatingSystem
        self.packages = packages
        self.notApplicable = notApplicable
        self.notes = notes
    }
}

/// A vulnerability that affects one installed package.
public struct VulnerabilityFinding: Hashable, Sendable, Codable {
    /// The advisory's identifier as its feed gives it (`CVE-2019-14697`, `PYSEC-2019-1`, `DSA-5000-1`).
    public var vulnerabilityID: String
    /// CVE aliases (may equal `vulnerabilityID`).
    public var cves: [String]
    public var packageName: String
    public var sourceName: String?
    public var installedVersion: String
    /// The first version that fixes it; nil when no fix exists.
    public var fixedVersion: String?
    public var severity: Severity
    /// The feed the advisory came from, for example `alpine-secdb:v3.7/main`.
    public var source: String
    /// The publisher's fix state: `fixed`, `unfixed`, `wontFix`, `deferred`, `endOfLife`; nil in
    /// reports stored before fix states existed (read as `fixed` when `fixedVersion` is set).
    public var fixState: String?
    /// The publisher's statement behind the state (Debian `no-dsa` note, Red Hat remediation text).
    public var statement: String?
    /// Where the package was matched: `alpine:v3.7`, `debian:12`, `pypi`, …
    public var namespace: String?
    /// The installed package's ecosystem (`apk`, `dpkg`, `pypi`, …) and purl.
    public var ecosystem: String?
    public var purl: String?
    /// Other identifiers of the vulnerability (GHSA, PYSEC, DSA …), CVEs included.
    public var aliases: [String]?
    /// One-line summary, where a feed gives one.
    public var title: String?
    public var description: String?
    /// The highest CVSS v3.x base score and its vector among the ratings; nil when none.
    public var cvssV3Score: Double?
    public var cvssV3Vector: String?
    /// The CVSS v4.0 base score and its vector; nil when none.
    public var cvssV4Score: Double?
    public var cvssV4Vector: String?
    /// Which source's rating `severity` came from (`debian`, `nvd`, `ghsa`, …).
    public var severitySource: String?
    /// True when a CVE of this finding is in CISA's Known Exploited Vulnerabilities catalogue.
    public var knownExploited: Bool?
    /// The highest FIRST EPSS probability (0–1) and its percentile among the finding's CVEs.
    public var epss: Double?
    public var epssPercentile: Double?
    /// Advisory links.
    public var links: [String]?
    /// First publication, ISO 8601, where known.
    public var published: String?

    /// True when a fixed version exists (the seed's "patchable").
    public var patchable: Bool { fixedVersion != nil }

    public init(vulnerabilityID: String, cves: [String], packageName: String, sourceName: String?,
                installedVersion: String, fixedVersion: String?, severity: Severity, source: String,
                fixState: String? = nil, statement: String? = nil, namespace: String? = nil, ecosystem: String? = nil,
                purl: String? = nil) {
        self.vulnerabilityID = vulnerabilityID
        self.cves = cves
        self.packageName = packageName
        self.sourceName = sourceName
        self.installedVersion = installedVersion
        self.fixedVersion = fixedVersion
        self.severity = severity
        self.source = source
        self.fixState = fixState
        self.statement = statement
        self.namespace = namespace
        self.ecosystem = ecosystem
        self.purl = purl
    }
}
