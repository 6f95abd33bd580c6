import Foundation
import HTTPTypes
import Hummingbird

/// Who may call one route (docs/ROLES.md).
public enum AccessRule: Sendable, Equatable {
    /// The route has a `{tenantId}` segment; the caller needs one of these roles in that tenant.
    case tenant(Set<TenantRole>)
    /// Deployment-wide routes (tenants, feeds, rescans, re-evaluations): the platform operator only.
    case platformOperator
    /// Any authenticated user (deployment-wide reference data such as prices).
    case anyUser

    /// Security Reader and up: findings, assessments, score, inventory, SBOM, lists.
    public static let readers = AccessRule.tenant([.owner, .contributor, .securityAdmin, .securityReader])
    /// Security Admin and Owner: disable rules, VEX, alert rules and channels.
    public static let securityAdmins = AccessRule.tenant([.owner, .securityAdmin])
    /// Contributor and Owner: registries and discovery settings.
    public static let contributors = AccessRule.tenant([.owner, .contributor])
    /// Owner only: subscriptions, plans, trial, usage and invoices.
    public static let owners = AccessRule.tenant([.owner])
}

/// One row of a service's access table: a route template exactly as in its OpenAPI spec
/// (`/v1/tenants/{tenantId}/...`), the HTTP method and who may call it.
public struct RouteAccess: Sendable, Equatable {
    public let method: HTTPRequest.Method
    public let template: String
    public let rule: AccessRule

    public init(_ method: HTTPRequest.Method, _ template: String, _ rule: AccessRule) {
        self.method = method
        self.template = template
        self.rule = rule
    }

    var segments: [Substring] { template.split(separator: "/", omittingEmptySubsequences: true) }
}

/// A service's declarative access table: every public route with its rule. Requests matching no row are
/// denied (fail closed). A `.tenant` rule requires a `{tenantId}` segment in its template.
public struct AccessPolicy: Sendable {
    public let routes: [RouteAccess]

    public init(_ routes: [RouteAccess]) {
        for route in routes {
            if case .tenant = route.rule {
                precondition(route.template.contains("{tenantId}"), "a tenant rule needs {tenantId}: \(route.template)")
            }
        }
        self.routes = routes
    }

    /// The row matching `method` and the path's segments, with the path's parameter values (percent-decoded);
    /// literal segments win over parameters when several rows match.
    public func match(_ method: HTTPRequest.Method, path: String) -> (route: RouteAccess, parameters: [String: String])? {
        let segments = path.split(separator: "/", omittingEmptySubsequences: true)
        var best: (route: RouteAccess, parameters: [String: String], literals: Int)?
        for route in routes where route.method == method {
            let template = route.segments
            guard template.count == segments.count else { continue }
            var parameters: [String: String] = [:]
            var literals = 0
            var matched = true
            for (expected, actual) in zip(template, segments) {
                if expected.hasPrefix("{") && expected.hasSuffix("}") {
                    parameters[String(expected.dropFirst().dropLast())] = String(actual).removingPercentEncoding ?? String(actual)
                } else if expected == actual {
                    literals += 1
                } else {
                    matched = false
                    break
                }
            }
            if matched, literals > (best?.literals ?? -1) { best = (route, parameters, literals) }
        }
        return best.map { ($0.route, $0.parameters) }
    }

    /// Whether a path needs no user token: the probes, the spec, `/internal/` (service tokens, checked by
    /// `ServiceAuthMiddleware`) and the registry webhook intake `/v1/events/<kind>` (per-registry secrets).
    public static func isExempt(path: String) -> Bool {
        let segments = path.split(separator: "/", omittingEmptySubsequences: true).map { $0.lowercased() }
        guard let first = segments.first else { return false }
        if segments.count == 1, ["healthz", "readyz", "metrics", "openapi.yaml"].contains(first) { return true }
        if first == "internal" { return true }
        return segments.count == 3 && first == "v1" && segments[1] == "events"
    }
}

/// Requires a valid user token (`Authorization: Bearer <JWT>`) on every non-exempt route and enforces the
/// service's `AccessPolicy`: 401 with `WWW-Authenticate: Bearer` (RFC 6750 §3) for a missing or invalid
/// token, 400 for a `{tenantId}` that is not a UUID, 403 when the caller lacks the role or the route has no row.
/// With `ownership`, a route with both `{tenantId}` and `{subscriptionId}` then answers 404 when the subscription
/// is not the tenant's (503 when discovery cannot tell). All are problem+json (RFC 9457).
public struct UserAuthMiddleware<Context: RequestContext>: RouterMiddleware {
    let authenticator: UserAuthenticator
    let policy: AccessPolicy
    let ownership: SubscriptionOwnership?

    public init(authenticator: UserAuthenticator, policy: AccessPolicy, ownership: SubscriptionOwnership? = nil) {
        self.authenticator = authenticator
        self.policy = policy
        self.ownership = ownership
    }

    public func handle(_ request: Request, context: Context,
                       next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        if AccessPolicy.isExempt(path: path) { return try await next(request, context) }
        guard let header = request.headers[.authorization], header.count > 7,
              header.prefix(7).lowercased() == "bearer " else {
            return Self.unauthorized(path, "this route requires a user token (Authorization: Bearer …)", error: nil)
        }
        let user: AuthenticatedUser
        do {
            user = try await authenticator.authenticate(String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces))
        } catch {
            return Self.unauthorized(path, "the bearer token was refused: \(error)", error: "invalid_token")
        }
        guard let (route, parameters) = policy.match(request.method, path: path) else {
            return Self.forbidden(path, "no access rule covers \(request.method.rawValue) \(path); denied")
        }
        switch route.rule {
        case .anyUser:
            break
        case .platformOperator:
            guard user.platformRoles.contains(.platformOperator) else {
                return Self.forbidden(path, "\(request.method.rawValue) \(route.template) requires the Platform Operator role")
            }
        case .tenant(let allowed):
            let tenant = parameters["tenantId"] ?? ""
            guard UUID(uuidString: tenant) != nil else {
                return ProblemMiddleware<Context>.response(status: .badRequest,
                                                           detail: "tenantId '\(tenant.prefix(100))' is not a UUID", instance: path)
            }
            let held = user.roles(in: tenant)
            guard !held.isDisjoint(with: allowed) else {
                let names = TenantRole.allCases.filter(allowed.contains).map(\.rawValue).joined(separator: ", ")
                return Self.forbidden(path, held.isEmpty
                    ? "the token grants no role in tenant \(tenant)"
                    : "\(request.method.rawValue) \(route.template) requires one of: \(names)")
            }
        }
        if let ownership, let tenant = parameters["tenantId"], let subscription = parameters["subscriptionId"] {
            do {
                try await ownership.check(tenant: tenant, subscription: subscription)
            } catch let problem as ProblemError {
                return ProblemMiddleware<Context>.response(status: problem.status, detail: problem.detail, instance: path)
            }
        }
        return try await AuthenticatedUser.$current.withValue(user) { try await next(request, context) }
    }

    static func unauthorized(_ path: String, _ detail: String, error: String?) -> Response {
        ProblemMiddleware<Context>.challenge(status: .unauthorized, detail: detail, instance: path, realm: "gantry", error: error)
    }

    static func forbidden(_ path: String, _ detail: String) -> Response {
        ProblemMiddleware<Context>.challenge(status: .forbidden, detail: detail, instance: path, realm: "gantry",
                                            error: "insufficient_scope")
    }
}
