import Synchronization

/// Whether the service finished start-up (migrations applied); `/readyz` and background workers wait on it.
public final class Readiness: Sendable {
    private let ready = Atomic<Bool>(false)

    public init() {}

    public var isReady: Bool { ready.load(ordering: .acquiring) }

    public func markReady() { ready.store(true, ordering: .releasing) }

    /// Returns once ready (polls every 50 ms), or when the task is cancelled.
    public func waitUntilReady() async {
        while !isReady && !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(50))
        }
    }
}
