import GantryModel

/// The parts of an image configuration (OCI image-spec `config.md`; Docker image JSON) the
/// scanner needs: the platform and the uncompressed layer digests.
public struct ImageConfig: Sendable, Hashable, Codable {
    /// The operating system, for example `linux` or `windows`.
    public var os: String
    /// The CPU architecture, for example `amd64`.
    public var architecture: String
    public var variant: String?
    /// `os.version`, Windows images only.
    public var osVersion: String?
    /// The layer file systems.
    public var rootfs: RootFS
    /// The ISO 8601 creation time exactly as written, if any.
    public var created: String?
    /// Runtime defaults (labels, environment); nil when absent.
    public var config: ExecutionConfig?

    enum CodingKeys: String, CodingKey {
        case os, architecture, variant, rootfs, created, config
        case osVersion = "os.version"
    }

    /// `rootfs`: `type` is `layers`; `diff_ids` are the digests of the uncompressed layers, in order.
    public struct RootFS: Sendable, Hashable, Codable {
        public var type: String
        public var diffIDs: [Digest]

        enum CodingKeys: String, CodingKey {
            case type
            case diffIDs = "diff_ids"
        }

        public init(type: String = "layers", diffIDs: [Digest]) {
            self.type = type
            self.diffIDs = diffIDs
        }
    }

    /// The `config` object: the defaults a container runs with.
    public struct ExecutionConfig: Sendable, Hashable, Codable {
        public var user: String?
        public var env: [String]?
        public var entrypoint: [String]?
        public var cmd: [String]?
        public var workingDir: String?
        public var labels: [String: String]?

        enum CodingKeys: String, CodingKey {
            case user = "User", env = "Env", entrypoint = "Entrypoint", cmd = "Cmd"
            case workingDir = "WorkingDir", labels = "Labels"
        }
    }

    /// The platform the configuration declares.
    public var platform: Platform {
        var platform = Platform(os: os, architecture: architecture, variant: variant)
        platform.osVersion = osVersion
        return platform
    }
}
