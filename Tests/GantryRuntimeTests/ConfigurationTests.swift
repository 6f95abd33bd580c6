import Foundation
import GantryModel
import GantryRuntime
import Testing

@Suite struct ConfigurationTests {
    static let key = String(repeating: "k", count: 32)

    @Test func defaults() throws {
        let configuration = try GantryConfiguration(service: .findingsPolicy,
                                                    environment: ["GANTRY_SERVICE_KEY": Self.key, "PATH": "/bin"])
        #expect(configuration.host == "127.0.0.1")
        #expect(configuration.port == 8084)
        #expect(configuration.databaseURL == "postgres://gantry:gantry@127.0.0.1:5433/gantry")
        #expect(configuration.cloud == CloudProfile.profile(for: .commercial))
        #expect(configuration.profile == .production)
        #expect(configuration.serviceKey == Self.key)
        #expect(configuration.secretKey == nil)
        #expect(configuration.logLevel == "info")
        #expect(configuration.maxBodyBytes == 16 << 20)
        #expect(configuration.url(of: .notification).absoluteString == "http://127.0.0.1:8086")
        #expect(configuration.peerURLs.count == GantryServiceName.allCases.count)
        // Only GANTRY_* variables are kept.
        #expect(configuration.environment == ["GANTRY_SERVICE_KEY": Self.key])
    }

    @Test func readsEveryVariable() throws {
        let secret = Data(repeating: 7, count: 32)
        let configuration = try GantryConfiguration(service: .discovery, environment: [
            "GANTRY_SERVICE_KEY": Self.key, "GANTRY_HOST": "0.0.0.0", "GANTRY_PORT": "9000",
            "GANTRY_DATABASE_URL": "postgresql://app:p%40ss@db.internal:6000/gantry_prod",
            "GANTRY_CLOUD": "government", "GANTRY_PROFILE": "development",
            "GANTRY_SECRET_KEY": secret.base64EncodedString(), "GANTRY_LOG_LEVEL": "debug",
            "GANTRY_BILLING_URL": "https://billing.example.com/", "GANTRY_MAX_BODY_BYTES": "2048",
        ])
        #expect(configuration.host == "0.0.0.0")
        #expect(configuration.port == 9000)
        #expect(configuration.cloud.cloudType == .government)
        #expect(configuration.profile == .development)
        #expect(configuration.secretKey == secret)
        #expect(configuration.logLevel == "debug")
        #expect(configuration.url(of: .billing).absoluteString == "https://billing.example.com/")
        #expect(configuration.maxBodyBytes == 2048)
        let settings = try DatabaseSettings(url: configuration.databaseURL)
        #expect(settings.host == "db.internal")
        #expect(settings.port == 6000)
        #expect(settings.username == "app")
        #expect(settings.password == "p@ss")
        #expect(settings.database == "gantry_prod")
    }

    @Test(arguments: [
        ("GANTRY_CLOUD", "mars"),
        ("GANTRY_PROFILE", "staging"),
        ("GANTRY_PORT", "70000"),
        ("GANTRY_PORT", "-1"),
        ("GANTRY_PORT", "eighty"),
        ("GANTRY_SERVICE_KEY", "too-short"),
        ("GANTRY_SECRET_KEY", Data(repeating: 1, count: 16).base64EncodedString()),
        ("GANTRY_SECRET_KEY", "not base64!"),
        ("GANTRY_DATABASE_URL", "mysql://gantry:gantry@127.0.0.1:3306/gantry"),
        ("GANTRY_DATABASE_URL", "postgres://gantry:gantry@127.0.0.1:5433/"),
        ("GANTRY_DATABASE_URL", "postgres://127.0.0.1:5433/gantry"),
        ("GANTRY_LOG_LEVEL", "loud"),
        ("GANTRY_MAX_BODY_BYTES", "10"),
        ("GANTRY_SCANNER_URL", "ftp://127.0.0.1:8083"),
        ("GANTRY_NOTIFICATION_URL", "not a url"),
        ("GANTRY_FINDINGS_POLICY_URL", "http://"),
    ])
    func badValueNamesTheVariable(variable: String, value: String) {
        var environment = ["GANTRY_SERVICE_KEY": Self.key]
        environment[variable] = value
        let error = #expect(throws: ConfigurationError.self) {
            try GantryConfiguration(service: .scanner, environment: environment)
        }
        #expect(error?.variable == variable)
        #expect(error?.description.contains(variable) == true)
    }

    @Test func missingServiceKeyIsAnError() {
        let error = #expect(throws: ConfigurationError.self) { try GantryConfiguration(service: .billing, environment: [:]) }
        #expect(error?.variable == "GANTRY_SERVICE_KEY")
    }

    @Test func databaseURLErrorRedactsThePassword() {
        let error = #expect(throws: ConfigurationError.self) {
            try GantryConfiguration(service: .billing, environment: [
                "GANTRY_SERVICE_KEY": Self.key, "GANTRY_DATABASE_URL": "mysql://admin:hunter2secret@db:3306/gantry"])
        }
        #expect(error?.variable == "GANTRY_DATABASE_URL")
        #expect(error?.message.contains("hunter2secret") == false)
        #expect(error?.message.contains("mysql://admin:***@db:3306/gantry") == true)
    }

    @Test func databaseSettingsDefaultPort() throws {
        let settings = try DatabaseSettings(url: "postgres://user@localhost/db")
        #expect(settings.port == 5432)
        #expect(settings.password == nil)
    }

    @Test func serviceNames() {
        #expect(GantryServiceName.findingsPolicy.schema == "findings_policy")
        #expect(GantryServiceName.findingsPolicy.urlVariable == "GANTRY_FINDINGS_POLICY_URL")
        #expect(Set(GantryServiceName.allCases.map(\.defaultPort)).count == 6)
    }
}
