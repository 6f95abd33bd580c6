/// Media types the client negotiates and recognises (OCI image spec "Media Types";
/// Docker "Image Manifest V2, Schema 2").
public enum MediaType {
    /// OCI image manifest (image-spec `manifest.md`).
    public static let ociManifest = "application/vnd.oci.image.manifest.v1+json"
    /// OCI image index (image-spec `image-index.md`).
    public static let ociIndex = "application/vnd.oci.image.index.v1+json"
    /// Docker image manifest, schema 2.
    public static let dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
    /// Docker manifest list, schema 2.
    public static let dockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
    /// Docker schema 1 manifest (deprecated; asked for only to reject it clearly).
    public static let dockerSchema1 = "application/vnd.docker.distribution.manifest.v1+json"
    /// Docker schema 1 signed manifest.
    public static let dockerSchema1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws"
    /// OCI image configuration (image-spec `config.md`).
    public static let ociConfig = "application/vnd.oci.image.config.v1+json"
    /// Docker image configuration.
    public static let dockerConfig = "application/vnd.docker.container.image.v1+json"

    /// Every manifest type sent in `Accept`, image manifests first.
    public static let acceptedManifests = [ociManifest, ociIndex, dockerManifest, dockerManifestList,
                                           dockerSchema1Signed, dockerSchema1]

    /// True for an image manifest (OCI or Docker schema 2).
    public static func isImageManifest(_ type: String) -> Bool {
        type == ociManifest || type == dockerManifest
    }

    /// True for an index (OCI image index or Docker manifest list).
    public static func isIndex(_ type: String) -> Bool {
        type == ociIndex || type == dockerManifestList
    }

    /// True for a Docker schema 1 manifest, signed or not.
    public static func isSchema1(_ type: String) -> Bool {
        type == dockerSchema1 || type == dockerSchema1Signed
    }

    /// True for an image configuration (OCI or Docker).
    public static func isImageConfig(_ type: String) -> Bool {
        type == ociConfig || type == dockerConfig
    }
}
