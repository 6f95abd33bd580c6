import GantryRuntime
import HTTPTypes

extension AccessPolicy {
    /// Who may call each public route of findings-policy (docs/ROLES.md); a route missing here is denied.
    /// Readers see findings, scores and exports (a query only reads); Security Admins manage disable rules and VEX.
    public static let findingsPolicy: AccessPolicy = {
        let subscription = "/v1/tenants/{tenantId}/subscriptions/{subscriptionId}"
        return AccessPolicy([
            RouteAccess(.get, "\(subscription)/assessments", .readers),
            RouteAccess(.get, "\(subscription)/assessments/{imageDigest}", .readers),
            RouteAccess(.get, "\(subscription)/subAssessments", .readers),
            RouteAccess(.get, "\(subscription)/assessments/{imageDigest}/subAssessments", .readers),
            RouteAccess(.get, "\(subscription)/assessments/{imageDigest}/subAssessments/{subAssessmentName}", .readers),
            RouteAccess(.get, "\(subscription)/rules", .readers),
            RouteAccess(.post, "\(subscription)/rules", .securityAdmins),
            RouteAccess(.get, "\(subscription)/rules/{ruleId}", .readers),
            RouteAccess(.put, "\(subscription)/rules/{ruleId}", .securityAdmins),
            RouteAccess(.delete, "\(subscription)/rules/{ruleId}", .securityAdmins),
            RouteAccess(.get, "\(subscription)/auditEvents", .readers),
            RouteAccess(.get, "\(subscription)/secureScore", .readers),
            RouteAccess(.get, "\(subscription)/secureScore/history", .readers),
            RouteAccess(.get, "\(subscription)/vexDocuments", .readers),
            RouteAccess(.post, "\(subscription)/vexDocuments", .securityAdmins),
            RouteAccess(.get, "\(subscription)/vexDocuments/{vexDocumentId}", .readers),
            RouteAccess(.delete, "\(subscription)/vexDocuments/{vexDocumentId}", .securityAdmins),
            RouteAccess(.post, "\(subscription)/query", .readers),
            RouteAccess(.get, "\(subscription)/exports/sarif", .readers),
            RouteAccess(.get, "\(subscription)/exports/cyclonedx", .readers),
            RouteAccess(.get, "\(subscription)/exports/csv", .readers),
        ])
    }()
}
