import Foundation

/// `bounded(_:_:_:)` gave up waiting.
public struct TimedOut: Error, CustomStringConvertible {
    /// What was waited for, as given to `bounded`.
    public let what: String
    public let limit: Duration
    public var description: String { "\(what) did not finish within \(limit)" }
}

/// Runs `body` for at most `limit`. On time-out the body's task is cancelled and left behind, and
/// `TimedOut` is thrown at once: a PostgreSQL connection cut in the middle of a transaction can leave a
/// postgres-nio query waiting forever (seen when the server restarts), and a worker must not wait with it.
/// - Throws: `TimedOut`, `CancellationError` when the caller is cancelled, or what `body` throws.
public func bounded<T: Sendable>(_ what: String, _ limit: Duration,
                          _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    let gate = Gate<T>()
    let work = Task { try await body() }
    let timer = Task {
        try await Task.sleep(for: limit)
        if gate.finish(.failure(TimedOut(what: what, limit: limit))) { work.cancel() }
    }
    defer { timer.cancel() }
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { continuation in
            gate.install(continuation)
            Task { gate.finish(await work.result) }
        }
    } onCancel: {
        work.cancel()
        gate.finish(.failure(CancellationError()))
    }
}

/// Resumes a continuation exactly once, with the first result offered (work, timer or cancellation).
private final class Gate<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var continuation: CheckedContinuation<T, any Error>?
    private var early: Result<T, any Error>?
    private var finished = false

    func install(_ continuation: CheckedContinuation<T, any Error>) {
        let result: Result<T, any Error>? = lock.withLock {
            if let early { return early }
            self.continuation = continuation
            return nil
        }
        if let result { continuation.resume(with: result) }
    }

    /// - Returns: whether this was the first result.
    @discardableResult
    func finish(_ result: Result<T, any Error>) -> Bool {
        let (first, waiting): (Bool, CheckedContinuation<T, any Error>?) = lock.withLock {
            guard !finished else { return (false, nil) }
            finished = true
            guard let continuation else {
                early = result
                return (true, nil)
            }
            self.continuation = nil
            return (true, continuation)
        }
        waiting?.resume(with: result)
        return first
    }
}
