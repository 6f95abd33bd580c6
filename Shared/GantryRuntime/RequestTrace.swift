import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// The request ID and W3C trace context of the request being served, propagated on every outgoing call.
public struct RequestTrace: Sendable {
    /// `X-Request-ID`.
    public var requestID: String
    /// `traceparent` (W3C Trace Context, section 3.2): `00-<32 hex trace id>-<16 hex parent id>-<flags>`.
    public var traceparent: String

    /// The trace of the current task, if it serves a request.
    @TaskLocal public static var current: RequestTrace?

    public static let requestIDField = HTTPField.Name("X-Request-ID")!
    public static let traceparentField = HTTPField.Name("traceparent")!

    /// A new trace with random IDs.
    public static func fresh() -> RequestTrace {
        RequestTrace(requestID: randomUUID().uuidString.lowercased(), traceparent: "00-\(randomHex(16))-\(randomHex(8))-01")
    }

    /// A random (version 4) UUID (RFC 9562, section 5.4) from the system generator. Foundation's `UUID()` opens,
    /// reads and closes /dev/urandom on every call on Linux: three system calls for every request.
    static func randomUUID() -> UUID {
        var generator = SystemRandomNumberGenerator()
        var bytes = (generator.next() as UInt64, generator.next() as UInt64)
        return withUnsafeMutableBytes(of: &bytes) { raw in
            raw[6] = (raw[6] & 0x0F) | 0x40  // version 4
            raw[8] = (raw[8] & 0x3F) | 0x80  // variant 10
            return UUID(uuid: (raw[0], raw[1], raw[2], raw[3], raw[4], raw[5], raw[6], raw[7],
                               raw[8], raw[9], raw[10], raw[11], raw[12], raw[13], raw[14], raw[15]))
        }
    }

    /// A child span of this trace: same trace ID, new parent ID.
    public func child() -> RequestTrace {
        let parts = traceparent.split(separator: "-")
        guard parts.count == 4 else { return RequestTrace(requestID: requestID, traceparent: Self.fresh().traceparent) }
        return RequestTrace(requestID: requestID, traceparent: "00-\(parts[1])-\(Self.randomHex(8))-\(parts[3])")
    }

    static func randomHex(_ bytes: Int) -> String {
        // Eight random bytes per call to the system generator and a digit table: this runs for every
        // request and every outgoing call (String(format:) per byte cost ~9 % of a webhook request).
        let digits = Array("0123456789abcdef".utf8)
        var generator = SystemRandomNumberGenerator()
        var text: [UInt8] = []
        text.reserveCapacity(bytes * 2)
        var word: UInt64 = 0
        for index in 0..<bytes {
            if index % 8 == 0 { word = generator.next() }
            let byte = UInt8(truncatingIfNeeded: word >> (UInt64(index % 8) * 8))
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// Accepts a caller's `traceparent` only when it is well formed (lowercase hex, non-zero IDs).
    static func isValidTraceparent(_ value: String) -> Bool {
        let parts = value.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0].count == 2, parts[1].count == 32, parts[2].count == 16, parts[3].count == 2
        else { return false }
        let hex = Set("0123456789abcdef")
        return parts.allSatisfy { $0.allSatisfy(hex.contains) }
            && parts[1] != Substring(String(repeating: "0", count: 32))
            && parts[2] != Substring(String(repeating: "0", count: 16))
    }
}

/// Takes or makes the request ID and trace context, logs with them, and echoes `X-Request-ID` on the response.
public struct RequestTraceMiddleware<Context: RequestContext>: RouterMiddleware {
    public init() {}

    public func handle(_ request: Request, context: Context,
                       next: (Request, Context) async throws -> Response) async throws -> Response {
        var trace = RequestTrace.fresh()
        if let id = request.headers[RequestTrace.requestIDField], !id.isEmpty, id.count <= 128,
           id.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }) {
            trace.requestID = id
        }
        if let parent = request.headers[RequestTrace.traceparentField], RequestTrace.isValidTraceparent(parent) {
            trace.traceparent = parent
        }
        var context = context
        context.logger[metadataKey: "request_id"] = .string(trace.requestID)
        var response = try await RequestTrace.$current.withValue(trace) {
            try await next(request, context)
        }
        response.headers[RequestTrace.requestIDField] = trace.requestID
        return response
    }
}
