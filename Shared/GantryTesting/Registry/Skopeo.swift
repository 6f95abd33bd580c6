import Foundation

/// Pushes corpus images into a test registry with `skopeo` (Debian package `skopeo`).
package enum Skopeo {
    /// `/usr/bin/skopeo`, or `SKOPEO` when set.
    package static var executable: String {
        ProcessInfo.processInfo.environment["SKOPEO"] ?? "/usr/bin/skopeo"
    }

    /// `skopeo copy --dest-tls-verify=false [--all] [--dest-creds u:p] oci-archive:FILE docker://HOST/REPO:TAG`.
    ///
    /// - Parameters:
    ///   - ociArchive: an OCI image-layout tar, for example `Corpus.file("images/alpine-3.7.3.oci.tar")`.
    ///   - registryHost: `127.0.0.1:PORT`.
    ///   - all: copy every manifest of an index (multi-platform images), not only the host's platform.
    ///   - credentials: user and password for the destination.
    /// - Throws: `ProcessRunner.Failure` carrying skopeo's stderr when it fails.
    package static func copy(ociArchive: URL, to registryHost: String, repository: String, tag: String,
                             all: Bool = false, credentials: (String, String)? = nil) throws {
        var arguments = ["copy", "--dest-tls-verify=false"]
        if all { arguments.append("--all") }
        if let credentials { arguments += ["--dest-creds", "\(credentials.0):\(credentials.1)"] }
        arguments += ["oci-archive:\(ociArchive.path)", "docker://\(registryHost)/\(repository):\(tag)"]
        try ProcessRunner.run(executable, arguments)
    }
}
