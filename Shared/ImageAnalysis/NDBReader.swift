/// Extracts the package header blobs from an rpm NDB package database (`Packages.db`, SUSE and
/// openSUSE since rpm 4.15), which Debian's librpm is built without.
///
/// Layout (rpm's `lib/backend/ndb/rpmpkg.c`; all integers 32-bit little-endian):
/// - file header, 32 bytes at offset 0: magic `RpmP`, format version (0), generation, the number of
///   4096-byte slot pages, the next package index;
/// - slots, 16 bytes each, filling the slot pages after the file header: magic `Slot`, package index,
///   block offset, block count (16-byte blocks); a block offset of 0 is a free slot;
/// - at each used slot's block offset, a blob: head (magic `BlbS`, package index, timestamp, length),
///   the header bytes, zero padding to a block boundary, tail (Adler-32 of head, data and padding;
///   length; magic `BlbE`).
/// Every count and offset is checked against the file size before use, and each blob's Adler-32,
/// so a damaged or hostile file yields notes and the intact blobs, never an out-of-bounds read.
enum NDBReader {
    /// What was read: each package's header blob keyed by package index (ascending), and problems.
    struct Contents: Sendable {
        var blobs: [(packageIndex: UInt32, blob: [UInt8])]
        var notes: [String]
    }

    static let fileMagic = magic("RpmP")
    static let slotMagic = magic("Slot")
    static let blobHeadMagic = magic("BlbS")
    static let blobTailMagic = magic("BlbE")
    static let pageSize = 4096
    static let slotSize = 16
    static let blockSize = 16
    static let blobHeadSize = 16
    static let blobTailSize = 12

    /// True when `bytes` start with the NDB file magic.
    static func isNDB(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 32 && le32(bytes, 0) == fileMagic
    }

    /// The header blobs of `bytes`; `nil` when the file is not an NDB package database at all.
    static func read(_ bytes: [UInt8]) -> Contents? {
        guard isNDB(bytes) else { return nil }
        var notes: [String] = []
        let version = le32(bytes, 4)
        guard version == 0 else {
            return Contents(blobs: [], notes: ["NDB Packages.db has format version \(version); only version 0 is known"])
        }
        let slotPages = Int(le32(bytes, 12))
        guard slotPages >= 1, slotPages <= bytes.count / pageSize else {
            return Contents(blobs: [], notes: ["NDB Packages.db declares \(slotPages) slot pages, more than the file holds"])
        }
        let firstDataBlock = slotPages * pageSize / blockSize
        let fileBlocks = bytes.count / blockSize
        var blobs: [(packageIndex: UInt32, blob: [UInt8])] = []
        var seen: Set<UInt32> = []
        // The first two slot positions are taken by the 32-byte file header.
        var offset = 32
        while offset + slotSize <= slotPages * pageSize {
            defer { offset += slotSize }
            guard le32(bytes, offset) == slotMagic else {
                notes.append("NDB slot at byte \(offset) has no slot magic; slot table damaged, reading stopped")
                break
            }
            let packageIndex = le32(bytes, offset + 4)
            let blockOffset = Int(le32(bytes, offset + 8))
            let blockCount = Int(le32(bytes, offset + 12))
            guard blockOffset != 0 else { continue }  // free slot
            guard packageIndex != 0, blockCount > 0, blockOffset >= firstDataBlock,
                  blockCount <= fileBlocks, blockOffset <= fileBlocks - blockCount
            else {
                notes.append("NDB slot for package \(packageIndex) points outside the file; skipped")
                continue
            }
            guard seen.insert(packageIndex).inserted else {
                notes.append("NDB package index \(packageIndex) appears in two slots; the second is skipped")
                continue
            }
            switch blob(bytes, packageIndex: packageIndex, blockOffset: blockOffset, blockCount: blockCount) {
            case .success(let data): blobs.append((packageIndex, data))
            case .failure(let problem): notes.append("NDB package \(packageIndex): \(problem.reason); skipped")
            }
        }
        blobs.sort { $0.packageIndex < $1.packageIndex }
        return Contents(blobs: blobs, notes: notes)
    }

    private struct BlobProblem: Error {
        var reason: String
    }

    private static func blob(_ bytes: [UInt8], packageIndex: UInt32, blockOffset: Int,
                             blockCount: Int) -> Result<[UInt8], BlobProblem> {
        let start = blockOffset * blockSize
        let end = start + blockCount * blockSize
        guard blockCount * blockSize >= blobHeadSize + blobTailSize else { return .failure(.init(reason: "blob too small")) }
        guard le32(bytes, start) == blobHeadMagic else { return .failure(.init(reason: "no blob head magic")) }
        guard le32(bytes, start + 4) == packageIndex else { return .failure(.init(reason: "blob belongs to another package")) }
        let length = Int(le32(bytes, start + 12))
        guard (blobHeadSize + length + blobTailSize + blockSize - 1) / blockSize == blockCount else {
            return .failure(.init(reason: "blob length \(length) does not match its \(blockCount) blocks"))
        }
        let tail = end - blobTailSize
        guard le32(bytes, tail + 4) == UInt32(length), le32(bytes, tail + 8) == blobTailMagic else {
            return .failure(.init(reason: "blob tail damaged"))
        }
        guard adler32(bytes[start..<tail]) == le32(bytes, tail) else {
            return .failure(.init(reason: "blob checksum (Adler-32) mismatch"))
        }
        return .success(Array(bytes[(start + blobHeadSize)..<(start + blobHeadSize + length)]))
    }

    /// Adler-32 (RFC 1950, section 8.2).
    static func adler32(_ data: ArraySlice<UInt8>) -> UInt32 {
        var a: UInt32 = 1
        var b: UInt32 = 0
        var index = data.startIndex
        while index < data.endIndex {
            // 5552 is the most bytes summed before b can overflow 32 bits (zlib's NMAX).
            let chunkEnd = min(index + 5552, data.endIndex)
            for byte in data[index..<chunkEnd] {
                a &+= UInt32(byte)
                b &+= a
            }
            a %= 65521
            b %= 65521
            index = chunkEnd
        }
        return b << 16 | a
    }

    private static func le32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        guard offset >= 0, offset + 4 <= bytes.count else { return 0 }
        return UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16
            | UInt32(bytes[offset + 3]) << 24
    }

    private static func magic(_ text: StaticString) -> UInt32 {
        let bytes = Array(UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
        return le32(bytes, 0)
    }
}
