import Foundation
import GantryModel
import ImageAnalysis

// `gantry-bench ITERATIONS ARCHIVE…`: times Gantry's offline image analysis (unpack the OCI archive into a
// scratch directory, stream every layer from its file through libarchive, merge, identify the OS, catalogue
// packages) per archive and prints one line each: `<archive> <packages> <median ms> <min ms> <peak RSS MiB>`.
//
// `gantry-bench --layer ITERATIONS LAYER`: times `LayerReader.read(fileAt:)` alone on one layer blob and prints
// `<layer> <uncompressed bytes> <median ms> <min ms> <peak RSS MiB>`, for the throughput comparison with
// `gzip -dc LAYER | sha256sum`. `--layer-diff-id` times `readComputingDiffID(fileAt:)` instead, which also
// hashes the uncompressed stream (what the pipeline's sha256sum does).
//
// scripts/bench.sh runs Syft and the gzip baseline on the same files and prints the ratios.

/// Peak resident set size of this process so far, in MiB (getrusage(2): ru_maxrss in KiB on Linux).
func peakRSSMiB() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) / 1024
}

func milliseconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
}

/// Runs `body` `iterations` times; returns the sorted wall times in ms and the last result.
func measure<T>(_ iterations: Int, _ body: () throws -> T) rethrows -> ([Double], T?) {
    var timings: [Double] = []
    var result: T?
    for _ in 0..<iterations {
        let start = ContinuousClock.now
        result = try body()
        timings.append(milliseconds(ContinuousClock.now - start))
    }
    return (timings.sorted(), result)
}

func analyse(_ path: String) throws -> ImageInventory {
    let image = try OCIArchive(fileAt: URL(fileURLWithPath: path))
    defer { image.removeScratch() }
    var filesystem = MergedFilesystem()
    let reader = LayerReader()
    for digest in try image.layerDigests() {
        filesystem.apply(try reader.read(fileAt: try image.blobFile(digest)))
    }
    return Cataloger.inventory(of: filesystem)
}

func usage() -> Never {
    FileHandle.standardError.write(Data("usage: gantry-bench ITERATIONS ARCHIVE… | gantry-bench --layer|--layer-diff-id ITERATIONS LAYER\n".utf8))
    exit(2)
}

var arguments = Array(CommandLine.arguments.dropFirst())
let layerMode = arguments.first == "--layer" || arguments.first == "--layer-diff-id"
let hashing = arguments.first == "--layer-diff-id"
if layerMode { arguments.removeFirst() }
guard let iterations = arguments.first.flatMap({ Int($0) }), iterations > 0, arguments.count > 1 else { usage() }

for path in arguments.dropFirst() {
    do {
        if layerMode {
            let url = URL(fileURLWithPath: path)
            let (timings, contents) = try measure(iterations) {
                hashing ? try LayerReader().readComputingDiffID(fileAt: url).contents : try LayerReader().read(fileAt: url)
            }
            print(String(format: "%@ %lld %.2f %.2f %.1f", path, contents?.uncompressedBytes ?? 0, timings[timings.count / 2],
                         timings[0], peakRSSMiB()))
        } else {
            let (timings, inventory) = try measure(iterations) { try analyse(path) }
            print(String(format: "%@ %d %.2f %.2f %.1f", path, inventory?.packages.count ?? 0, timings[timings.count / 2],
                         timings[0], peakRSSMiB()))
        }
    } catch {
        print("\(path) error \(error)")
    }
}
