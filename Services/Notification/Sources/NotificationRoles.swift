import GantryRuntime
import HTTPTypes

extension AccessPolicy {
    /// Who may call each public route of notification (docs/ROLES.md); a route missing here is denied.
    /// Readers see channels, rules, alerts and deliveries; Security Admins manage channels and alert rules.
    public static let notification: AccessPolicy = {
        let subscription = "/v1/tenants/{tenantId}/subscriptions/{subscriptionId}"
        return AccessPolicy([
            RouteAccess(.post, "\(subscription)/channels", .securityAdmins),
            RouteAccess(.get, "\(subscription)/channels", .readers),
            RouteAccess(.get, "\(subscription)/channels/{channelId}", .readers),
            RouteAccess(.delete, "\(subscription)/channels/{channelId}", .securityAdmins),
            RouteAccess(.post, "\(subscription)/webhooks", .securityAdmins),
            RouteAccess(.get, "\(subscription)/webhooks", .readers),
            RouteAccess(.post, "\(subscription)/rules", .securityAdmins),
            RouteAccess(.get, "\(subscription)/rules", .readers),
            RouteAccess(.get, "\(subscription)/rules/{ruleId}", .readers),
            RouteAccess(.delete, "\(subscription)/rules/{ruleId}", .securityAdmins),
            RouteAccess(.get, "\(subscription)/alerts", .readers),
            RouteAccess(.get, "\(subscription)/deliveries", .readers),
            RouteAccess(.get, "\(subscription)/deliveries/{deliveryId}", .readers),
            RouteAccess(.post, "\(subscription)/deliveries/{deliveryId}/redeliver", .securityAdmins),
        ])
    }()
}
