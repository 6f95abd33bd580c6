/// A platform as an index entry declares it (OCI image spec, `image-index.md`, "platform"):
/// `os/architecture[/variant]`, with GOOS/GOARCH values such as `linux/amd64` or `linux/arm64/v8`.
public struct Platform: Sendable, Hashable, Codable, CustomStringConvertible {
    public var os: String
    public var architecture: String
    /// The CPU variant, such as `v8` for arm64 or `v7` for arm; nil when unspecified.
    public var variant: String?
    /// `os.version`, used by Windows images.
    public var osVersion: String?
    /// `os.features`, used by Windows images.
    public var osFeatures: [String]?

    enum CodingKeys: String, CodingKey {
        case os, architecture, variant
        case osVersion = "os.version"
        case osFeatures = "os.features"
    }

    public init(os: String, architecture: String, variant: String? = nil) {
        self.os = os
        self.architecture = architecture
        self.variant = variant
    }

    /// Parses `os/architecture[/variant]`, for example `linux/arm64/v8`.
    /// - Throws: `RegistryError.malformed` when it does not have two or three non-empty parts.
    public init(parsing string: String) throws {
        let parts = string.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard (2...3).contains(parts.count), parts.allSatisfy({ !$0.isEmpty }) else {
            throw RegistryError.malformed("'\(string.prefix(100))' is not a platform of the form os/architecture[/variant]")
        }
        self.init(os: parts[0], architecture: parts[1], variant: parts.count == 3 ? parts[2] : nil)
    }

    /// `linux/amd64`, the default platform.
    public static let linuxAMD64 = Platform(os: "linux", architecture: "amd64")
    /// `linux/arm64/v8`.
    public static let linuxARM64 = Platform(os: "linux", architecture: "arm64", variant: "v8")

    public var description: String {
        [os, architecture, variant].compactMap { $0 }.joined(separator: "/")
    }

    /// The variant with the defaults the OCI spec and containerd assume (`arm64` → `v8`), so that an
    /// entry without a variant matches a request for the default one.
    var normalizedVariant: String? {
        switch (architecture, variant) {
        case ("arm64", nil): "v8"
        case ("arm", nil): "v7"
        default: variant
        }
    }

    /// True when an index entry for `candidate` satisfies a request for `self`: os and architecture
    /// equal, and the variant equal when this request names one.
    public func isSatisfied(by candidate: Platform) -> Bool {
        guard os == candidate.os, architecture == candidate.architecture else { return false }
        guard variant != nil else { return true }
        return normalizedVariant == candidate.normalizedVariant
    }
}
