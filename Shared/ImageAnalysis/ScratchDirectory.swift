import Foundation

/// A private directory for scratch files (blobs copied out of an archive, downloaded layers),
/// removed with everything in it when the last reference to it goes away or `remove()` is called.
///
/// Created by `mkdtemp(3)` under the temporary directory (`TMPDIR`, else `/tmp`): a fresh name that
/// no other process can have prepared, mode 0700, so other local users can neither read an image's
/// layers nor swap a file in between its verification and its use.
public final class ScratchDirectory: Sendable {
    /// The directory; files inside it are the caller's to name.
    public let url: URL

    /// Creates `<temporary directory>/<prefix>XXXXXX`.
    /// - Throws: `CocoaError(.fileWriteUnknown)` naming the directory and `errno` when it cannot be created.
    public init(prefix: String = "gantry-scratch-") throws {
        let template = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)XXXXXX").path
        var buffer = Array(template.utf8CString)
        let created = buffer.withUnsafeMutableBufferPointer { pointer -> Bool in
            guard let base = pointer.baseAddress else { return false }
            return mkdtemp(base) != nil
        }
        guard created else {
            let reason = String(cString: strerror(errno))
            throw CocoaError(.fileWriteUnknown, userInfo: [
                NSFilePathErrorKey: template,
                NSLocalizedDescriptionKey: "cannot create a scratch directory from \(template): \(reason)",
            ])
        }
        let path = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        url = URL(fileURLWithPath: path, isDirectory: true)
    }

    deinit { remove() }

    /// A path inside the directory for `name` (not created).
    public func file(_ name: String) -> URL { url.appendingPathComponent(name, isDirectory: false) }

    /// Deletes the directory and its contents now; later calls do nothing.
    public func remove() {
        try? FileManager.default.removeItem(at: url)
    }
}
