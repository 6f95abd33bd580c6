import GantryRuntime
import HTTPTypes

extension AccessPolicy {
    /// Who may call each public route of ingestion (docs/ROLES.md); a route missing here is denied.
    /// The webhook intake `/v1/events/<kind>` is exempt (per-registry secrets). `GET /v1/events` names a registry
    /// but no tenant, so it is an operator's diagnostic route.
    public static let ingestion = AccessPolicy([
        RouteAccess(.get, "/v1/events", .platformOperator),
        RouteAccess(.get, "/v1/rescans", .platformOperator),
        RouteAccess(.put, "/v1/tenants/{tenantId}/registries/{registryId}/webhook-secret", .contributors),
        RouteAccess(.get, "/v1/tenants/{tenantId}/registries/{registryId}/images", .readers),
        RouteAccess(.post, "/v1/tenants/{tenantId}/registries/{registryId}/imports", .contributors),
        RouteAccess(.get, "/v1/tenants/{tenantId}/registries/{registryId}/imports", .readers),
        RouteAccess(.get, "/v1/tenants/{tenantId}/registries/{registryId}/imports/{importId}", .readers),
    ])
}
