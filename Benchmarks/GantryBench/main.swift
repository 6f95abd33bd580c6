import Foundation
import GantryModel
import ImageAnalysis

// `gantry-bench ITERATIONS ARCHIVE…`: times Gantry's offline image analysis (read the OCI archive, read every
// layer through libarchive, merge, identify the OS, catalogue packages) per archive and prints one line each:
// `<archive> <packages> <median ms> <min ms> <peak RSS MiB>`. scripts/bench.sh runs Syft on the same archives and prints ratios.

let arguments = CommandLine.arguments.dropFirst()
guard let iterations = arguments.first.flatMap({ Int($0) }), iterations > 0, arguments.count > 1 else {
    FileHandle.standardError.write(Data("usage: gantry-bench ITERATIONS ARCHIVE…\n".utf8))
    exit(2)
}

func analyse(_ path: String) throws -> ImageInventory {
    let image = try OCIArchive(try Data(contentsOf: URL(fileURLWithPath: path)))
    var filesystem = MergedFilesystem()
    let reader = LayerReader()
    for digest in try image.layerDigests() {
        guard let blob = image.blob(digest) else { throw CocoaError(.fileReadCorruptFile) }
        filesystem.apply(try reader.read(blob))
    }
    return Cataloger.inventory(of: filesystem)
}

for path in arguments.dropFirst() {
    var timings: [Double] = []
    var packages = 0
    do {
        for _ in 0..<iterations {
            let start = ContinuousClock.now
            packages = try analyse(path).packages.count
            let elapsed = ContinuousClock.now - start
            timings.append(Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15)
        }
    } catch {
        print("\(path) error \(error)")
        continue
    }
    timings.sort()
    // Peak resident set size of this process so far (getrusage(2): ru_maxrss in KiB on Linux).
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    print(String(format: "%@ %d %.2f %.2f %.1f", path, packages, timings[timings.count / 2], timings[0],
                 Double(usage.ru_maxrss) / 1024))
}
