/// Bounds on what the client accepts from a registry and how patiently it retries.
///
/// Registries are untrusted input: every size a registry reports or sends is checked against
/// these limits, and exceeding one is `RegistryError.tooLarge`.
public struct RegistryLimits: Sendable, Hashable {
    /// Largest manifest or index body accepted, in bytes (default 4 MiB, the size the
    /// distribution spec, "Pushing Manifests", says registries should accept at least).
    public var maxManifestBytes: Int
    /// Most layers an image manifest may list (default 256).
    public var maxLayers: Int
    /// Largest blob fetched, in bytes (default 8 GiB).
    public var maxBlobBytes: Int64
    /// Largest token-endpoint or error body read, in bytes (default 1 MiB).
    public var maxTokenResponseBytes: Int
    /// Retries after 429, 502, 503 or 504 before giving up (default 3; 0 disables retrying).
    public var maxRetries: Int
    /// First backoff delay; doubles on each retry (default 0.5 s).
    public var initialBackoff: Duration
    /// Ceiling on any one wait, including a registry's `Retry-After` (default 30 s).
    public var maxBackoff: Duration
    /// Deadline for one manifest, token or error exchange (default 60 s).
    public var requestTimeout: Duration
    /// Deadline for one blob download (default 1 hour).
    public var blobTimeout: Duration
    /// Most redirects followed for one request (default 5).
    public var maxRedirects: Int

    public init(
        maxManifestBytes: Int = 4 * 1024 * 1024,
        maxLayers: Int = 256,
        maxBlobBytes: Int64 = 8 * 1024 * 1024 * 1024,
        maxTokenResponseBytes: Int = 1024 * 1024,
        maxRetries: Int = 3,
        initialBackoff: Duration = .milliseconds(500),
        maxBackoff: Duration = .seconds(30),
        requestTimeout: Duration = .seconds(60),
        blobTimeout: Duration = .seconds(3600),
        maxRedirects: Int = 5
    ) {
        self.maxManifestBytes = maxManifestBytes
        self.maxLayers = maxLayers
        self.maxBlobBytes = maxBlobBytes
        self.maxTokenResponseBytes = maxTokenResponseBytes
        self.maxRetries = maxRetries
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
        self.requestTimeout = requestTimeout
        self.blobTimeout = blobTimeout
        self.maxRedirects = maxRedirects
    }
}
