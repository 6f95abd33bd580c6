import Foundation
import GantryModel

/// A configuration value that is missing or malformed; the message names the variable, the value and what is expected.
public struct ConfigurationError: Error, CustomStringConvertible {
    public let variable: String
    public let message: String
    public var description: String { "configuration error: \(variable): \(message)" }

    public init(variable: String, message: String) {
        self.variable = variable
        self.message = message
    }
}

/// The deployment profile: `production` accepts only public registry hosts; `development`
/// also accepts loopback registries spoken to over plain HTTP.
public enum DeploymentProfile: String, Sendable {
    case production
    case development
}

/// The six Gantry services, with their default ports and the environment variable of their URL.
public enum GantryServiceName: String, Sendable, CaseIterable {
    case discovery
    case ingestion
    case scanner
    case findingsPolicy = "findings-policy"
    case billing
    case notification

    /// The default listening port (README, "Configuration").
    public var defaultPort: Int {
        switch self {
        case .discovery: 8081
        case .ingestion: 8082
        case .scanner: 8083
        case .findingsPolicy: 8084
        case .billing: 8085
        case .notification: 8086
        }
    }

    /// The PostgreSQL schema the service owns.
    public var schema: String { rawValue.replacingOccurrences(of: "-", with: "_") }

    /// `GANTRY_<NAME>_URL`, where peers find the service.
    public var urlVariable: String { "GANTRY_\(schema.uppercased())_URL" }
}

/// Configuration every service reads from `GANTRY_*` environment variables (README, "Configuration").
///
/// | variable | default |
/// |---|---|
/// | `GANTRY_HOST` | `127.0.0.1` |
/// | `GANTRY_PORT` | the service's default port |
/// | `GANTRY_DATABASE_URL` | `postgres://gantry:gantry@127.0.0.1:5433/gantry` |
/// | `GANTRY_CLOUD` | `commercial` |
/// | `GANTRY_PROFILE` | `production` |
/// | `GANTRY_SERVICE_KEY` | required: at least 32 characters, signs service tokens |
/// | `GANTRY_SECRET_KEY` | required by discovery: base64 of 32 bytes, encrypts registry credentials |
/// | `GANTRY_LOG_LEVEL` | `info` |
/// | `GANTRY_<SERVICE>_URL` | `http://127.0.0.1:<default port>` |
/// | `GANTRY_MAX_BODY_BYTES` | `16777216` (16 MiB) |
public struct GantryConfiguration: Sendable {
    public var service: GantryServiceName
    public var host: String
    public var port: Int
    public var databaseURL: String
    public var cloud: CloudProfile
    public var profile: DeploymentProfile
    public var serviceKey: String
    /// The AES-256 key for secrets at rest; nil where the variable is unset.
    public var secretKey: Data?
    public var logLevel: String
    public var peerURLs: [GantryServiceName: URL]
    public var maxBodyBytes: Int
    /// Every `GANTRY_*` variable, for service-specific settings.
    public var environment: [String: String]

    /// Reads the configuration of `service` from `environment`.
    /// - Throws: `ConfigurationError` naming the first bad variable.
    public init(service: GantryServiceName, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        self.service = service
        self.environment = environment.filter { $0.key.hasPrefix("GANTRY_") }
        host = environment["GANTRY_HOST"] ?? "127.0.0.1"
        port = try Self.integer("GANTRY_PORT", environment, default: service.defaultPort, range: 0...65535)
        databaseURL = environment["GANTRY_DATABASE_URL"] ?? "postgres://gantry:gantry@127.0.0.1:5433/gantry"
        _ = try DatabaseSettings(url: databaseURL)
        let cloudName = environment["GANTRY_CLOUD"] ?? "commercial"
        guard let cloudType = CloudType(rawValue: cloudName) else {
            throw ConfigurationError(variable: "GANTRY_CLOUD",
                                     message: "'\(cloudName)' is not one of commercial, government, china")
        }
        let profileName = environment["GANTRY_PROFILE"] ?? "production"
        guard let profile = DeploymentProfile(rawValue: profileName) else {
            throw ConfigurationError(variable: "GANTRY_PROFILE",
                                     message: "'\(profileName)' is not one of production, development")
        }
        self.profile = profile
        cloud = CloudProfile.profile(for: cloudType)
        guard let key = environment["GANTRY_SERVICE_KEY"], key.utf8.count >= 32 else {
            throw ConfigurationError(variable: "GANTRY_SERVICE_KEY",
                                     message: "must be set to a secret of at least 32 characters (it signs service tokens)")
        }
        serviceKey = key
        if let encoded = environment["GANTRY_SECRET_KEY"] {
            guard let data = Data(base64Encoded: encoded), data.count == 32 else {
                throw ConfigurationError(variable: "GANTRY_SECRET_KEY",
                                         message: "must be the base64 encoding of exactly 32 random bytes (an AES-256 key)")
            }
            secretKey = data
        } else {
            secretKey = nil
        }
        logLevel = environment["GANTRY_LOG_LEVEL"] ?? "info"
        guard ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(logLevel) else {
            throw ConfigurationError(variable: "GANTRY_LOG_LEVEL",
                                     message: "'\(logLevel)' is not one of trace, debug, info, notice, warning, error, critical")
        }
        maxBodyBytes = try Self.integer("GANTRY_MAX_BODY_BYTES", environment, default: 16 << 20, range: 1024...(1 << 30))
        var peers: [GantryServiceName: URL] = [:]
        for peer in GantryServiceName.allCases {
            let value = environment[peer.urlVariable] ?? "http://127.0.0.1:\(peer.defaultPort)"
            guard let url = URL(string: value), let scheme = url.scheme, ["http", "https"].contains(scheme),
                  url.host != nil
            else {
                throw ConfigurationError(variable: peer.urlVariable, message: "'\(value)' is not an http(s) URL")
            }
            peers[peer] = url
        }
        peerURLs = peers
    }

    /// The URL of a peer service.
    public func url(of peer: GantryServiceName) -> URL {
        peerURLs[peer] ?? URL(string: "http://127.0.0.1:\(peer.defaultPort)")!
    }

    /// Reads an integer variable within `range`.
    /// - Throws: `ConfigurationError` when it is not an integer or out of range.
    public static func integer(_ name: String, _ environment: [String: String], default value: Int,
                               range: ClosedRange<Int>) throws -> Int {
        guard let text = environment[name] else { return value }
        guard let number = Int(text), range.contains(number) else {
            throw ConfigurationError(variable: name,
                                     message: "'\(text)' is not an integer in \(range.lowerBound)...\(range.upperBound)")
        }
        return number
    }
}

/// Connection settings parsed from a `postgres://user:password@host:port/database` URL.
public struct DatabaseSettings: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String

    /// - Throws: `ConfigurationError` for a URL that is not `postgres://` or lacks a user or database.
    public init(url: String) throws {
        guard let components = URLComponents(string: url),
              components.scheme == "postgres" || components.scheme == "postgresql",
              let host = components.host, !host.isEmpty,
              let user = components.user, !user.isEmpty
        else {
            throw ConfigurationError(variable: "GANTRY_DATABASE_URL",
                                     message: "'\(Self.redacted(url))' is not of the form postgres://USER:PASSWORD@HOST:PORT/DATABASE")
        }
        let database = String(components.path.drop(while: { $0 == "/" }))
        guard !database.isEmpty else {
            throw ConfigurationError(variable: "GANTRY_DATABASE_URL", message: "'\(Self.redacted(url))' names no database")
        }
        self.host = host
        self.port = components.port ?? 5432
        self.username = user.removingPercentEncoding ?? user
        self.password = components.password.map { $0.removingPercentEncoding ?? $0 }
        self.database = database
    }

    private static func redacted(_ url: String) -> String {
        guard var components = URLComponents(string: url), components.password != nil else { return url }
        components.password = "***"
        return components.string ?? "<unparseable>"
    }
}
