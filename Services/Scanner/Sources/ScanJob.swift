import Foundation

/// A claimed scan job.
struct ScanJob: Sendable {
    var id: UUID
    var tenantID: UUID
    var subscriptionID: UUID
    var registryID: UUID
    var repository: String
    var digest: String
    var tag: String?
    var trigger: String
    var attempt: Int
    var maxAttempts: Int

    /// Queue order: pushes and imports first, then manual scans, then rescans.
    static func priority(of trigger: String) -> Int {
        switch trigger {
        case "push", "import": 0
        case "manual": 1
        default: 2
        }
    }
}
