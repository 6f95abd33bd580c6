import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A free TCP port on 127.0.0.1 for a test server.
///
/// Ports come from 20000–32767, below Linux's default ephemeral range (32768–60999), so outgoing
/// connections of the many tests running in parallel never take a port between this check and the
/// server's bind; each port is handed out once per process. The port is checked by binding it and is
/// released before it is returned, so callers that start a server still retry when the bind fails.
package enum FreePort {
    package struct Failure: Error, CustomStringConvertible {
        package let step: String
        package let code: Int32
        package var description: String { "could not find a free port: \(step) failed with errno \(code)" }
    }

    private static let handedOut = Mutex<Set<Int>>([])

    package static func next() throws -> Int {
        for _ in 0..<200 {
            let candidate = Int.random(in: 20000...32767)
            let fresh = handedOut.withLock { $0.insert(candidate).inserted }
            guard fresh else { continue }
            if try isFree(candidate) { return candidate }
        }
        throw Failure(step: "search", code: EADDRINUSE)
    }

    private static func isFree(_ port: Int) throws -> Bool {
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw Failure(step: "socket", code: errno) }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        return bound == 0
    }
}
