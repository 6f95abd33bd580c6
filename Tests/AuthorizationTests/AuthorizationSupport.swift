import Billing
import Discovery
import FindingsPolicy
import Foundation
import GantryRuntime
import GantryTesting
import Ingestion
import Notification
import Scanner
import ServiceLifecycle
import Testing
import Yams

/// One operation of an OpenAPI spec.
struct SpecRoute: Hashable, CustomStringConvertible {
    let service: GantryServiceName
    let method: String
    let template: String
    var description: String { "\(service.rawValue) \(method) \(template)" }
}

/// One row of the matrix in docs/ROLES.md: which callers may use a route.
struct MatrixRow {
    let route: SpecRoute
    /// Owner, Contributor, Security Admin, Security Reader (in the route's tenant), Platform Operator.
    let allowed: [Caller: Bool]
}

/// Who calls a route in the matrix test.
enum Caller: Hashable, CustomStringConvertible, CaseIterable {
    case role(TenantRole)
    case platformOperator

    static var allCases: [Caller] { TenantRole.allCases.map { .role($0) } + [.platformOperator] }
    var description: String {
        switch self {
        case .role(let role): role.rawValue
        case .platformOperator: "Platform Operator"
        }
    }
}

enum Specs {
    static let services: [GantryServiceName] = GantryServiceName.allCases

    static let policies: [GantryServiceName: AccessPolicy] = [
        .discovery: .discovery, .ingestion: .ingestion, .scanner: .scanner, .findingsPolicy: .findingsPolicy,
        .billing: .billing, .notification: .notification,
    ]

    /// The six services for `env`, built in-process on its database (start them with `withRunningServices`).
    static func applications(_ env: TestEnvironment) async throws -> [any Service] {
        [
            try await buildDiscoveryApplication(configuration: env.configuration(.discovery)),
            try await buildIngestionApplication(configuration: env.configuration(.ingestion)),
            try await buildScannerApplication(configuration: env.configuration(.scanner)),
            try await buildFindingsPolicyApplication(configuration: env.configuration(.findingsPolicy)),
            try await buildBillingApplication(configuration: env.configuration(.billing)),
            try await buildNotificationApplication(configuration: env.configuration(.notification)),
        ]
    }

    /// Every operation of the six specs in `Shared/Contracts/specs`, read with Yams.
    static func routes() throws -> [SpecRoute] {
        var routes: [SpecRoute] = []
        for service in services {
            let file = Corpus.repositoryRoot.appendingPathComponent("Shared/Contracts/specs/\(service.rawValue).yaml")
            let document = try Yams.load(yaml: try String(contentsOf: file, encoding: .utf8)) as? [String: Any]
            let paths = try #require(document?["paths"] as? [String: Any], "\(file.path) has no paths")
            for (template, item) in paths {
                for method in ((item as? [String: Any]) ?? [:]).keys
                where ["get", "put", "post", "delete", "patch", "head", "options"].contains(method) {
                    routes.append(SpecRoute(service: service, method: method.uppercased(), template: template))
                }
            }
        }
        return routes.sorted { $0.description < $1.description }
    }

    /// The routes that need a user token (not internal, not probes, not the webhook intake).
    static func publicRoutes() throws -> [SpecRoute] {
        try routes().filter { !AccessPolicy.isExempt(path: $0.template) }
    }

    /// The matrix table of docs/ROLES.md.
    static func matrix() throws -> [SpecRoute: MatrixRow] {
        let text = try String(contentsOf: Corpus.repositoryRoot.appendingPathComponent("docs/ROLES.md"), encoding: .utf8)
        var rows: [SpecRoute: MatrixRow] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix("| ") {
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count == 8, let service = GantryServiceName(rawValue: cells[0]), cells[2].hasPrefix("`") else { continue }
            let route = SpecRoute(service: service, method: cells[1], template: cells[2].trimmingCharacters(in: ["`"]))
            let flags = cells[3...7].map { $0 == "✓" }
            var allowed: [Caller: Bool] = [:]
            for (caller, flag) in zip(Caller.allCases, flags) { allowed[caller] = flag }
            rows[route] = MatrixRow(route: route, allowed: allowed)
        }
        return rows
    }

    /// Whether `policy` lets `caller` (roles in `tenant` only) call the row's route: the table as data,
    /// compared with the documented matrix.
    static func allows(_ rule: AccessRule, _ caller: Caller) -> Bool {
        switch (rule, caller) {
        case (.anyUser, _): true
        case (.platformOperator, .platformOperator): true
        case (.platformOperator, _): false
        case (.tenant(let roles), .role(let role)): roles.contains(role)
        case (.tenant, .platformOperator): false
        }
    }

    /// A concrete path for `template`: `tenant` for `{tenantId}`, a digest, a month, else fresh UUIDs.
    static func path(_ template: String, tenant: String) -> String {
        template.split(separator: "/").map { segment -> String in
            switch segment {
            case "{tenantId}": tenant
            case "{digest}", "{imageDigest}": "sha256:" + String(repeating: "ab", count: 32)
            case "{month}": "2026-11"
            case _ where segment.hasPrefix("{"): UUID().uuidString.lowercased()
            default: String(segment)
            }
        }.reduce("") { $0 + "/" + $1 }
    }
}
