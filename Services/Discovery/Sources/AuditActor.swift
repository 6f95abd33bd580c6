import GantryRuntime

/// Who is making the current request, for the audit log and plan history.
enum AuditActor {
    /// The authenticated subject (the user token's `sub`, set per request by `UserAuthMiddleware`), or
    /// `anonymous` outside an authenticated request.
    static func current() -> String {
        AuthenticatedUser.current?.subject ?? "anonymous"
    }
}
