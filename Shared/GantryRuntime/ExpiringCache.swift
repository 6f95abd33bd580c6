/// Values loaded from elsewhere (another service, the database) and kept for a while: each for the lifetime
/// `lifetime` gives it when it is stored (a found registry longer than a "no such registry"), at most `capacity`
/// of them (when full, expired entries are dropped first, then the half that would expire soonest). Concurrent
/// misses for one key share one load; a load that throws is not kept, and every caller waiting on it gets its
/// error. `removeAll(where:)` forgets entries at once, and a load running meanwhile is not kept either (it may have
/// read the old state).
public actor ExpiringCache<Key: Hashable & Sendable, Value: Sendable> {
    private struct Entry {
        var value: Value
        var expires: ContinuousClock.Instant
    }

    private let capacity: Int
    private let lifetime: @Sendable (Value) -> Duration
    private var entries: [Key: Entry] = [:]
    private var loading: [Key: Task<Value, any Error>] = [:]
    /// Bumped by `removeAll(where:)`: a load started before it is answered but not stored.
    private var generation = 0

    /// - Parameters:
    ///   - capacity: the most entries kept (at least 1).
    ///   - lifetime: how long a value is kept, from when it is stored.
    public init(capacity: Int, lifetime: @escaping @Sendable (Value) -> Duration) {
        self.capacity = max(1, capacity)
        self.lifetime = lifetime
    }

    /// The value for `key`: kept, being loaded by another caller, or loaded now by `load`.
    /// - Throws: what `load` throws (nothing is kept then).
    public func value(for key: Key, load: @escaping @Sendable () async throws -> Value) async throws -> Value {
        if let entry = entries[key], entry.expires > .now { return entry.value }
        if let running = loading[key] { return try await running.value }
        let task = Task { try await load() }
        loading[key] = task
        let started = generation
        // Only this load's own entry: `removeAll` may have dropped it and a newer load taken its place.
        defer { if loading[key] == task { loading[key] = nil } }
        let value = try await task.value
        if generation == started { store(key, value) }
        return value
    }

    /// Forgets the kept entries for which `shouldRemove` is true, and every load running now: callers from now on
    /// load afresh, and what the running loads return (read before the removal) is not kept.
    public func removeAll(where shouldRemove: @Sendable (Key, Value) -> Bool) {
        entries = entries.filter { !shouldRemove($0.key, $0.value.value) }
        loading.removeAll()
        generation += 1
    }

    /// How many entries are kept (expired ones included until they are dropped).
    public var count: Int { entries.count }

    private func store(_ key: Key, _ value: Value) {
        let now = ContinuousClock.now
        if entries.count >= capacity, entries[key] == nil {
            entries = entries.filter { $0.value.expires > now }
            if entries.count >= capacity {
                // Still full of live entries: drop the half that would expire soonest, so short-lived values (a
                // flood of "no such host" answers) go before long-lived ones.
                let keep = entries.sorted { $0.value.expires > $1.value.expires }.prefix(capacity / 2)
                entries = Dictionary(uniqueKeysWithValues: keep.map { ($0.key, $0.value) })
            }
        }
        entries[key] = Entry(value: value, expires: now + lifetime(value))
    }
}
