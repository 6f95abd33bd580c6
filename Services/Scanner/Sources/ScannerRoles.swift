import GantryRuntime
import HTTPTypes

extension AccessPolicy {
    /// Who may call each public route of the scanner (docs/ROLES.md); a route missing here is denied.
    public static let scanner = AccessPolicy([
        RouteAccess(.get, "/v1/feeds", .platformOperator),
        RouteAccess(.get, "/v1/feeds/operations", .platformOperator),
        RouteAccess(.get, "/v1/feeds/changes", .platformOperator),
        RouteAccess(.get, "/v1/reevaluations", .platformOperator),
        RouteAccess(.get, "/v1/tenants/{tenantId}/scans", .readers),
        RouteAccess(.get, "/v1/tenants/{tenantId}/images/{digest}/inventory", .readers),
        RouteAccess(.get, "/v1/tenants/{tenantId}/images/{digest}/sbom", .readers),
    ])
}
