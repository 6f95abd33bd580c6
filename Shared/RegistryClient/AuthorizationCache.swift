/// Authorization header values per registry, repository scope and user, so that only the first
/// request of a scope meets a 401 (Distribution "Token Authentication Specification": tokens are
/// reused until `expires_in` runs out).
actor AuthorizationCache {
    private struct Entry {
        let value: String
        /// nil for Basic, which never expires.
        let expiry: ContinuousClock.Instant?
    }

    private var entries: [String: Entry] = [:]

    static func key(origin: String, scope: String, username: String?) -> String {
        "\(origin) \(scope) \(username ?? "-")"
    }

    /// The cached `Authorization` value, or nil when none or expired.
    func value(for key: String) -> String? {
        guard let entry = entries[key] else { return nil }
        if let expiry = entry.expiry, expiry <= .now {
            entries[key] = nil
            return nil
        }
        return entry.value
    }

    /// Stores a value; `lifetime` nil keeps it for the client's life.
    func store(_ value: String, for key: String, lifetime: Duration?) {
        entries[key] = Entry(value: value, expiry: lifetime.map { ContinuousClock.now.advanced(by: $0) })
    }

    func remove(_ key: String) {
        entries[key] = nil
    }
}
