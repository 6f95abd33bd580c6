import Foundation
import GantryModel
import GantryTesting
import Testing
@testable import ImageAnalysis

/// Every language-metadata file of the kinds the text catalogers read (`2-lang-metadata/`: Python,
/// npm, Ruby, PHP, .NET), placed at realistic paths in an image built here and catalogued; the expected
/// names and versions come from python3 reading the same files (`email.parser`, `json`, a regex on
/// RubyGems' `# stub:` line), never from our parsers.
@Suite(.enabled(if: Corpus.isAvailable)) struct LanguageCatalogerCorpusTests {
    /// Corpus file (relative to `2-lang-metadata/`) to its path in the test image.
    typealias Placement = [(corpus: String, image: String)]

    static func directory(_ relative: String) throws -> URL {
        try Corpus.file("2-lang-metadata/\(relative)")
    }

    static func names(in relative: String, suffix: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: try directory(relative).path)
            .filter { $0.hasSuffix(suffix) }.sorted()
    }

    /// Catalogues `placement` with `cataloger`; returns the packages and notes.
    static func catalog(_ cataloger: some PackageCataloger, _ placement: Placement) throws
        -> (packages: [InstalledPackage], notes: [String])
    {
        var layer = TarBuilder()
        for item in placement {
            let bytes = try Data(contentsOf: try directory(item.corpus))
            layer.items.append(.file(item.image, Array(bytes)))
        }
        var filesystem = MergedFilesystem()
        filesystem.apply(try LayerReader(limits: AnalysisLimits(), interest: cataloger.interest).read(layer.build(.none)))
        var notes: [String] = []
        let result = cataloger.packages(in: filesystem, operatingSystem: nil, notes: &notes)
        return (result.packages, notes)
    }

    // MARK: Python

    static let pythonScript = #"""
        import email.parser, json, sys
        out = {}
        for path in sys.argv[1:]:
            text = open(path, 'rb').read().decode('utf-8', 'replace')
            msg = email.parser.Parser().parsestr(text, headersonly=True)
            get = lambda key: (msg[key] or '').strip()
            out[path] = {'name': get('Name'), 'version': get('Version'),
                         'expression': get('License-Expression'), 'license': get('License')}
        print(json.dumps(out))
        """#

    @Test func pythonMetadataMatchesEmailParser() throws {
        var placement: Placement = []
        for folder in ["python/python3.8-debian11-image-site-packages", "python/dist-info"] {
            for file in try Self.names(in: folder, suffix: ".METADATA") {
                let stem = file.dropLast(".METADATA".count).replacingOccurrences(of: ".dist-info", with: "")
                placement.append(("\(folder)/\(file)", "usr/local/lib/python3.8/site-packages/\(stem).dist-info/METADATA"))
            }
        }
        for file in try Self.names(in: "python/egg-info", suffix: "") where file != "SOURCES.md" && !file.hasSuffix(".RECORD") {
            let target = file.hasSuffix(".egg-info")
                ? "usr/lib/python3/dist-packages/\(file)"
                : "usr/lib/python2.7/dist-packages/\(file.replacingOccurrences(of: ".PKG-INFO", with: "").replacingOccurrences(of: ".egg-info", with: "")).egg-info/PKG-INFO"
            placement.append(("python/egg-info/\(file)", target))
        }
        #expect(placement.count >= 40)
        let expected = try #require(try PythonOracle.json(
            Self.pythonScript, arguments: try placement.map { try Self.directory($0.corpus).path }) as? [String: [String: String]])
        let (packages, notes) = try Self.catalog(PythonCataloger(), placement)
        #expect(notes.isEmpty, "\(notes)")
        #expect(packages.count == placement.count)
        for item in placement {
            let oracle = try #require(expected[try Self.directory(item.corpus).path])
            let found = packages.filter { $0.location == item.image }
            #expect(found.map(\.name) == [oracle["name"]], "\(item.corpus)")
            #expect(found.map(\.version) == [oracle["version"]], "\(item.corpus)")
            guard let package = found.first else { continue }
            #expect(package.purl == "pkg:pypi/\(PythonMetadata.normalize(oracle["name"] ?? ""))@\(package.version)")
            // Where the file declares a license field, it is what we report.
            if let expression = oracle["expression"], !expression.isEmpty {
                #expect(package.licenses == [expression], "\(item.corpus)")
            } else if let license = oracle["license"], !license.isEmpty, license != "UNKNOWN", !license.contains("\n"),
                      license.utf8.count <= 200 {
                #expect(package.licenses == [license], "\(item.corpus)")
            }
        }
        // Spot checks against the files as read by eye.
        #expect(packages.first { $0.name == "pydantic" }?.licenses == ["MIT"])
        #expect(packages.first { $0.name == "Flask-SQLAlchemy" }?.purl == "pkg:pypi/flask-sqlalchemy@2.5.1")
        #expect(packages.first { $0.name == "mxnet" }?.version == "1.8.0")
    }

    // MARK: npm

    static let npmScript = #"""
        import json, sys
        out = {}
        for path in sys.argv[1:]:
            d = json.load(open(path))
            lic = d.get('license')
            if isinstance(lic, dict): lic = lic.get('type')
            lics = [lic] if lic else [l['type'] if isinstance(l, dict) else l for l in d.get('licenses', [])]
            out[path] = {'name': d.get('name'), 'version': d.get('version'), 'licenses': lics}
        print(json.dumps(out))
        """#

    @Test func npmManifestsMatchJson() throws {
        var installed: Placement = []
        for file in try Self.names(in: "npm/installed-node_modules", suffix: ".package.json")
        where !file.hasPrefix("ms-vscode.") {
            installed.append(("npm/installed-node_modules/\(file)",
                              "root/ext/node_modules/\(file.dropLast(".package.json".count))/package.json"))
        }
        installed.append(("npm/fixtures/syft-package.json", "usr/lib/node_modules/npm/package.json"))
        installed.append(("npm/fixtures/syft-package-license-objects.json", "opt/node_modules/@legacy/npm/package.json"))
        // The extension's own manifest and a project's lock-file neighbour are not installed packages.
        let notInstalled: Placement = [
            ("npm/installed-node_modules/ms-vscode.node-debug2.package.json", "root/ext/ms-vscode.node-debug2/package.json"),
            ("npm/lockfiles/snyk-100k-vulns.package.json", "srv/app/package.json"),
        ]
        let expected = try #require(try PythonOracle.json(
            Self.npmScript, arguments: try installed.map { try Self.directory($0.corpus).path }) as? [String: [String: Any]])
        let (packages, notes) = try Self.catalog(NPMCataloger(), installed + notInstalled)
        #expect(notes.isEmpty, "\(notes)")
        #expect(packages.count == installed.count)
        for item in installed {
            let oracle = try #require(expected[try Self.directory(item.corpus).path])
            let found = packages.filter { $0.location == item.image }
            #expect(found.map(\.name) == [oracle["name"] as? String], "\(item.corpus)")
            #expect(found.map(\.version) == [oracle["version"] as? String], "\(item.corpus)")
            #expect(found.first?.licenses ?? [] == oracle["licenses"] as? [String], "\(item.corpus)")
        }
        #expect(packages.first { $0.location.hasPrefix("opt/") }?.licenses == ["MIT", "Apache-2.0"])
    }

    // MARK: Ruby

    static let rubyScript = #"""
        import json, re, sys
        out = {}
        for path in sys.argv[1:]:
            text = open(path).read()
            name, version = re.search(r'^# stub: (\S+) (\S+)', text, re.M).groups()
            lics = re.search(r'^\s*s\.licenses = (.*)$', text, re.M)
            out[path] = {'name': name, 'version': version, 'licenses': re.findall(r'"([^"]*)"', lics.group(1)) if lics else []}
        print(json.dumps(out))
        """#

    @Test func gemspecsMatchStubLines() throws {
        let placement: Placement = try Self.names(in: "ruby", suffix: ".gemspec").map {
            ("ruby/\($0)", "usr/local/bundle/specifications/\($0)")
        }
        #expect(placement.count == 5)
        let expected = try #require(try PythonOracle.json(
            Self.rubyScript, arguments: try placement.map { try Self.directory($0.corpus).path }) as? [String: [String: Any]])
        let (packages, notes) = try Self.catalog(RubyGemCataloger(), placement)
        #expect(notes.isEmpty, "\(notes)")
        #expect(packages.count == placement.count)
        for item in placement {
            let oracle = try #require(expected[try Self.directory(item.corpus).path])
            let found = packages.filter { $0.location == item.image }
            #expect(found.map(\.name) == [oracle["name"] as? String], "\(item.corpus)")
            #expect(found.map(\.version) == [oracle["version"] as? String], "\(item.corpus)")
            #expect(found.first?.licenses == oracle["licenses"] as? [String], "\(item.corpus)")
        }
        #expect(packages.first { $0.name == "test-unit" }?.licenses == ["Ruby", "BSDL", "PSFL"])
    }

    // MARK: PHP

    static let composerScript = #"""
        import json, sys
        out = {}
        for path in sys.argv[1:]:
            d = json.load(open(path))
            pkgs = d['packages'] if isinstance(d, dict) else d
            out[path] = [[p['name'], p['version'], p.get('license', [])] for p in pkgs]
        print(json.dumps(out))
        """#

    @Test func composerInstalledMatchesJson() throws {
        let placement: Placement = try Self.names(in: "php", suffix: "-installed.json").map {
            ("php/\($0)", "var/www/\($0.dropLast("-installed.json".count))/vendor/composer/installed.json")
        }
        #expect(placement.count == 2)
        let expected = try #require(try PythonOracle.json(
            Self.composerScript, arguments: try placement.map { try Self.directory($0.corpus).path }) as? [String: [[Any]]])
        let (packages, notes) = try Self.catalog(ComposerCataloger(), placement)
        #expect(notes.isEmpty, "\(notes)")
        for item in placement {
            let oracle = try #require(expected[try Self.directory(item.corpus).path])
            let found = packages.filter { $0.location == item.image }
            #expect(found.map(\.name) == oracle.map { $0[0] as? String ?? "" }, "\(item.corpus)")
            #expect(found.map(\.version) == oracle.map { $0[1] as? String ?? "" }, "\(item.corpus)")
            #expect(found.map { $0.licenses ?? [] } == oracle.map { $0[2] as? [String] ?? [] }, "\(item.corpus)")
        }
        #expect(packages.contains { $0.purl == "pkg:composer/behat/mink@v1.8.1" })
    }

    // MARK: .NET

    static let dotnetScript = #"""
        import json, sys
        out = {}
        for path in sys.argv[1:]:
            libs = json.load(open(path))['libraries']
            out[path] = sorted(k for k, v in libs.items() if v.get('type') == 'package')
        print(json.dumps(out))
        """#

    @Test func depsJsonMatchesJson() throws {
        let placement: Placement = try Self.names(in: "dotnet", suffix: ".deps.json").map {
            ("dotnet/\($0)", "app/\($0.dropLast(".deps.json".count))/\($0)")
        }
        #expect(placement.count == 7)
        let expected = try #require(try PythonOracle.json(
            Self.dotnetScript, arguments: try placement.map { try Self.directory($0.corpus).path }) as? [String: [String]])
        let (packages, notes) = try Self.catalog(DotNetCataloger(), placement)
        #expect(notes.isEmpty, "\(notes)")
        for item in placement {
            let oracle = try #require(expected[try Self.directory(item.corpus).path])
            let found = packages.filter { $0.location == item.image }
            #expect(found.map { "\($0.name)/\($0.version)" }.sorted() == oracle, "\(item.corpus)")
        }
        #expect(packages.count == expected.values.map(\.count).reduce(0, +))
        #expect(packages.contains { $0.purl == "pkg:nuget/Newtonsoft.Json@9.0.1" })
    }

    /// Truncating every corpus file of these kinds anywhere gives notes or fewer packages, never a crash.
    @Test func truncatedCorpusFilesNeverCrash() throws {
        let cases: [(any PackageCataloger, String, String)] = [
            (NPMCataloger(), "npm/fixtures/syft-package.json", "node_modules/npm/package.json"),
            (ComposerCataloger(), "php/syft-composer2-installed.json", "vendor/composer/installed.json"),
            (DotNetCataloger(), "dotnet/syft-TestLibrary.deps.json", "app/TestLibrary.deps.json"),
            (RubyGemCataloger(), "ruby/syft-bundler.gemspec", "specifications/bundler-2.1.4.gemspec"),
            (PythonCataloger(), "python/dist-info/snyk-pydantic-2.9.2.METADATA", "sp/pydantic-2.9.2.dist-info/METADATA"),
        ]
        for (cataloger, corpus, image) in cases {
            let bytes = Array(try Data(contentsOf: try Self.directory(corpus)))
            for length in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 37)) {
                var layer = TarBuilder()
                layer.items.append(.file(image, Array(bytes[..<length])))
                var filesystem = MergedFilesystem()
                filesystem.apply(try LayerReader(interest: cataloger.interest).read(layer.build(.none)))
                var notes: [String] = []
                let result = cataloger.packages(in: filesystem, operatingSystem: nil, notes: &notes)
                // A truncated JSON document is never valid; other formats may keep a valid prefix.
                if corpus.hasSuffix(".json"), length < bytes.count - 1 {
                    #expect(result.packages.isEmpty && notes.count == 1, "\(corpus) cut at \(length)")
                } else {
                    #expect(result.packages.count + notes.count >= 1, "\(corpus) cut at \(length)")
                }
            }
        }
    }
}
