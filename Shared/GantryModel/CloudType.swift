/// The cloud a deployment serves; it fixes accepted registry hosts, feed mirrors, prices and features
/// (PRODUCT.md, "The six services").
public enum CloudType: String, Sendable, Codable, CaseIterable {
    case commercial
    case government
    case china
}
