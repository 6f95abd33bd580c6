import Foundation
import GantryRuntime

/// The user-token key of every service under test in this process, and tokens signed with it.
/// `TestEnvironment` configures services to trust it two ways: as a pinned OIDC key (`GANTRY_OIDC_ISSUER` =
/// `issuer`, `GANTRY_OIDC_JWKS`, so the production profile works too) and, in development, as the development
/// key (`GANTRY_DEV_TOKEN_KEY_FILE`, which CLI subprocesses use to mint tokens). `TestHTTP.send` attaches
/// `defaultToken(for:)` to public routes when the caller sets no `Authorization`.
package enum TestUserTokens {
    /// The OIDC issuer of test tokens.
    package static let issuer = "https://issuer.gantry.test"
    package static let keyID = "gantry-test"
    /// A PEM file (mode 600) holding a fresh ES256 key, written once per test process.
    package static let keyFile: String = {
        let pem = DevelopmentTokens.generateKeyPEM()
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("gantry-test-dev-key-\(UUID().uuidString).pem")
        _ = FileManager.default.createFile(atPath: url.path, contents: Data(pem.utf8), attributes: [.posixPermissions: 0o600])
        return url.path
    }()

    /// The JWKS with the test key's public half, for `GANTRY_OIDC_JWKS`.
    package static let jwksDocument: String = {
        try! DevelopmentTokens.jwksDocument(pem: try! String(contentsOfFile: keyFile, encoding: .utf8), keyID: keyID)
    }()

    /// A signer of development tokens (`iss` `gantry-development`) with the test key.
    package static func signer() async throws -> DevelopmentTokens { try await development.value }

    /// A signer of OIDC tokens (`iss` `issuer`, `kid` `keyID`) with the test key.
    package static func oidcSigner() async throws -> DevelopmentTokens { try await oidc.value }

    private static let development = Task {
        try await DevelopmentTokens(pem: try String(contentsOfFile: keyFile, encoding: .utf8))
    }
    private static let oidc = Task {
        try await DevelopmentTokens(pem: try String(contentsOfFile: keyFile, encoding: .utf8), issuer: issuer, keyID: keyID)
    }

    /// An OIDC token with `roles` in each tenant and the given platform roles (valid in either profile).
    package static func token(_ tenantRoles: [String: [TenantRole]], platform: [PlatformRole] = [],
                              subject: String = "test-user") async throws -> String {
        try await oidcSigner().token(subject: subject, tenantRoles: tenantRoles, platformRoles: platform)
    }

    /// The token a test gets by default: Platform Operator, and Owner of the tenant named in `path`
    /// (the segment after `tenants`), so existing tests call every public route as before.
    package static func defaultToken(for path: String) async throws -> String {
        let segments = path.split(separator: "/", omittingEmptySubsequences: true)
        var tenants: [String: [TenantRole]] = [:]
        if let index = segments.firstIndex(of: "tenants"), index + 1 < segments.count {
            let tenant = String(segments[index + 1])
            tenants[tenant.removingPercentEncoding ?? tenant] = [.owner]
        }
        return try await token(tenants, platform: [.platformOperator])
    }
}
