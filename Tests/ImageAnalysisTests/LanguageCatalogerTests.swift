import Foundation
import GantryModel
import Testing
@testable import ImageAnalysis

/// The language-package catalogers (Python, npm, RubyGems, Composer, .NET) on small images built here,
/// through `LayerReader` with the default files of interest, so registration in `Cataloger` is tested too.
@Suite struct LanguageCatalogerTests {
    /// A filesystem of one layer per element of `layers`, applied in order.
    static func filesystem(_ layers: [String: String]...) throws -> MergedFilesystem {
        var filesystem = MergedFilesystem()
        for files in layers {
            var layer = TarBuilder()
            for (path, text) in files.sorted(by: { $0.key < $1.key }) { layer.file(path, text) }
            filesystem.apply(try LayerReader().read(layer.build()))
        }
        return filesystem
    }

    static func catalog(_ cataloger: some PackageCataloger, _ filesystem: MergedFilesystem) -> (CatalogResult, [String]) {
        var notes: [String] = []
        let result = cataloger.packages(in: filesystem, operatingSystem: nil, notes: &notes)
        return (result, notes)
    }

    static let sitePackages = "usr/local/lib/python3.12/site-packages"

    // MARK: Python

    @Test func distInfoMetadata() throws {
        let (result, notes) = Self.catalog(PythonCataloger(), try Self.filesystem([
            "\(Self.sitePackages)/Flask_SQLAlchemy-2.5.1.dist-info/METADATA": """
                Metadata-Version: 2.1\r
                Name: Flask-SQLAlchemy\r
                Version: 2.5.1\r
                License: BSD-3-Clause\r
                Classifier: License :: OSI Approved :: BSD License\r
                \r
                Body: not a header\r
                """,
            "\(Self.sitePackages)/zope.interface-6.0.dist-info/METADATA": """
                Metadata-Version: 2.4
                Name: zope.interface
                Version: 6.0
                License-Expression: ZPL-2.1
                License: a long
                  continued text
                """,
            "\(Self.sitePackages)/Pillow-6.0.0.dist-info/METADATA": """
                Metadata-Version: 2.1
                Name: Pillow
                Version: 6.0.0
                License: UNKNOWN
                Classifier: License :: Other/Proprietary License
                Classifier: License :: OSI Approved
                """,
            "\(Self.sitePackages)/Pillow-6.0.0.dist-info/RECORD": "not kept",
        ]))
        #expect(notes.isEmpty)
        try #require(result.packages.map(\.name) == ["Flask-SQLAlchemy", "Pillow", "zope.interface"])
        let flask = result.packages[0]
        #expect(flask.ecosystem == "pypi")
        #expect(flask.version == "2.5.1")
        #expect(flask.purl == "pkg:pypi/flask-sqlalchemy@2.5.1")
        #expect(flask.metadata?["normalizedName"] == "flask-sqlalchemy")
        #expect(flask.licenses == ["BSD-3-Clause"])
        #expect(flask.location == "\(Self.sitePackages)/Flask_SQLAlchemy-2.5.1.dist-info/METADATA")
        #expect(result.packages[1].licenses == ["Other/Proprietary License"])
        #expect(result.packages[2].purl == "pkg:pypi/zope-interface@6.0")
        #expect(result.packages[2].licenses == ["ZPL-2.1"])
    }

    @Test func eggInfoFileAndDirectory() throws {
        let (result, notes) = Self.catalog(PythonCataloger(), try Self.filesystem([
            "usr/lib/python3/dist-packages/mercurial-5.6.1.egg-info": "Metadata-Version: 1.1\nName: mercurial\nVersion: 5.6.1\nLicense: GNU GPLv2 or any later version\n",
            "usr/lib/python2.7/dist-packages/six-1.8.0.egg-info/PKG-INFO": "Metadata-Version: 1.1\nName: six\nVersion: 1.8.0\n",
            "usr/lib/python2.7/dist-packages/six-1.8.0.egg-info/SOURCES.txt": "six.py\n",
            "usr/lib/python2.7/site-packages/pytz-2018.5-py2.7.egg/EGG-INFO/PKG-INFO": "Name: pytz\nVersion: 2018.5\n",
            "src/build/EGG-INFO/PKG-INFO": "Name: leftover\nVersion: 0\n",
        ]))
        #expect(notes.isEmpty)
        #expect(result.packages.map { "\($0.name)@\($0.version)" } == ["six@1.8.0", "pytz@2018.5", "mercurial@5.6.1"])
        #expect(result.packages.last?.licenses == ["GNU GPLv2 or any later version"])
    }

    @Test func headerPrefixSurvivesABrokenSummary() {
        let metadata = PythonMetadata.parse(Array("Name: mxnet\nVersion: 1.8.0\nSummary: <!--- Licensed to\n<!--- or more\n\nBody\n".utf8))
        #expect(metadata.first("name") == "mxnet")
        #expect(metadata.first("Version") == "1.8.0")
        #expect(metadata.fields.count == 3)
    }

    @Test func pep503Normalisation() {
        #expect(PythonMetadata.normalize("Foo.Bar__baz--Qux") == "foo-bar-baz-qux")
        #expect(PythonMetadata.normalize("PyYAML") == "pyyaml")
    }

    @Test func badPythonMetadataBecomesNotes() throws {
        let (result, notes) = Self.catalog(PythonCataloger(), try Self.filesystem([
            "\(Self.sitePackages)/noversion-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: noversion\n",
            "\(Self.sitePackages)/binary-1.0.dist-info/METADATA": "\u{0}\u{1}\u{2}garbage",
            "\(Self.sitePackages)/huge-1.0.dist-info/METADATA": "Name: \(String(repeating: "x", count: 5000))\nVersion: 1\n",
            "\(Self.sitePackages)/ok-1.0.dist-info/METADATA": "Name: ok\nVersion: 1.0\n",
        ]))
        #expect(result.packages.map(\.name) == ["ok"])
        #expect(notes.count == 3)
        #expect(notes.contains { $0.contains("noversion-1.0.dist-info/METADATA") && $0.contains("no version") })
        #expect(notes.contains { $0.contains("huge-1.0.dist-info") && $0.contains("longer than") })
    }

    // MARK: npm

    @Test func nodeModulesManifestsOnly() throws {
        let (result, notes) = Self.catalog(NPMCataloger(), try Self.filesystem([
            "app/package.json": #"{"name": "my-app", "version": "1.0.0"}"#,
            "app/node_modules/minimist/package.json": #"{"name": "minimist", "version": "1.2.5", "license": "MIT"}"#,
            "app/node_modules/minimist/test/fixture/package.json": #"{"name": "fixture", "version": "0.0.1"}"#,
            "app/node_modules/@babel/core/package.json": #"{"name": "@babel/core", "version": "7.0.0", "license": {"type": "MIT", "url": "x"}}"#,
            "app/node_modules/a/node_modules/b/package.json": #"{"name": "b", "version": "2.0.0", "licenses": [{"type": "MIT"}, "Apache-2.0"]}"#,
            "app/node_modules/workspace/package.json": #"{"name": "workspace", "private": true}"#,
            "usr/lib/node_modules/npm/package.json": #"{"name": "npm", "version": "6.14.6", "license": "Artistic-2.0"}"#,
        ]))
        #expect(notes.isEmpty)
        try #require(result.packages.map { "\($0.name)@\($0.version)" } == ["@babel/core@7.0.0", "b@2.0.0", "minimist@1.2.5", "npm@6.14.6"])
        #expect(result.packages.map(\.purl) == ["pkg:npm/%40babel/core@7.0.0", "pkg:npm/b@2.0.0", "pkg:npm/minimist@1.2.5",
                                                "pkg:npm/npm@6.14.6"])
        #expect(result.packages.map(\.licenses) == [["MIT"], ["MIT", "Apache-2.0"], ["MIT"], ["Artistic-2.0"]])
        #expect(result.packages.allSatisfy { $0.ecosystem == "npm" })
        #expect(result.packages[2].location == "app/node_modules/minimist/package.json")
    }

    @Test func badNpmManifestsBecomeNotes() throws {
        let (result, notes) = Self.catalog(NPMCataloger(), try Self.filesystem([
            "node_modules/truncated/package.json": #"{"name": "truncated", "vers"#,
            "node_modules/array/package.json": "[1, 2]",
            "node_modules/noversion/package.json": #"{"name": "noversion"}"#,
            "node_modules/numbers/package.json": #"{"name": 5, "version": 6}"#,
            "node_modules/deep/package.json": String(repeating: "[", count: 200_000) + String(repeating: "]", count: 200_000),
            "node_modules/ok/package.json": #"{"name": "ok", "version": "1.0.0"}"#,
        ]))
        #expect(result.packages.map(\.name) == ["ok"])
        #expect(notes.count == 5)
        #expect(notes.contains { $0.contains("truncated/package.json") && $0.contains("not valid JSON") })
        #expect(notes.contains { $0.contains("array/package.json") && $0.contains("not a JSON object") })
    }

    // MARK: RubyGems

    @Test func installedGemSpecifications() throws {
        let (result, notes) = Self.catalog(RubyGemCataloger(), try Self.filesystem([
            "usr/local/bundle/specifications/rss-0.2.9.gemspec": """
                # stub: rss 0.2.9 ruby lib
                Gem::Specification.new do |s|
                  s.name = "rss".freeze
                  s.version = "0.2.9"
                  s.licenses = ["BSD-2-Clause".freeze, 'Ruby'.freeze]
                  s.add_runtime_dependency(%q<rexml>.freeze, [">= 0"])
                end
                """,
            "usr/lib/ruby/gems/3.0.0/specifications/default/json-2.5.1.gemspec": """
                Gem::Specification.new do |spec|
                  spec.name = %q{json}
                  spec.version = Gem::Version.new("2.5.1") if spec.respond_to? :version=
                  spec.license = "Ruby"
                end
                """,
            "usr/local/bundle/gems/rss-0.2.9/rss.gemspec": "Gem::Specification.new do |s|\n s.name = \"rss\"\n s.version = RSS::VERSION\nend\n",
            "usr/local/bundle/specifications/dynamic-1.0.gemspec": "s.name = \"dyn#{1}\"\ns.version = \"1.0\"\n",
        ]))
        #expect(result.packages.map { "\($0.name)@\($0.version)" } == ["json@2.5.1", "rss@0.2.9"])
        #expect(result.packages.map(\.purl) == ["pkg:gem/json@2.5.1", "pkg:gem/rss@0.2.9"])
        #expect(result.packages.map(\.licenses) == [["Ruby"], ["BSD-2-Clause", "Ruby"]])
        #expect(notes.count == 1)
        #expect(notes.first?.contains("dynamic-1.0.gemspec") == true)
    }

    @Test func gemspecLiterals() {
        #expect(GemspecParser.literals(in: #" "Andr\u00E9".freeze"#) == ["André"])
        #expect(GemspecParser.literals(in: #" 'a\'b' # comment "c""#) == ["a'b"])
        #expect(GemspecParser.literals(in: #" ["MIT".freeze] if s.respond_to? "x""#) == ["MIT"])
        #expect(GemspecParser.literals(in: #" "unterminated"#) == [])
        #expect(GemspecParser.assignment("s.version == \"1\"") == nil)
    }

    // MARK: Composer

    @Test func composerBothFormats() throws {
        let composer1 = #"[{"name": "asm89/stack-cors", "version": "1.3.0", "version_normalized": "1.3.0.0", "license": ["MIT"]}]"#
        let composer2 = #"""
            {"packages": [{"name": "behat/mink", "version": "v1.8.1", "license": ["MIT"]},
                          {"name": "phpunit/phpunit", "version": "9.5.0", "license": ["BSD-3-Clause"]}],
             "dev": true, "dev-package-names": ["phpunit/phpunit"]}
            """#
        let (result, notes) = Self.catalog(ComposerCataloger(), try Self.filesystem([
            "var/www/old/vendor/composer/installed.json": composer1,
            "var/www/new/vendor/composer/installed.json": composer2,
            "var/www/x/notvendor/composer/installed.json": composer1,
        ]))
        #expect(notes.isEmpty)
        try #require(result.packages.map { "\($0.name)@\($0.version)" } == ["behat/mink@v1.8.1", "phpunit/phpunit@9.5.0", "asm89/stack-cors@1.3.0"])
        #expect(result.packages.map(\.purl) == ["pkg:composer/behat/mink@v1.8.1", "pkg:composer/phpunit/phpunit@9.5.0",
                                                "pkg:composer/asm89/stack-cors@1.3.0"])
        #expect(result.packages[1].metadata?["dev"] == "true")
        #expect(result.packages[2].metadata?["versionNormalized"] == "1.3.0.0")
        #expect(result.packages[2].licenses == ["MIT"])
        #expect(result.databases == ["var/www/new/vendor/composer/installed.json", "var/www/old/vendor/composer/installed.json"])
    }

    @Test func badComposerDatabasesBecomeNotes() throws {
        let (result, notes) = Self.catalog(ComposerCataloger(), try Self.filesystem([
            "a/vendor/composer/installed.json": #"{"packages": [{"name": "x/y"}, 7, {"name": "ok/ok", "version": "1"}]}"#,
            "b/vendor/composer/installed.json": #"{"packages": "#,
            "c/vendor/composer/installed.json": #"{"other": []}"#,
        ]))
        #expect(result.packages.map(\.name) == ["ok/ok"])
        #expect(notes.count == 4)
    }

    // MARK: .NET

    @Test func depsJsonPackagesOnly() throws {
        let (result, notes) = Self.catalog(DotNetCataloger(), try Self.filesystem([
            "app/MyApp.deps.json": #"""
                {"libraries": {
                  "MyApp/1.0.0": {"type": "project"},
                  "Newtonsoft.Json/13.0.1": {"type": "package", "path": "newtonsoft.json/13.0.1"},
                  "Microsoft.NETCore.App.Runtime.linux-x64/8.0.0": {"type": "runtimepack"},
                  "Broken": {"type": "package"}
                }}
                """#,
            "app/Other.deps.json": #"{"libraries": "#,
            "app/Not.deps.json": "[]",
        ]))
        #expect(result.packages.map { "\($0.name)@\($0.version)" } == ["Newtonsoft.Json@13.0.1"])
        #expect(result.packages.first?.purl == "pkg:nuget/Newtonsoft.Json@13.0.1")
        #expect(result.packages.first?.ecosystem == "nuget")
        #expect(result.packages.first?.metadata?["path"] == "newtonsoft.json/13.0.1")
        #expect(result.packages.first?.metadata?["normalizedName"] == "newtonsoft.json")
        #expect(notes.count == 3)
        #expect(result.databases == ["app/MyApp.deps.json"])
    }

    // MARK: Whole inventory

    @Test func inventoryCombinesOSAndLanguagePackages() throws {
        let filesystem = try Self.filesystem([
            "etc/os-release": "ID=alpine\nVERSION_ID=3.10.9\n",
            "lib/apk/db/installed": "P:musl\nV:1.1.22-r4\nA:x86_64\no:musl\n\n",
            "\(Self.sitePackages)/requests-2.19.1.dist-info/METADATA": "Name: requests\nVersion: 2.19.1\n",
            "\(Self.sitePackages)/urllib3-1.24.1.dist-info/METADATA": "Name: urllib3\nVersion: 1.24.1\n",
            "srv/node_modules/ms/package.json": #"{"name": "ms", "version": "2.0.0"}"#,
        ], [
            // `pip uninstall urllib3` in a later layer.
            "\(Self.sitePackages)/.wh.urllib3-1.24.1.dist-info": "",
        ])
        let inventory = Cataloger.inventory(of: filesystem)
        #expect(inventory.notApplicable == nil)
        #expect(inventory.packages.map { "\($0.ecosystem):\($0.name)@\($0.version)" }
            == ["apk:musl@1.1.22-r4", "pypi:requests@2.19.1", "npm:ms@2.0.0"])
    }

    @Test func languagePackagesAloneAreApplicable() throws {
        let inventory = Cataloger.inventory(of: try Self.filesystem([
            "app/node_modules/ms/package.json": #"{"name": "ms", "version": "2.0.0"}"#,
        ]))
        #expect(inventory.notApplicable == nil)
        #expect(inventory.packages.map(\.purl) == ["pkg:npm/ms@2.0.0"])
    }
}
