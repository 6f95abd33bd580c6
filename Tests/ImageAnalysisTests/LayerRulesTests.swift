import Testing
@testable import ImageAnalysis

/// OCI image spec, "Image Layer Filesystem Changeset": whiteouts, opaque directories, replacement,
/// applied to tars built in memory.
@Suite struct LayerRulesTests {
    let reader = LayerReader()

    func text(_ filesystem: MergedFilesystem, _ path: String) -> String? {
        filesystem.file(path).map { String(decoding: $0, as: UTF8.self) }
    }

    func apply(_ layers: [TarBuilder]) throws -> MergedFilesystem {
        var filesystem = MergedFilesystem()
        for layer in layers { filesystem.apply(try reader.read(layer.build())) }
        return filesystem
    }

    @Test func readsFilesOfInterestAndNormalisesNames() throws {
        var layer = TarBuilder()
        layer.directory("./etc")
        layer.file("./etc/os-release", "ID=alpine\n")
        layer.file("/etc/alpine-release", "3.7.3\n")
        layer.file("etc/passwd", "root:x:0:0\n")
        let contents = try reader.read(layer.build())
        #expect(contents.entryCount == 4)
        #expect(contents.entries.map(\.path) == ["etc", "etc/os-release", "etc/alpine-release"])
        var filesystem = MergedFilesystem()
        filesystem.apply(contents)
        #expect(text(filesystem, "etc/os-release") == "ID=alpine\n")
        #expect(text(filesystem, "/etc/alpine-release") == "3.7.3\n")
        #expect(filesystem.file("etc/passwd") == nil, "files not of interest are not kept")
    }

    @Test(arguments: [TarBuilder.Compression.none, .gzip, .zstd])
    func detectsCompressionFromTheBytes(_ compression: TarBuilder.Compression) throws {
        var layer = TarBuilder()
        layer.file("etc/alpine-release", "3.20.3\n")
        let contents = try reader.read(layer.build(compression))
        #expect(contents.entries.first?.kind == .file(Array("3.20.3\n".utf8)))
    }

    @Test func whiteoutRemovesAFileOfALowerLayer() throws {
        var lower = TarBuilder()
        lower.file("etc/os-release", "ID=alpine\n")
        lower.file("etc/alpine-release", "3.7.3\n")
        var upper = TarBuilder()
        upper.whiteout("etc/os-release")
        let filesystem = try apply([lower, upper])
        #expect(filesystem.file("etc/os-release") == nil)
        #expect(text(filesystem, "etc/alpine-release") == "3.7.3\n")
    }

    @Test func whiteoutOfADirectoryRemovesEverythingUnderIt() throws {
        var lower = TarBuilder()
        lower.file("lib/apk/db/installed", "P:musl\nV:1\n")
        lower.file("etc/alpine-release", "3.7.3\n")
        var upper = TarBuilder()
        upper.whiteout("lib/apk")
        let filesystem = try apply([lower, upper])
        #expect(filesystem.file("lib/apk/db/installed") == nil)
        #expect(filesystem.file("etc/alpine-release") != nil)
    }

    @Test func whiteoutDoesNotHideAFileOfTheSameLayer() throws {
        var lower = TarBuilder()
        lower.file("etc/os-release", "ID=old\n")
        var upper = TarBuilder()
        upper.file("etc/os-release", "ID=new\n")
        upper.whiteout("etc/os-release")
        let filesystem = try apply([lower, upper])
        #expect(text(filesystem, "etc/os-release") == "ID=new\n")
    }

    @Test func opaqueDirectoryHidesOnlyLowerLayers() throws {
        var lower = TarBuilder()
        lower.file("etc/os-release", "ID=alpine\n")
        lower.file("etc/alpine-release", "3.7.3\n")
        lower.file("lib/apk/db/installed", "P:a\nV:1\n")
        var upper = TarBuilder()
        upper.directory("etc")
        upper.opaque("etc")
        upper.file("etc/alpine-release", "3.8.0\n")
        let filesystem = try apply([lower, upper])
        #expect(filesystem.file("etc/os-release") == nil)
        #expect(text(filesystem, "etc/alpine-release") == "3.8.0\n")
        #expect(filesystem.file("lib/apk/db/installed") != nil)
        let contents = try reader.read(upper.build())
        #expect(contents.opaqueDirectories == ["etc"])
    }

    @Test func laterFileReplacesEarlierOne() throws {
        var first = TarBuilder()
        first.file("lib/apk/db/installed", "P:musl\nV:1.1.18-r3\n")
        var second = TarBuilder()
        second.file("lib/apk/db/installed", "P:musl\nV:1.1.18-r4\n")
        let filesystem = try apply([first, second])
        #expect(text(filesystem, "lib/apk/db/installed") == "P:musl\nV:1.1.18-r4\n")
    }

    @Test func symlinksAreFollowedInsideTheRoot() throws {
        var layer = TarBuilder()
        layer.file("usr/lib/os-release", "ID=alpine\nVERSION_ID=3.20.3\n")
        layer.symlink("etc/os-release", to: "../usr/lib/os-release")
        let filesystem = try apply([layer])
        #expect(text(filesystem, "etc/os-release") == "ID=alpine\nVERSION_ID=3.20.3\n")

        var absolute = TarBuilder()
        absolute.file("usr/lib/os-release", "ID=x\n")
        absolute.symlink("etc/os-release", to: "/../../usr/lib/os-release")
        #expect(text(try apply([absolute]), "etc/os-release") == "ID=x\n", "'..' stops at the image root")

        var loop = TarBuilder()
        loop.symlink("etc/os-release", to: "os-release")
        #expect(try apply([loop]).file("etc/os-release") == nil, "a symlink loop resolves to nothing")
    }

    @Test func hardLinksTakeTheTargetsContents() throws {
        var layer = TarBuilder()
        layer.file("usr/share/release", "3.7.3\n")
        layer.hardlink("etc/alpine-release", to: "usr/share/release")
        let filesystem = try apply([layer])
        #expect(text(filesystem, "etc/alpine-release") == "3.7.3\n")

        // A hard link to a file of interest of a lower layer.
        var lower = TarBuilder()
        lower.file("usr/lib/os-release", "ID=alpine\n")
        var upper = TarBuilder()
        upper.hardlink("etc/os-release", to: "usr/lib/os-release")
        #expect(text(try apply([lower, upper]), "etc/os-release") == "ID=alpine\n")
    }

    @Test func aFileReplacingADirectoryHidesItsLowerContents() throws {
        var lower = TarBuilder()
        lower.file("lib/apk/db/installed", "P:a\nV:1\n")
        var upper = TarBuilder()
        upper.file("lib/apk", "not a directory any more")
        #expect(try apply([lower, upper]).file("lib/apk/db/installed") == nil)
    }

    @Test func recordsEveryWhiteout() throws {
        var layer = TarBuilder()
        layer.whiteout("usr/bin/wget")
        layer.whiteout("tmp")
        layer.opaque("var/cache")
        let contents = try reader.read(layer.build())
        #expect(contents.whiteouts == ["usr/bin/wget", "tmp"])
        #expect(contents.opaqueDirectories == ["var/cache"])
    }
}
