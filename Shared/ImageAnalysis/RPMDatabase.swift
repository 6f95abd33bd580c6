import CRPM
import Foundation

/// One installed package as an rpm database header records it.
struct RPMHeaderRecord: Sendable, Hashable {
    /// `RPMTAG_NAME`.
    var name: String
    /// `RPMTAG_EPOCH`; nil where the header has none (which rpm treats as 0 when comparing).
    var epoch: Int?
    /// `RPMTAG_VERSION`.
    var version: String
    /// `RPMTAG_RELEASE`.
    var release: String
    /// `RPMTAG_ARCH`; nil for headers without one (`gpg-pubkey` pseudo-packages).
    var architecture: String?
    /// `RPMTAG_SOURCERPM`, for example `util-linux-2.32.1-42.el8_8.src.rpm`; nil for `gpg-pubkey`.
    var sourceRPM: String?
    /// `RPMTAG_MODULARITYLABEL` (RHEL 8+ / Fedora modules), for example `nodejs:18:8090020231019152822:a75119d5`.
    var modularityLabel: String?
    /// `RPMTAG_LICENSE`.
    var license: String?

    /// `version-release`, the form advisories compare (epoch separate).
    var versionRelease: String { "\(version)-\(release)" }
}

/// Errors reading an rpm database through librpm.
enum RPMDatabaseError: Error, CustomStringConvertible, Equatable {
    /// librpm's configuration (`/usr/lib/rpm/rpmrc`, macros) could not be loaded.
    case configuration
    /// The database could not be opened; `messages` are what librpm logged.
    case cannotOpen(messages: [String])
    /// The temporary copy of the database could not be written.
    case temporaryCopy(String)

    var description: String {
        switch self {
        case .configuration: "librpm could not read its configuration (rpmReadConfigFiles failed)"
        case .cannotOpen(let messages):
            "librpm could not open the database" + (messages.isEmpty ? "" : ": " + messages.joined(separator: "; "))
        case .temporaryCopy(let reason): "could not copy the rpm database to a temporary directory: \(reason)"
        }
    }
}

/// Reads rpm package databases with Debian's librpm (`librpm-dev`, rpm 4.18), through the `CRPM`
/// system-library module.
///
/// librpm opens databases only from a directory, so `headers(files:backend:)` writes the image's
/// database files to a private temporary directory (mode 0700, removed afterwards), points the
/// `_dbpath` and `_db_backend` macros at it, and iterates `RPMDBI_PACKAGES` with every digest and
/// signature check off. Backends: `sqlite` (`rpmdb.sqlite`, rpm ≥ 4.16) and `bdb_ro` (Berkeley DB
/// `Packages`, read without Berkeley DB itself). Debian builds librpm without `ndb`; SUSE's
/// `Packages.db` goes through `NDBReader` and `header(blob:)` instead.
///
/// librpm keeps its macros, log callback and configuration in process-wide state, so every call
/// holds one lock; callers on several threads are serialised.
enum RPMDatabase {
    /// A librpm database backend (the `_db_backend` macro's value).
    enum Backend: String, Sendable {
        case sqlite
        case berkeleyReadOnly = "bdb_ro"
    }

    /// The headers of every package in the database made of `files` (file name → bytes, for example
    /// `["rpmdb.sqlite": …]` or `["Packages": …]`), in librpm's iteration order.
    /// - Throws: `RPMDatabaseError`.
    /// - Returns: the records and librpm's warnings (for example missing Berkeley DB index files).
    static func headers(files: [String: [UInt8]], backend: Backend) throws(RPMDatabaseError)
        -> (records: [RPMHeaderRecord], warnings: [String]) {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("gantry-rpmdb-\(UUID().uuidString.lowercased())", isDirectory: true)
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: false,
                                                    attributes: [.posixPermissions: 0o700])
            for (name, bytes) in files {
                // Only plain names: the caller passes database file names, never paths.
                guard !name.contains("/"), name != ".", name != ".." else { continue }
                try Data(bytes).write(to: directory.appendingPathComponent(name))
            }
        } catch {
            try? FileManager.default.removeItem(at: directory)
            throw .temporaryCopy("\(error)")
        }
        defer { try? FileManager.default.removeItem(at: directory) }
        return try Library.shared.withLock { () throws(RPMDatabaseError) in
            guard Library.shared.configure() else { throw .configuration }
            return try readHeaders(directory: directory.path, backend: backend)
        }
    }

    /// Parses one header blob as an rpm database stores it (the "immutable header region" without
    /// the lead or signature), via librpm's `headerImport`; nil where librpm rejects it.
    static func header(blob: [UInt8]) -> RPMHeaderRecord? {
        guard !blob.isEmpty, blob.count <= Int(UInt32.max) else { return nil }
        return Library.shared.withLock { () -> RPMHeaderRecord? in
            var copy = blob
            return copy.withUnsafeMutableBytes { buffer -> RPMHeaderRecord? in
                // HEADERIMPORT_COPY: librpm copies the blob, so the Swift buffer may go away afterwards.
                guard let header = headerImport(buffer.baseAddress, UInt32(buffer.count),
                                                headerImportFlags(HEADERIMPORT_COPY.rawValue))
                else { return nil }
                defer { headerFree(header) }
                return record(header)
            }
        }
    }

    // MARK: - librpm access (call only with the lock held)

    private static func readHeaders(directory: String, backend: Backend) throws(RPMDatabaseError)
        -> (records: [RPMHeaderRecord], warnings: [String]) {
        let log = LogSink()
        let context = Unmanaged.passRetained(log)
        defer { context.release() }
        gantry_rpm_log_errors_and_warnings()
        rpmlogSetCallback({ record, data in
            guard let record, let data, let message = rpmlogRecMessage(record) else { return 0 }
            let sink = Unmanaged<LogSink>.fromOpaque(data).takeUnretainedValue()
            sink.messages.append(String(cString: message).trimmedWhitespace())
            return 0  // swallowed: reported as notes, never printed
        }, context.toOpaque())
        defer { rpmlogSetCallback(nil, nil) }

        rpmPushMacro(nil, "_dbpath", nil, directory, RMIL_CMDLINE)
        rpmPushMacro(nil, "_db_backend", nil, backend.rawValue, RMIL_CMDLINE)
        defer {
            rpmPopMacro(nil, "_db_backend")
            rpmPopMacro(nil, "_dbpath")
        }

        guard let transaction = rpmtsCreate() else { throw .cannotOpen(messages: log.messages) }
        defer { rpmtsFree(transaction) }
        _ = rpmtsSetRootDir(transaction, "/")
        _ = rpmtsSetVSFlags(transaction, gantry_rpm_vsflags_no_verify())
        guard rpmtsOpenDB(transaction, O_RDONLY) == 0,
              let iterator = rpmtsInitIterator(transaction, rpmDbiTagVal(RPMDBI_PACKAGES.rawValue), nil, 0)
        else { throw .cannotOpen(messages: log.messages) }
        defer { rpmdbFreeIterator(iterator) }
        var records: [RPMHeaderRecord] = []
        // The iterator owns each header; it is valid until the next call.
        while let header = rpmdbNextIterator(iterator) {
            if let record = record(header) { records.append(record) }
        }
        return (records, log.messages)
    }

    private static func record(_ header: Header) -> RPMHeaderRecord? {
        func string(_ tag: rpmTag_e) -> String? {
            headerGetString(header, rpmTagVal(tag.rawValue)).map { String(cString: $0) }
        }
        guard let name = string(RPMTAG_NAME), let version = string(RPMTAG_VERSION),
              let release = string(RPMTAG_RELEASE)
        else { return nil }
        let epochTag = rpmTagVal(RPMTAG_EPOCH.rawValue)
        let epoch = headerIsEntry(header, epochTag) != 0 ? Int(truncatingIfNeeded: headerGetNumber(header, epochTag)) : nil
        return RPMHeaderRecord(name: name, epoch: epoch, version: version, release: release,
                               architecture: string(RPMTAG_ARCH), sourceRPM: string(RPMTAG_SOURCERPM),
                               modularityLabel: string(RPMTAG_MODULARITYLABEL), license: string(RPMTAG_LICENSE))
    }

    /// Collects librpm log messages for one read.
    private final class LogSink {
        var messages: [String] = []
    }

    /// The process-wide librpm state: configuration read once, every use under one lock.
    private final class Library: @unchecked Sendable {
        static let shared = Library()
        private let lock = NSLock()
        private var configured: Bool?

        func withLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
            lock.lock()
            defer { lock.unlock() }
            return try body()
        }

        /// Reads librpm's configuration (rpmrc and macro files) the first time; later calls return the result.
        func configure() -> Bool {
            if let configured { return configured }
            let ok = rpmReadConfigFiles(nil, nil) == 0
            configured = ok
            return ok
        }
    }
}
