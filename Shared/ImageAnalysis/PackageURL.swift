/// Builds package URLs as the purl specification defines them
/// (https://github.com/package-url/purl-spec, "PURL specification", sections "Rules for each purl
/// component" and "Character encoding"): `pkg:type/namespace/name@version?qualifiers`, with
/// qualifiers sorted by key and every component percent-encoded except unreserved characters.
enum PackageURL {
    static func make(type: String, namespace: String?, name: String, version: String,
                     qualifiers: [String: String]) -> String {
        var purl = "pkg:" + type + "/"
        if let namespace, !namespace.isEmpty { purl += encode(namespace) + "/" }
        purl += encode(name) + "@" + encode(version)
        let pairs = qualifiers.filter { !$0.value.isEmpty }.sorted { $0.key < $1.key }
        if !pairs.isEmpty {
            purl += "?" + pairs.map { $0.key + "=" + encode($0.value) }.joined(separator: "&")
        }
        return purl
    }

    private static func encode(_ component: String) -> String {
        var encoded = ""
        for byte in component.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: "_"),
                 UInt8(ascii: "~"):
                encoded.append(Character(UnicodeScalar(byte)))
            default:
                let hex = Array("0123456789ABCDEF")
                encoded += "%" + String(hex[Int(byte >> 4)]) + String(hex[Int(byte & 0xF)])
            }
        }
        return encoded
    }
}
