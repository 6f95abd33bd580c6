import Billing
import Discovery
import FindingsPolicy
import Foundation
import GantryRuntime
import GantryTesting
import HTTPTypes
import Ingestion
import NIOHTTP1
import Notification
import Scanner
import ServiceLifecycle
import Testing

/// The role matrix of docs/ROLES.md against the specs, the services' tables and the running services (issue 6, item 5).
@Suite struct RoleMatrixTests {
    @Test("every public route of every spec has a row in its service's table and in docs/ROLES.md, and they agree")
    func everyRouteIsCovered() throws {
        let routes = try Specs.publicRoutes()
        #expect(routes.count > 40, "the specs were not read: \(routes.count) routes")
        let matrix = try Specs.matrix()
        var missingInTables: [String] = []
        var missingInDocument: [String] = []
        for route in routes {
            let policy = try #require(Specs.policies[route.service])
            let method = HTTPRequest.Method(route.method)!
            if let (row, _) = policy.match(method, path: route.template), row.template == route.template {
                if let documented = matrix[route] {
                    for caller in Caller.allCases {
                        #expect(Specs.allows(row.rule, caller) == documented.allowed[caller],
                                "\(route) for \(caller): the table and docs/ROLES.md disagree")
                    }
                } else {
                    missingInDocument.append(route.description)
                }
            } else {
                missingInTables.append(route.description)
            }
        }
        #expect(missingInTables.isEmpty, "routes without an access rule (denied until added): \(missingInTables)")
        #expect(missingInDocument.isEmpty, "routes missing from docs/ROLES.md: \(missingInDocument)")
        // No stale rows: every table row and documented row is a route of its spec.
        let known = Set(routes)
        for (service, policy) in Specs.policies {
            for row in policy.routes {
                let route = SpecRoute(service: service, method: row.method.rawValue, template: row.template)
                #expect(known.contains(route), "table row for a route the spec does not have: \(route)")
            }
        }
        for route in matrix.keys { #expect(known.contains(route), "docs/ROLES.md row for a route the spec lacks: \(route)") }
    }

    @Test("every public route of the six running services × every role: allowed is not 401/403, denied is 403 problem+json")
    func matrixAgainstRunningServices() async throws {
        let routes = try Specs.publicRoutes()
        let matrix = try Specs.matrix()
        let database = try await TestDatabase.create()
        do {
            let env = try TestEnvironment(database: database)
            let services = try await Specs.applications(env)
            try await withRunningServices(services, readyPorts: Array(env.ports.values)) {
                let tenant = UUID().uuidString.lowercased()
                var tokens: [Caller: String] = [:]
                for caller in Caller.allCases {
                    switch caller {
                    case .role(let role): tokens[caller] = try await TestUserTokens.token([tenant: [role]])
                    case .platformOperator: tokens[caller] = try await TestUserTokens.token([:], platform: [.platformOperator])
                    }
                }
                let otherTenantOwner = try await TestUserTokens.token([UUID().uuidString: [.owner]])
                var checked = 0
                for route in routes {
                    let row = try #require(matrix[route], "\(route) is not in docs/ROLES.md")
                    let url = env.url(route.service).absoluteString + Specs.path(route.template, tenant: tenant)
                    let method = HTTPMethod(rawValue: route.method)
                    let body: Data? = ["POST", "PUT", "PATCH"].contains(route.method) ? Data("{}".utf8) : nil
                    var cases = Caller.allCases.map { ($0.description, tokens[$0]!, row.allowed[$0]!) }
                    // A tenant role elsewhere counts for nothing on a tenant's route.
                    let tenantRoute = route.template.contains("{tenantId}")
                    cases.append(("Owner of another tenant", otherTenantOwner, tenantRoute ? false : row.allowed[.role(.owner)]!))
                    for (who, token, allowed) in cases {
                        let reply = try await TestHTTP.send(method, url, body: body, headers: [
                            "Content-Type": "application/json", "Authorization": "Bearer \(token)"])
                        if allowed {
                            #expect(reply.status != 401 && reply.status != 403, "\(route) as \(who): \(reply.status) \(reply.text)")
                        } else {
                            #expect(reply.status == 403, "\(route) as \(who): \(reply.status) \(reply.text)")
                            #expect(reply.header("Content-Type") == "application/problem+json", "\(route) as \(who)")
                        }
                        checked += 1
                    }
                }
                #expect(checked == routes.count * (Caller.allCases.count + 1))
            }
        } catch {
            await database.drop()
            throw error
        }
        await database.drop()
    }
}
