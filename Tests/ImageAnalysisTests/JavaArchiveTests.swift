import Foundation
import GantryModel
import GantryTesting
import Testing
@testable import ImageAnalysis

/// Java archives: real Jira 7.3.4 jars from the corpus, wars and nesting built here, and the bounds.
@Suite struct JavaArchiveTests {
    static func corpusBytes(_ path: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: try Corpus.file("2-lang-metadata/java/\(path)")))
    }

    static func packages(_ bytes: [UInt8], at location: String, reader: JavaArchiveReader = .init()) -> (packages: [InstalledPackage], notes: [String]) {
        let summary = reader.read(bytes)
        return (JavaCataloger.packages(from: summary, location: location), summary.notes)
    }

    @Test(.enabled(if: Corpus.isAvailable)) func realJiraJars() throws {
        let log4j = Self.packages(try Self.corpusBytes("jira-image-jars/log4j-1.2.16.jar"), at: "opt/atlassian/jira/lib/log4j-1.2.16.jar")
        #expect(log4j.packages.map(\.purl) == ["pkg:maven/log4j/log4j@1.2.16"])
        #expect(log4j.packages.first?.metadata?["source"] == "pom.properties" && log4j.notes.isEmpty)
        let xstream = Self.packages(try Self.corpusBytes("jira-image-jars/xstream-1.4.8.jar"), at: "WEB-INF/lib/xstream-1.4.8.jar")
        #expect(xstream.packages.map(\.purl) == ["pkg:maven/com.thoughtworks.xstream/xstream@1.4.8"])
        #expect(xstream.packages.first?.name == "xstream" && xstream.packages.first?.version == "1.4.8")
    }

    @Test(.enabled(if: Corpus.isAvailable)) func manifestFallbacks() throws {
        // tomcat-coyote.jar has no pom.properties and no version in its name: the manifest gives 8.5.6.
        let manifest = try Self.corpusBytes("jira-image-jars/extracted/tomcat-coyote__META-INF__MANIFEST.MF")
        var jar = ZipBuilder()
        jar.add("META-INF/MANIFEST.MF", manifest)
        jar.add("org/apache/coyote/Request.class", [0xCA, 0xFE, 0xBA, 0xBE])
        let coyote = Self.packages(jar.build(), at: "opt/atlassian/jira/lib/tomcat-coyote.jar")
        #expect(coyote.packages.map(\.purl) == ["pkg:maven/tomcat-coyote/tomcat-coyote@8.5.6"])
        // commons-collections-3.2.2 without its pom: group from Implementation-Vendor-Id.
        var collections = ZipBuilder()
        collections.add("META-INF/MANIFEST.MF", try Self.corpusBytes("jira-image-jars/extracted/commons-collections-3.2.2__META-INF__MANIFEST.MF"))
        let found = Self.packages(collections.build(), at: "lib/commons-collections-3.2.2.jar")
        #expect(found.packages.map(\.purl) == ["pkg:maven/org.apache/commons-collections@3.2.2"])
        // No manifest at all: the file name alone.
        var bare = ZipBuilder()
        bare.add("a/B.class", [0xCA, 0xFE])
        #expect(Self.packages(bare.build(), at: "lib/jackson-mapper-asl-1.9.13-atlassian-1.jar").packages.map(\.purl)
            == ["pkg:maven/jackson-mapper-asl/jackson-mapper-asl@1.9.13-atlassian-1"])
    }

    @Test func fileNameParsing() {
        #expect(JavaCataloger.nameAndVersion(fromFileName: "spring-core-4.1.6.RELEASE.jar") == ("spring-core", "4.1.6.RELEASE"))
        #expect(JavaCataloger.nameAndVersion(fromFileName: "tomcat-coyote.jar") == ("tomcat-coyote", nil))
        #expect(JavaCataloger.nameAndVersion(fromFileName: "bcprov-jdk15on-1.50.jar") == ("bcprov-jdk15on", "1.50"))
    }

    /// A war with WEB-INF/lib jars and a Spring Boot jar inside it, through the layer reader.
    @Test(.enabled(if: Corpus.isAvailable)) func nestedWarThroughLayerReader() throws {
        var boot = ZipBuilder()
        boot.add("META-INF/maven/com.example/demo/pom.properties", "groupId=com.example\nartifactId=demo\nversion=0.0.1\n")
        boot.add("BOOT-INF/lib/xstream-1.4.8.jar", try Self.corpusBytes("jira-image-jars/xstream-1.4.8.jar"))
        var war = ZipBuilder()
        war.add("WEB-INF/lib/log4j-1.2.16.jar", try Self.corpusBytes("jira-image-jars/log4j-1.2.16.jar"))
        war.add("WEB-INF/lib/demo-0.0.1.jar", boot.build())
        war.add("index.html", "<html/>")
        var layer = ModeTarBuilder()
        layer.file("srv/app.war", war.build())
        layer.file("srv/README", Array("not an archive".utf8))
        let reader = LayerReader(interest: JavaCataloger().interest)
        var filesystem = MergedFilesystem()
        filesystem.apply(try reader.read(layer.build()))
        var notes: [String] = []
        let found = JavaCataloger().packages(in: filesystem, operatingSystem: nil, notes: &notes)
        #expect(Set(found.packages.map(\.purl)) == [
            "pkg:maven/log4j/log4j@1.2.16", "pkg:maven/com.example/demo@0.0.1",
            "pkg:maven/com.thoughtworks.xstream/xstream@1.4.8",
        ])
        #expect(found.packages.allSatisfy { $0.location == "srv/app.war" })
        #expect(found.packages.contains { $0.metadata?["virtualPath"] == "srv/app.war!/WEB-INF/lib/demo-0.0.1.jar!/BOOT-INF/lib/xstream-1.4.8.jar" })
        #expect(notes.isEmpty)
    }

    @Test(.enabled(if: Corpus.isAvailable)) func explodedWarPomProperties() throws {
        var layer = ModeTarBuilder()
        layer.file("opt/atlassian/jira/atlassian-jira/WEB-INF/classes/META-INF/maven/com.atlassian.jira/jira-core/pom.properties",
                   try Self.corpusBytes("jira-image-jars/jira-core.pom.properties"))
        var filesystem = MergedFilesystem()
        filesystem.apply(try LayerReader(interest: JavaCataloger().interest).read(layer.build()))
        var notes: [String] = []
        let found = JavaCataloger().packages(in: filesystem, operatingSystem: nil, notes: &notes)
        #expect(found.packages.map(\.purl) == ["pkg:maven/com.atlassian.jira/jira-core@7.3.4"])
    }

    @Test func nestingBeyondTenLevelsIsBoundedWithANote() {
        var inner = ZipBuilder()
        inner.add("META-INF/maven/g/level12/pom.properties", "groupId=g\nartifactId=level12\nversion=1\n")
        var bytes = inner.build()
        for level in stride(from: 11, through: 0, by: -1) {
            var outer = ZipBuilder()
            outer.add("META-INF/maven/g/level\(level)/pom.properties", "groupId=g\nartifactId=level\(level)\nversion=1\n")
            outer.add("lib/level\(level + 1).jar", bytes)
            bytes = outer.build()
        }
        let summary = JavaArchiveReader().read(bytes)
        #expect(summary.archives.count == 11) // levels 0…10
        #expect(summary.notes.count == 1 && summary.notes[0].contains("nested more than 10 archives deep"))
        #expect(JavaCataloger.packages(from: summary, location: "x.jar").filter { $0.metadata?["source"] == "pom.properties" }.count == 11)
    }

    @Test func zipBombIsBoundedWithANote() {
        var bomb = ZipBuilder()
        bomb.add("payload.bin", [UInt8](repeating: 0, count: 4 * 1024 * 1024))
        var outer = ZipBuilder()
        outer.add("META-INF/maven/g/a/pom.properties", "groupId=g\nartifactId=a\nversion=1\n")
        outer.add("lib/bomb.jar", bomb.build())
        outer.add("lib/huge.jar", [UInt8](repeating: 0, count: 2 * 1024 * 1024))
        let bytes = outer.build()
        #expect(bytes.count < 64 * 1024)
        let summary = JavaArchiveReader(maxTotalBytes: 512 * 1024).read(bytes)
        #expect(summary.archives.first?.poms.map(\.artifactId) == ["a"])
        #expect(summary.notes.contains { $0.contains("partial result") })
    }

    @Test func corruptZipGivesANote() {
        let summary = JavaArchiveReader().read(Array("PK\u{3}\u{4} this is no zip archive at all".utf8))
        #expect(summary.notes.count == 1)
        var truncated = ZipBuilder()
        truncated.add("META-INF/maven/g/a/pom.properties", "groupId=g\nartifactId=a\nversion=1\n")
        truncated.add("data.bin", (0..<50_000).map { UInt8(truncatingIfNeeded: $0 &* 7919) })
        let bytes = truncated.build()
        let partial = JavaArchiveReader().read(Array(bytes[0..<(bytes.count / 2)]))
        #expect(!partial.notes.isEmpty)
    }
}

private extension JavaArchiveReader {
    init(maxTotalBytes: Int) {
        self.init()
        self.maxTotalBytes = maxTotalBytes
    }
}
