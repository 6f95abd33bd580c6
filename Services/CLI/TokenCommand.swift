import ArgumentParser
import Foundation
import GantryRuntime

/// `gantry token …`: development user tokens (docs/ROLES.md).
struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Create development user tokens.", subcommands: [TokenCreateCommand.self])
}

/// `gantry token create --tenant T --role Owner [--role …] [--operator] [--subject S] [--ttl 1h]`: prints a JWT
/// signed with the development key (`GANTRY_DEV_TOKEN_KEY_FILE`, which `scripts/env.sh` generates). Only services
/// in the development profile accept it; production verifies OIDC tokens instead.
struct TokenCreateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create", abstract: "Print a development user token (use as GANTRY_TOKEN or Authorization: Bearer).")

    @Option(help: "The tenant the roles apply to (UUID).")
    var tenant: String?
    @Option(name: .customLong("role"),
            help: "A role in the tenant, repeatable: \(TenantRole.allCases.map(\.rawValue).joined(separator: ", ")).")
    var roles: [String] = []
    @Flag(name: .customLong("operator"), help: "Add the deployment-wide Platform Operator role.")
    var platformOperator = false
    @Option(help: "The token's subject (sub).")
    var subject = "developer"
    @Option(help: "Lifetime: seconds, or a number with s, m, h or d (e.g. 1h).")
    var ttl = "1h"
    @Option(help: "The development key PEM (default: GANTRY_DEV_TOKEN_KEY_FILE).")
    var keyFile: String?

    func validate() throws {
        if let tenant, UUID(uuidString: tenant) == nil { throw ValidationError("--tenant '\(tenant)' is not a UUID") }
        if !roles.isEmpty && tenant == nil { throw ValidationError("--role needs --tenant") }
        if tenant != nil && roles.isEmpty { throw ValidationError("--tenant needs at least one --role") }
        if tenant == nil && !platformOperator { throw ValidationError("give --tenant with --role, or --operator") }
        for role in roles where TenantRole(rawValue: role) == nil {
            throw ValidationError("--role '\(role)' is not one of \(TenantRole.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard Self.seconds(ttl) != nil else { throw ValidationError("--ttl '\(ttl)' is not a positive duration such as 3600, 15m or 1h") }
    }

    /// `90`, `90s`, `15m`, `1h`, `7d` in seconds; nil when malformed or not positive.
    static func seconds(_ text: String) -> TimeInterval? {
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
        var number = Substring(text)
        var unit = 1.0
        if let last = text.last, let factor = units[last] {
            number = text.dropLast()
            unit = factor
        }
        guard let value = Double(number), value > 0, value.isFinite else { return nil }
        return value * unit
    }

    func run() async throws {
        guard let file = keyFile ?? ProcessInfo.processInfo.environment["GANTRY_DEV_TOKEN_KEY_FILE"], !file.isEmpty else {
            throw CLIError("no development key: set GANTRY_DEV_TOKEN_KEY_FILE (scripts/env.sh makes .run/dev-token-key.pem) or --key-file")
        }
        let pem: String
        do { pem = try String(contentsOfFile: file, encoding: .utf8) } catch {
            throw CLIError("cannot read the development key \(file): \(error.localizedDescription)")
        }
        let signer: DevelopmentTokens
        do { signer = try await DevelopmentTokens(pem: pem) } catch {
            throw CLIError("\(file) is not an ES256 (P-256) private key PEM")
        }
        var tenants: [String: [TenantRole]] = [:]
        if let tenant { tenants[tenant.lowercased()] = roles.compactMap(TenantRole.init(rawValue:)) }
        let token = try await signer.token(subject: subject, tenantRoles: tenants,
                                           platformRoles: platformOperator ? [.platformOperator] : [],
                                           lifetime: Self.seconds(ttl) ?? 3600)
        print(token)
    }
}
