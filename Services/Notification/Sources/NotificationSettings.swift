import Foundation
import GantryRuntime

/// The notification service's own settings, read from `GANTRY_NOTIFICATION_*` and `GANTRY_SMTP_*`.
///
/// | variable | default | meaning |
/// |---|---|---|
/// | `GANTRY_NOTIFICATION_RETRY_WINDOW_SECONDS` | `86400` | how long after it was queued a failing delivery is retried before it is dead |
/// | `GANTRY_NOTIFICATION_RETRY_BASE_MS` | `10000` | the delay after the first failed attempt; it doubles after each |
/// | `GANTRY_NOTIFICATION_RETRY_MAX_MS` | `3600000` | the longest delay between two attempts |
/// | `GANTRY_NOTIFICATION_TIMEOUT_MS` | `10000` | one attempt's limit, connection to last byte (HTTP) or whole session (SMTP) |
/// | `GANTRY_NOTIFICATION_CONCURRENCY` | `8` | attempts in flight at once per replica (one per channel) |
/// | `GANTRY_SMTP_URL` | unset (no e-mail) | the relay: `smtp://host[:port]` (STARTTLS when offered) or `smtps://host[:port]` |
/// | `GANTRY_SMTP_FROM` | required with `GANTRY_SMTP_URL` | the sender address |
/// | `GANTRY_SMTP_STARTTLS` | `opportunistic` | `opportunistic` (use it when offered) or `required` (fail without it) |
/// | `GANTRY_SMTP_USERNAME`, `GANTRY_SMTP_PASSWORD` | unset | SMTP AUTH credentials |
/// | `GANTRY_SMTP_CA_FILE` | system trust store | PEM file of CAs trusted for the relay's certificate |
struct NotificationSettings: Sendable {
    var retryWindow: Duration
    var retryBase: Duration
    var retryMax: Duration
    var attemptTimeout: Duration
    var concurrency: Int
    var smtp: SMTPSettings?

    /// - Throws: `ConfigurationError` naming the first bad variable.
    init(environment: [String: String]) throws {
        retryWindow = .seconds(try GantryConfiguration.integer(
            "GANTRY_NOTIFICATION_RETRY_WINDOW_SECONDS", environment, default: 86_400, range: 1...(30 * 86_400)))
        retryBase = .milliseconds(try GantryConfiguration.integer(
            "GANTRY_NOTIFICATION_RETRY_BASE_MS", environment, default: 10_000, range: 1...3_600_000))
        retryMax = .milliseconds(try GantryConfiguration.integer(
            "GANTRY_NOTIFICATION_RETRY_MAX_MS", environment, default: 3_600_000, range: 1...86_400_000))
        attemptTimeout = .milliseconds(try GantryConfiguration.integer(
            "GANTRY_NOTIFICATION_TIMEOUT_MS", environment, default: 10_000, range: 100...300_000))
        concurrency = try GantryConfiguration.integer("GANTRY_NOTIFICATION_CONCURRENCY", environment, default: 8, range: 1...256)
        smtp = try SMTPSettings(environment: environment)
    }

    /// Seconds to wait after the n-th failed attempt: `retryBase` doubling, capped at `retryMax`, with ±20 % jitter.
    func backoff(afterAttempt attempt: Int) -> Double {
        let base = retryBase.seconds * pow(2.0, Double(min(max(attempt - 1, 0), 30)))
        return min(retryMax.seconds, base) * Double.random(in: 0.8...1.2)
    }
}

/// The deployment's SMTP relay (e-mail channels need one).
struct SMTPSettings: Sendable {
    /// Whether STARTTLS may be skipped when the server does not offer it.
    enum StartTLS: String, Sendable {
        case opportunistic
        case required
    }

    var url: String
    var from: String
    var startTLS: StartTLS
    var username: String?
    var password: String?
    var caFile: String?

    /// nil when `GANTRY_SMTP_URL` is unset.
    /// - Throws: `ConfigurationError` for a malformed URL, a missing or malformed sender, an unknown STARTTLS mode.
    init?(environment: [String: String]) throws {
        guard let url = environment["GANTRY_SMTP_URL"], !url.isEmpty else { return nil }
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
              ["smtp", "smtps"].contains(scheme), let host = components.host, !host.isEmpty,
              components.path.isEmpty || components.path == "/", components.user == nil
        else {
            throw ConfigurationError(variable: "GANTRY_SMTP_URL",
                                     message: "'\(url)' is not smtp://HOST[:PORT] or smtps://HOST[:PORT] (credentials go in GANTRY_SMTP_USERNAME and GANTRY_SMTP_PASSWORD)")
        }
        guard let from = environment["GANTRY_SMTP_FROM"], EmailAddress.isValid(from) else {
            throw ConfigurationError(variable: "GANTRY_SMTP_FROM",
                                     message: "must be set to the sender's address (local@domain) when GANTRY_SMTP_URL is set")
        }
        let mode = environment["GANTRY_SMTP_STARTTLS"] ?? "opportunistic"
        guard let startTLS = StartTLS(rawValue: mode) else {
            throw ConfigurationError(variable: "GANTRY_SMTP_STARTTLS", message: "'\(mode)' is not one of opportunistic, required")
        }
        if let caFile = environment["GANTRY_SMTP_CA_FILE"], !FileManager.default.isReadableFile(atPath: caFile) {
            throw ConfigurationError(variable: "GANTRY_SMTP_CA_FILE", message: "'\(caFile)' is not a readable file")
        }
        self.url = url
        self.from = from
        self.startTLS = startTLS
        username = environment["GANTRY_SMTP_USERNAME"]
        password = environment["GANTRY_SMTP_PASSWORD"]
        caFile = environment["GANTRY_SMTP_CA_FILE"]
    }
}

extension Duration {
    /// The duration in seconds, as a floating-point number.
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
