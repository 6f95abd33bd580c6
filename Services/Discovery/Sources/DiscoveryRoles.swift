import GantryRuntime
import HTTPTypes

extension AccessPolicy {
    /// Who may call each public route of discovery (docs/ROLES.md); a route missing here is denied.
    public static let discovery = AccessPolicy([
        RouteAccess(.post, "/v1/tenants", .platformOperator),
        RouteAccess(.post, "/v1/tenants/{tenantId}/subscriptions", .owners),
        RouteAccess(.put, "/v1/tenants/{tenantId}/subscriptions/{subscriptionId}/plan", .owners),
        RouteAccess(.post, "/v1/tenants/{tenantId}/subscriptions/{subscriptionId}/registries", .contributors),
        RouteAccess(.get, "/v1/tenants/{tenantId}/subscriptions/{subscriptionId}/registries", .readers),
        RouteAccess(.get, "/v1/tenants/{tenantId}/audit", .readers),
        RouteAccess(.get, "/v1/tenants/{tenantId}/subscriptions/{subscriptionId}/plan/history", .readers),
        RouteAccess(.post, "/v1/tenants/{tenantId}/subscriptions/{subscriptionId}/registries/{registryId}/crawls", .contributors),
        RouteAccess(.get, "/v1/tenants/{tenantId}/subscriptions/{subscriptionId}/registries/{registryId}/crawls", .readers),
        RouteAccess(.get, "/v1/tenants/{tenantId}/subscriptions/{subscriptionId}/registries/{registryId}/repositories", .readers),
        RouteAccess(.get, "/v1/tenants/{tenantId}/subscriptions/{subscriptionId}/registries/{registryId}/tags", .readers),
        RouteAccess(.get, "/v1/tenants/{tenantId}/subscriptions/{subscriptionId}/registries/{registryId}/digests", .readers),
    ])
}
