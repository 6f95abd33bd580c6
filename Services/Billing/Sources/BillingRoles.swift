import GantryRuntime
import HTTPTypes

extension AccessPolicy {
    /// Who may call each public route of billing (docs/ROLES.md); a route missing here is denied.
    /// Prices are the deployment's reference data: any user reads them, the operator sets them.
    public static let billing: AccessPolicy = {
        let subscription = "/v1/tenants/{tenantId}/subscriptions/{subscriptionId}"
        return AccessPolicy([
            RouteAccess(.get, "/v1/prices", .anyUser),
            RouteAccess(.post, "/v1/prices", .platformOperator),
            RouteAccess(.get, "\(subscription)/trial", .owners),
            RouteAccess(.put, "\(subscription)/trial", .owners),
            RouteAccess(.get, "\(subscription)/usage", .owners),
            RouteAccess(.get, "\(subscription)/invoices/{month}", .owners),
        ])
    }()
}
