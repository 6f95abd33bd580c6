import Foundation

/// The dependency list `cargo auditable` embeds in Rust binaries: zlib-compressed JSON (RFC 1950) in an
/// ELF/PE section `.dep-v0` (Mach-O: `__DATA,.dep-v0`), schema `{"packages": [{"name", "version",
/// "source", "kind", "dependencies", "root"}]}` (rust-secure-code/cargo-auditable, "auditable-serde").
struct CargoAuditable: Codable, Hashable, Sendable {
    struct Package: Codable, Hashable, Sendable {
        var name: String
        var version: String
        /// `crates.io`, `local`, `git`, `registry` or another source kind.
        var source: String
        /// `runtime` (linked in) or `build` (build-time only); absent means runtime.
        var kind: String?
        var root: Bool?
    }

    var packages: [Package]

    /// The section name in ELF and PE; Mach-O uses it as the section name within `__DATA`.
    static let sectionName = ".dep-v0"
    /// cargo-auditable refuses to write more than this; Gantry refuses to inflate more.
    static let maxJSONBytes = 8 * 1024 * 1024

    /// The embedded dependency list of `bytes`, or nil for an executable without a `.dep-v0` section.
    /// - Throws: `CargoAuditableError` for a section that is not valid zlib or JSON, or inflates past
    ///   `maxJSONBytes`; `ExecutableImageError` (wrapped) for a broken executable.
    static func read(_ bytes: [UInt8]) throws(CargoAuditableError) -> CargoAuditable? {
        let image: ExecutableImage
        do { image = try ExecutableImage(bytes) } catch { throw .executable(error) }
        guard let section = image.section(named: sectionName) else { return nil }
        let compressed: ArraySlice<UInt8>
        do { compressed = try image.contents(of: section) } catch { throw .executable(error) }
        let json = try Zlib.inflate(compressed, limit: maxJSONBytes)
        do {
            return try JSONDecoder().decode(CargoAuditable.self, from: Data(json))
        } catch {
            throw .invalidJSON(String(describing: error).prefix(200).description)
        }
    }
}

enum CargoAuditableError: Error, Equatable, CustomStringConvertible {
    case executable(ExecutableImageError)
    case invalidZlib(String)
    case tooLarge(limit: Int)
    case invalidJSON(String)

    var description: String {
        switch self {
        case .executable(let error): "\(error)"
        case .invalidZlib(let detail): "cargo-auditable section is not valid zlib data: \(detail)"
        case .tooLarge(let limit): "cargo-auditable data inflates past \(ByteCount.describe(Int64(limit)))"
        case .invalidJSON(let detail): "cargo-auditable data is not the expected JSON: \(detail)"
        }
    }
}

/// zlib (RFC 1950) decompression through libarchive's gzip filter: the deflate body is rewrapped in a
/// gzip member (RFC 1952) and read with the raw format; the Adler-32 trailer is then checked here, since
/// the gzip trailer carries no checksum libarchive could verify.
enum Zlib {
    static func inflate(_ stream: ArraySlice<UInt8>, limit: Int) throws(CargoAuditableError) -> [UInt8] {
        guard stream.count >= 6 else { throw .invalidZlib("\(stream.count) bytes is shorter than a zlib stream") }
        let cmf = stream[stream.startIndex]
        let flags = stream[stream.startIndex + 1]
        guard cmf & 0x0F == 8, cmf >> 4 <= 7, (UInt16(cmf) << 8 | UInt16(flags)) % 31 == 0 else {
            throw .invalidZlib("bad header \(cmf) \(flags)")
        }
        guard flags & 0x20 == 0 else { throw .invalidZlib("preset dictionaries are not supported") }
        let body = stream[(stream.startIndex + 2)..<(stream.endIndex - 4)]
        // Gzip header: magic, CM=deflate, no flags, mtime 0, XFL 0, OS unknown; zero CRC and size trailer.
        var member: [UInt8] = [0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 0xFF]
        member += body
        member += [UInt8](repeating: 0, count: 8)
        let result = member.withUnsafeBytes { buffer in
            Result { () throws(LayerReadError) -> [UInt8] in
                let archive = try ArchiveStream(buffer, format: .gzipRaw)
                guard try archive.next() != nil else { throw .corrupt("no data", entriesRead: 0) }
                return try archive.readData(path: CargoAuditable.sectionName, declaredSize: 0, limit: limit)
            }
        }
        let inflated: [UInt8]
        switch result {
        case .success(let bytes): inflated = bytes
        case .failure(.fileTooLarge): throw .tooLarge(limit: limit)
        case .failure(let error): throw .invalidZlib(error.description)
        }
        let trailer = stream.suffix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        guard adler32(inflated) == trailer else { throw .invalidZlib("Adler-32 checksum mismatch") }
        return inflated
    }

    static func adler32(_ bytes: [UInt8]) -> UInt32 {
        var a: UInt32 = 1
        var b: UInt32 = 0
        // 5552 is the largest run before the sums can overflow (zlib's NMAX).
        var index = 0
        while index < bytes.count {
            let end = min(index + 5552, bytes.count)
            for byte in bytes[index..<end] {
                a += UInt32(byte)
                b += a
            }
            a %= 65521
            b %= 65521
            index = end
        }
        return b << 16 | a
    }
}
