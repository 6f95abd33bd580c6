/// One challenge from a `WWW-Authenticate` header (RFC 9110 §11.6.1, grammar RFC 9110 §11.2):
/// a scheme and its auth-params, for example
/// `Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"`.
public struct AuthChallenge: Sendable, Hashable {
    /// The scheme, lowercased: `basic`, `bearer`, …
    public var scheme: String
    /// The auth-params with lowercased names and unquoted, unescaped values.
    public var parameters: [String: String]

    public init(scheme: String, parameters: [String: String]) {
        self.scheme = scheme
        self.parameters = parameters
    }

    /// `realm`, the token endpoint URL for Bearer (Distribution "Token Authentication Specification").
    public var realm: String? { parameters["realm"] }
    /// `service`, passed back to the token endpoint.
    public var service: String? { parameters["service"] }
    /// `scope`, passed back to the token endpoint (space-separated scopes allowed).
    public var scope: String? { parameters["scope"] }

    /// Parses one header value, which may hold several comma-separated challenges.
    /// Unparseable trailing text is ignored; a value with no scheme yields `[]`.
    public static func parse(_ header: String) -> [AuthChallenge] {
        var scanner = Scanner(Array(header.utf8))
        var challenges: [AuthChallenge] = []
        while true {
            scanner.skip { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") || $0 == UInt8(ascii: ",") }
            guard let scheme = scanner.token(), !scheme.isEmpty else { break }
            var parameters: [String: String] = [:]
            while true {
                let mark = scanner.position
                scanner.skip { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") || $0 == UInt8(ascii: ",") }
                guard let name = scanner.token(), !name.isEmpty else { break }
                scanner.skip { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
                guard scanner.consume(UInt8(ascii: "=")) else {
                    // A bare token is the next challenge's scheme (or a token68 we do not use).
                    scanner.position = mark
                    break
                }
                scanner.skip { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
                let value = scanner.quotedString() ?? scanner.token() ?? ""
                parameters[name.lowercased()] = value
            }
            challenges.append(AuthChallenge(scheme: scheme.lowercased(), parameters: parameters))
        }
        return challenges
    }

    /// A byte cursor over the header; tokens are RFC 9110 `tchar` runs.
    private struct Scanner {
        let bytes: [UInt8]
        var position = 0

        init(_ bytes: [UInt8]) { self.bytes = bytes }

        mutating func skip(while predicate: (UInt8) -> Bool) {
            while position < bytes.count, predicate(bytes[position]) { position += 1 }
        }

        mutating func consume(_ byte: UInt8) -> Bool {
            guard position < bytes.count, bytes[position] == byte else { return false }
            position += 1
            return true
        }

        static func isTokenCharacter(_ byte: UInt8) -> Bool {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"):
                true
            default:
                Array("!#$%&'*+-.^_`|~/:".utf8).contains(byte)
            }
        }

        mutating func token() -> String? {
            let start = position
            skip(while: Self.isTokenCharacter)
            guard position > start else { return nil }
            return String(decoding: bytes[start..<position], as: UTF8.self)
        }

        mutating func quotedString() -> String? {
            guard consume(UInt8(ascii: "\"")) else { return nil }
            var value: [UInt8] = []
            while position < bytes.count {
                let byte = bytes[position]
                position += 1
                if byte == UInt8(ascii: "\"") { return String(decoding: value, as: UTF8.self) }
                if byte == UInt8(ascii: "\\"), position < bytes.count {
                    value.append(bytes[position])
                    position += 1
                } else {
                    value.append(byte)
                }
            }
            // Unterminated: take what there is rather than fail the whole header.
            return String(decoding: value, as: UTF8.self)
        }
    }
}
