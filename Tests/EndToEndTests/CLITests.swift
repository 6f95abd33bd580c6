import Foundation
import GantryTesting
import Testing

/// The `gantry` command as a user runs it: offline scans and SBOMs of corpus images, checked against
/// independent validators (cyclonedx-python-lib's JSON schema validation, spdx-tools).
@Suite(.enabled(if: Corpus.isAvailable, "the test corpus (../shared/corpus) is missing"))
struct CLITests {
    static let gantry = Corpus.repositoryRoot.appendingPathComponent(".build/debug/gantry").path

    /// Runs a command; returns status, standard output and standard error.
    static func run(_ executable: String, _ arguments: [String]) throws -> (Int32, String, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        // Read before waiting: a full pipe would block the child.
        let out = output.fileHandleForReading.readDataToEndOfFile()
        let err = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
    }

    static func image(_ name: String) throws -> String { "oci-archive:" + (try Corpus.file("images/\(name).oci.tar")).path }

    @Test("gantry scan finds exactly musl and musl-utils CVE-2019-14697 in alpine-3.7.3, and nothing after apk upgrade")
    func scanAlpine() throws {
        let feeds = try Corpus.file("3-vuln-feeds/alpine").path
        let (status, output, errors) = try Self.run(Self.gantry, ["scan", try Self.image("alpine-3.7.3"), "--feeds", feeds,
                                                                  "--format", "json"])
        #expect(status == 0, "\(errors)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
        let findings = (report["findings"] as? [[String: Any]] ?? []).map {
            "\($0["vulnerabilityID"] ?? "") \($0["packageName"] ?? "") \($0["installedVersion"] ?? "") \($0["fixedVersion"] ?? "")"
        }.sorted()
        #expect(findings == ["CVE-2019-14697 musl 1.1.18-r3 1.1.18-r4", "CVE-2019-14697 musl-utils 1.1.18-r3 1.1.18-r4"])
        #expect(((report["inventory"] as? [String: Any])?["packages"] as? [Any])?.count == 13)

        let upgraded = try Self.run(Self.gantry, ["scan", try Self.image("alpine-3.7.3-apk-upgrade"), "--feeds", feeds])
        #expect(upgraded.0 == 0)
        #expect(upgraded.1.contains("no findings"), "\(upgraded.1)")

        let newer = try Self.run(Self.gantry, ["scan", try Self.image("alpine-3.20.3"), "--feeds", feeds])
        #expect(newer.1.contains("no vulnerability data"), "\(newer.1)")
    }

    @Test("CycloneDX 1.6 and SPDX 2.3 documents validate with independent validators", arguments: [
        "alpine-3.7.3", "python-app", "debian-bookworm-minbase", "distroless-bookworm",
    ])
    func sbomsValidate(image: String) throws {
        let feeds = try Corpus.file("3-vuln-feeds/alpine").path
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gantry-sbom-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }

        let cyclone = try Self.run(Self.gantry, ["scan", try Self.image(image), "--feeds", feeds, "--format", "cyclonedx-json"])
        #expect(cyclone.0 == 0, "\(cyclone.2)")
        let cycloneFile = directory.appendingPathComponent("bom.cdx.json")
        try Data(cyclone.1.utf8).write(to: cycloneFile)
        let cycloneCheck = try Self.run("/usr/bin/env", ["python3", "-c", """
            import sys
            from cyclonedx.validation.json import JsonStrictValidator
            from cyclonedx.schema import SchemaVersion
            error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(open(sys.argv[1]).read())
            print("VALID" if error is None else error)
            """, cycloneFile.path])
        #expect(cycloneCheck.1.trimmingCharacters(in: .whitespacesAndNewlines) == "VALID", "\(cycloneCheck.1) \(cycloneCheck.2)")

        let spdx = try Self.run(Self.gantry, ["sbom", try Self.image(image), "--format", "spdx-json"])
        #expect(spdx.0 == 0, "\(spdx.2)")
        let spdxFile = directory.appendingPathComponent("bom.spdx.json")
        try Data(spdx.1.utf8).write(to: spdxFile)
        let spdxCheck = try Self.run("/usr/bin/env", ["python3", "-c", """
            import sys
            from spdx_tools.spdx.parser.parse_anything import parse_file
            from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document
            document = parse_file(sys.argv[1])
            messages = validate_full_spdx_document(document)
            print("VALID" if not messages else "\\n".join(m.validation_message for m in messages))
            print(len(document.packages))
            """, spdxFile.path])
        let lines = spdxCheck.1.split(separator: "\n").map(String.init)
        #expect(lines.first == "VALID", "\(spdxCheck.1) \(spdxCheck.2)")
        // Every package of the inventory is in the SPDX document (plus the image and the OS).
        let inventory = try Self.run(Self.gantry, ["sbom", try Self.image(image), "--format", "json"])
        let packages = ((try JSONSerialization.jsonObject(with: Data(inventory.1.utf8)) as? [String: Any])?["inventory"]
            as? [String: Any])?["packages"] as? [Any]
        #expect(lines.count >= 2 && Int(lines[1]) == (packages?.count ?? -1) + 2)
    }

    @Test("docker-archive input: a skopeo docker-archive of nginx with gzip layers gives its 84 dpkg packages")
    func dockerArchive() throws {
        let archive = try Corpus.file("5-image-tarballs/snyk-docker-archives_skopeo-copy_nginx-compressed-layers.tar").path
        let (status, output, errors) = try Self.run(Self.gantry, ["sbom", "docker-archive:\(archive)", "--format", "json"])
        #expect(status == 0, "\(errors)")
        let inventory = (try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])?["inventory"] as? [String: Any]
        let packages = inventory?["packages"] as? [[String: Any]] ?? []
        #expect(packages.count == 84)
        #expect(packages.allSatisfy { $0["ecosystem"] as? String == "dpkg" })
        #expect((inventory?["operatingSystem"] as? [String: Any])?["id"] as? String == "debian")
    }

    @Test("oci-dir input: an unpacked OCI image layout gives the same inventory as its archive")
    func ociDirectory() throws {
        let archive = try Corpus.file("images/alpine-3.7.3.oci.tar").path
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gantry-oci-dir-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let untar = try Self.run("/bin/tar", ["-xf", archive, "-C", directory.path])
        #expect(untar.0 == 0, "\(untar.2)")
        let fromDirectory = try Self.run(Self.gantry, ["sbom", "oci-dir:\(directory.path)", "--format", "json"])
        let fromArchive = try Self.run(Self.gantry, ["sbom", "oci-archive:\(archive)", "--format", "json"])
        #expect(fromDirectory.0 == 0, "\(fromDirectory.2)")
        func purls(_ output: String) -> [String] {
            let inventory = (try? JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])?["inventory"] as? [String: Any]
            return (inventory?["packages"] as? [[String: Any]] ?? []).compactMap { $0["purl"] as? String }.sorted()
        }
        #expect(purls(fromDirectory.1).count == 13)
        #expect(purls(fromDirectory.1) == purls(fromArchive.1))
    }

    @Test("a registry reference: gantry scan pulls from a real registry (plain HTTP) and finds the same vulnerabilities")
    func registryReference() async throws {
        let registry = try await TestRegistry.start()
        defer { registry.stop() }
        try Skopeo.copy(ociArchive: try Corpus.file("images/alpine-3.7.3.oci.tar"), to: registry.host,
                        repository: "cli/alpine", tag: "3.7.3")
        let feeds = try Corpus.file("3-vuln-feeds/alpine").path
        let (status, output, errors) = try Self.run(Self.gantry, ["scan", "\(registry.host)/cli/alpine:3.7.3", "--insecure",
                                                                  "--feeds", feeds, "--format", "json"])
        #expect(status == 0, "\(errors)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
        let findings = (report["findings"] as? [[String: Any]] ?? []).compactMap { $0["packageName"] as? String }.sorted()
        #expect(findings == ["musl", "musl-utils"])
        #expect((report["digest"] as? String)?.hasPrefix("sha256:") == true)
        let missing = try Self.run(Self.gantry, ["sbom", "\(registry.host)/cli/nothing:here", "--insecure"])
        #expect(missing.0 != 0)
    }

    @Test("CentOS trimmed to /etc/centos-release is identified as CentOS 6")
    func centosRelease() throws {
        let archive = try Corpus.file("5-image-tarballs/snyk-docker-archives_skopeo-copy_centos-6.tar").path
        let (status, output, errors) = try Self.run(Self.gantry, ["sbom", "docker-archive:\(archive)", "--format", "json"])
        #expect(status == 0, "\(errors)")
        let os = ((try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])?["inventory"]
            as? [String: Any])?["operatingSystem"] as? [String: Any]
        #expect(os?["id"] as? String == "centos")
        #expect((os?["versionID"] as? String)?.hasPrefix("6") == true)
    }

    @Test("a layer whose bytes do not match its digest is refused with the digest named")
    func lyingArchive() throws {
        let archive = try Corpus.file("5-image-tarballs/snyk-oci-archives_alpine-3.12.0.tar").path
        let (status, _, errors) = try Self.run(Self.gantry, ["sbom", "oci-archive:\(archive)"])
        #expect(status != 0)
        #expect(errors.contains("does not match its digest"), "\(errors)")
    }

    @Test("SARIF 2.1.0 output has one result per affected package")
    func sarif() throws {
        let feeds = try Corpus.file("3-vuln-feeds/alpine").path
        let (status, output, _) = try Self.run(Self.gantry, ["scan", try Self.image("alpine-3.7.3"), "--feeds", feeds, "--format", "sarif"])
        #expect(status == 0)
        let document = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
        #expect(document["version"] as? String == "2.1.0")
        let run = (document["runs"] as? [[String: Any]])?.first
        #expect((run?["results"] as? [Any])?.count == 2)
        let rules = ((run?["tool"] as? [String: Any])?["driver"] as? [String: Any])?["rules"] as? [[String: Any]]
        #expect(rules?.compactMap { $0["id"] as? String } == ["CVE-2019-14697"])
    }

    /// Runs `gantry` with `TMPDIR` set to a fresh directory; returns status, output, errors and what the
    /// run left in that directory (its scratch files must be gone).
    static func runInPrivateTemp(_ arguments: [String]) throws -> (Int32, String, String, [String]) {
        let temp = FileManager.default.temporaryDirectory.appendingPathComponent("gantry-cli-tmp-\(UUID())")
        try FileManager.default.createDirectory(at: temp, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: temp) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: gantry)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(["TMPDIR": temp.path]) { $1 }
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        let err = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let left = try FileManager.default.contentsOfDirectory(atPath: temp.path)
        return (process.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self), left)
    }

    static func inventory(_ output: String) -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])?["inventory"] as? [String: Any]
    }

    @Test("archives are unpacked into a scratch directory that is gone when gantry exits, also after a refusal")
    func scratchIsRemoved() throws {
        let archive = try Corpus.file("images/debian-bookworm-minbase.oci.tar").path
        let (status, output, errors, left) = try Self.runInPrivateTemp(["sbom", "oci-archive:\(archive)", "--format", "json"])
        #expect(status == 0, "\(errors)")
        #expect((Self.inventory(output)?["packages"] as? [Any])?.count == 88)
        #expect(left.isEmpty, "left behind: \(left)")

        let lying = try Corpus.file("5-image-tarballs/snyk-oci-archives_alpine-3.12.0.tar").path
        let refused = try Self.runInPrivateTemp(["sbom", "oci-archive:\(lying)"])
        #expect(refused.0 != 0)
        #expect(refused.3.isEmpty, "left behind: \(refused.3)")
    }

    @Test("docker-archive layers are checked against the config's diff IDs: a match is silent, a mismatch is a note")
    func dockerArchiveDiffIDs() throws {
        // A containerd export whose gzip layer decompresses to exactly its diff ID.
        let intact = try Corpus.file("5-image-tarballs/snyk-containerd-archives_alpine.tar").path
        let good = try Self.run(Self.gantry, ["sbom", "docker-archive:\(intact)", "--format", "json"])
        #expect(good.0 == 0, "\(good.2)")
        let goodInventory = Self.inventory(good.1)
        #expect((goodInventory?["packages"] as? [Any])?.count == 14)
        #expect(!((goodInventory?["notes"] as? [String]) ?? []).contains { $0.contains("diff ID") })

        // CentOS 6 trimmed after saving: its gzip layer no longer decompresses to the diff ID; analysed, with a note.
        let trimmed = try Corpus.file("5-image-tarballs/snyk-docker-archives_skopeo-copy_centos-6.tar").path
        let altered = try Self.run(Self.gantry, ["sbom", "docker-archive:\(trimmed)", "--format", "json"])
        #expect(altered.0 == 0, "\(altered.2)")
        let notes = (Self.inventory(altered.1)?["notes"] as? [String]) ?? []
        #expect(notes.contains { $0.contains("does not match the diff ID sha256:af6bf1987c2eb07d73f33836b0d8fd825d7c785273526b077e46780e8b4b2ae9") },
                "\(notes)")
    }

    @Test("a gzip-compressed docker-archive (docker save | gzip) is read like the plain one")
    func compressedDockerArchive() throws {
        let archive = try Corpus.file("5-image-tarballs/trivy-alpine-310.tar.gz").path
        let (status, output, errors) = try Self.run(Self.gantry, ["sbom", archive, "--format", "json"])
        #expect(status == 0, "\(errors)")
        let inventory = Self.inventory(output)
        #expect((inventory?["packages"] as? [Any])?.count == 14)
        #expect((inventory?["operatingSystem"] as? [String: Any])?["id"] as? String == "alpine")
    }
}
