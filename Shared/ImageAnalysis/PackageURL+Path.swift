extension PackageURL {
    /// A purl whose namespace and name come from one slash-separated path, each segment encoded on its own
    /// (purl spec: "The namespace … segments must be percent-encoded", "golang" and "maven" types):
    /// `makePath(type: "golang", path: "github.com/pkg/errors", version: "v0.9.1")` gives
    /// `pkg:golang/github.com/pkg/errors@v0.9.1`.
    static func makePath(type: String, path: String, version: String) -> String {
        let segments = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        guard let name = segments.last else { return make(type: type, namespace: nil, name: path, version: version, qualifiers: [:]) }
        // `make` encodes a namespace whole (slashes too), so encode each segment as a name and splice.
        let namespace = segments.dropLast().map { segment in
            String(make(type: "x", namespace: nil, name: segment, version: "", qualifiers: [:]).dropFirst(6).dropLast())
        }
        let tail = make(type: type, namespace: nil, name: name, version: version, qualifiers: [:])
        guard !namespace.isEmpty else { return tail }
        let prefix = "pkg:" + type + "/"
        return prefix + namespace.joined(separator: "/") + "/" + tail.dropFirst(prefix.count)
    }
}
