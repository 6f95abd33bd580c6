import Foundation
import GantryModel
import VulnerabilityDB

// `gantry-kb-bench FEEDS_DIR`: the knowledge-base benchmarks of the vulnerability-matching issue, on the
// real feeds in FEEDS_DIR (the corpus's 3-vuln-feeds):
// 1. parse time of the complete Go vulndb, PyPA and RustSec OSV archives;
// 2. matching one inventory of 1,000 packages (median of 50 runs; target ≤ 50 ms);
// 3. re-matching 10,000 stored inventories against a feed difference (target ≤ 10 s).
// Prints one `name value unit` line per measure. (Database import time and size are measured by
// scripts/bench.sh through the scanner service.)

func milliseconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
}

func time<T>(_ body: () throws -> T) rethrows -> (T, Double) {
    let start = ContinuousClock.now
    let result = try body()
    return (result, milliseconds(ContinuousClock.now - start))
}

func asyncTime<T>(_ body: () async throws -> T) async rethrows -> (T, Double) {
    let start = ContinuousClock.now
    let result = try await body()
    return (result, milliseconds(ContinuousClock.now - start))
}

guard CommandLine.arguments.count == 2 else {
    FileHandle.standardError.write(Data("usage: gantry-kb-bench FEEDS_DIR\n".utf8))
    exit(2)
}
let feeds = URL(fileURLWithPath: CommandLine.arguments[1])
let archives = ["golang-vulndb-data-osv.tar.gz", "pypa-advisory-database-vulns.tar.gz", "rustsec-advisory-db-osv-branch.tar.gz"]
var documents: [FeedDocument] = []
for name in archives {
    let url = feeds.appendingPathComponent("osv/full-archives/\(name)")
    let (document, ms) = try time { try OSV.parseArchive(at: url, source: "osv:" + name) }
    print("parse \(name) \(String(format: "%.0f", ms)) ms (\(document.vulnerabilities.count) records, \(document.affected.count) affected rows)")
    documents.append(document)
}
let loaded = try FeedLoader.load(feeds)
let store = InMemoryVulnerabilityStore(documents: loaded.documents.filter { doc in !documents.contains { $0.source == doc.source } } + documents)

// A 1,000-package inventory: 500 PyPI and 500 Go packages named in the PyPA and Go vulndb data, each at
// the version where its first affected range starts (so every package has rows and most match).
let pypa = documents[1].affected
let go = documents[0].affected
func firstRows(_ rows: [AffectedPackage]) -> [(String, AffectedPackage)] {
    var byName: [String: AffectedPackage] = [:]
    for row in rows where byName[row.packageName] == nil { byName[row.packageName] = row }
    return byName.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
}
let pypaNames = firstRows(pypa)
var packages: [InstalledPackage] = []
let chosen = pypaNames.prefix(500).map { ("pypi", $0.0, $0.1) } + firstRows(go).prefix(500).map { ("golang", $0.0, $0.1) }
for (index, (ecosystem, name, affected)) in chosen.enumerated() {
    var version = affected.ranges.first?.introduced ?? affected.versions.first ?? "0.1"
    if ecosystem == "golang" {
        // Go modules carry a `v`; the stdlib and toolchain are reported without one, as binaries do.
        if version == "0" || version == "0.0.0" { version = "0.0.1" }
        if name != "stdlib" && name != "toolchain" && !version.hasPrefix("v") { version = "v" + version }
    }
    packages.append(InstalledPackage(ecosystem: ecosystem, name: name, version: version, sourceName: nil, architecture: nil,
                                     purl: "pkg:\(ecosystem)/\(name)@\(version)", location: "lib/\(index)"))
}
let byName = Dictionary(pypaNames, uniquingKeysWith: { first, _ in first })
let inventory = ImageInventory(operatingSystem: nil, packages: packages)
var timings: [Double] = []
var findings = 0
for _ in 0..<50 {
    let (result, ms) = try await asyncTime { try await Matcher.match(inventory, store: store) }
    timings.append(ms)
    findings = result.findings.count
}
timings.sort()
print("match-1000-packages \(String(format: "%.1f", timings[timings.count / 2])) ms median (\(packages.count) packages, \(findings) findings; target <= 50 ms)")

// 10,000 stored inventories: each a random 50-package subset (seeded), re-matched only when it holds a
// package the difference touches — here the difference is every row of 50 PyPA packages, as an update
// operation of the PyPA feed would list them.
struct Seeded: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }
}
var seeded = Seeded(state: 42)
let pypiPackages = packages.filter { $0.ecosystem == "pypi" }
let stored: [ImageInventory] = (0..<10_000).map { _ in
    ImageInventory(operatingSystem: nil, packages: (0..<50).map { _ in pypiPackages[Int(seeded.next() % UInt64(pypiPackages.count))] })
}
let changed = Set(byName.keys.sorted().prefix(500).shuffled(using: &seeded).prefix(10))
let differenceRows = pypa.filter { changed.contains($0.packageName) }
let (rematched, rematchMs) = try await asyncTime { () async throws -> (Int, Int) in
    // The rows of the difference are all a re-match needs: one in-memory store over them.
    let differenceStore = InMemoryVulnerabilityStore(documents: [FeedDocument(source: "difference", kind: .osv, affected: differenceRows)])
    var touched = 0
    var total = 0
    for inventory in stored where inventory.packages.contains(where: { changed.contains(PackageName.normalize($0.name, namespace: "pypi")) }) {
        touched += 1
        total += try await Matcher.match(inventory, store: differenceStore).findings.count
    }
    return (touched, total)
}
print("rematch-10000-inventories \(String(format: "%.0f", rematchMs)) ms (\(rematched.0) touched by the difference of \(changed.count) packages, \(rematched.1) findings; target <= 10000 ms)")
