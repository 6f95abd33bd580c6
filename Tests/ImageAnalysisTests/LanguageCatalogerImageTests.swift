import Foundation
import GantryModel
import GantryTesting
import Testing
import ImageAnalysis

/// The python-app image (CORPUS.md, "Images") end to end: OCI archive, every layer through
/// `LayerReader` and `MergedFilesystem`, then `Cataloger.inventory`. The expected packages are listed by
/// python3 from the same archive (`tarfile` over the layers, `email.parser` over each METADATA).
@Suite(.enabled(if: Corpus.isAvailable)) struct LanguageCatalogerImageTests {
    static let listingScript = #"""
        import email.parser, io, json, sys, tarfile
        archive = tarfile.open(sys.argv[1])
        blob = lambda digest: archive.extractfile('blobs/sha256/' + digest.split(':')[1]).read()
        index = json.loads(archive.extractfile('index.json').read())
        manifest = json.loads(blob(index['manifests'][0]['digest']))
        files = {}
        for layer in manifest['layers']:
            tar = tarfile.open(fileobj=io.BytesIO(blob(layer['digest'])), mode='r:*')
            for member in tar.getmembers():
                path = member.name[2:] if member.name.startswith('./') else member.name.lstrip('/')
                head, _, base = path.rpartition('/')
                if base.startswith('.wh.'):
                    gone = (head + '/' if head else '') + base[4:]
                    files = {k: v for k, v in files.items() if k != gone and not k.startswith(gone + '/')}
                elif member.isfile() and (path.endswith('.dist-info/METADATA') or path.endswith('.egg-info/PKG-INFO')
                                          or path.endswith('.egg-info') or path == 'lib/apk/db/installed'):
                    files[path] = tar.extractfile(member).read().decode('utf-8', 'replace')
        out = []
        for path, text in sorted(files.items()):
            if path == 'lib/apk/db/installed':
                out += [['apk', line[2:], path] for line in text.split('\n') if line.startswith('P:')]
            else:
                msg = email.parser.Parser().parsestr(text, headersonly=True)
                out.append(['pypi', msg['Name'].strip() + '@' + msg['Version'].strip(), path])
        print(json.dumps(out))
        """#

    @Test func pythonAppHasApkAndPyPIPackages() throws {
        let url = try Corpus.file("images/python-app.oci.tar")
        let archive = try OCIArchive(try Data(contentsOf: url))
        var filesystem = MergedFilesystem()
        for digest in try archive.layerDigests() {
            filesystem.apply(try LayerReader().read(try #require(archive.blob(digest))))
        }
        let inventory = Cataloger.inventory(of: filesystem)

        let listing = try #require(try PythonOracle.json(Self.listingScript, arguments: [url.path]) as? [[String]])
        let expectedPyPI = listing.filter { $0[0] == "pypi" }.map { "\($0[1]) \($0[2])" }
        let expectedApk = listing.filter { $0[0] == "apk" }.map { $0[1] }
        #expect(expectedPyPI.count == 14)
        #expect(inventory.notApplicable == nil)
        #expect(inventory.operatingSystem?.versionID == "3.10.9")
        #expect(inventory.notes.isEmpty, "\(inventory.notes)")

        let pypi = inventory.packages.filter { $0.ecosystem == "pypi" }
        #expect(pypi.map { "\($0.name)@\($0.version) \($0.location)" } == expectedPyPI)
        #expect(inventory.packages.filter { $0.ecosystem == "apk" }.map(\.name) == expectedApk)
        #expect(inventory.packages.count == expectedPyPI.count + expectedApk.count)

        // The brief's named packages, with purls as Syft 1.18 writes them for this image.
        let purls = Set(pypi.map(\.purl))
        for purl in ["pkg:pypi/django@2.2", "pkg:pypi/flask@0.12.2", "pkg:pypi/jinja2@2.10", "pkg:pypi/urllib3@1.24.1",
                     "pkg:pypi/requests@2.19.1", "pkg:pypi/pillow@6.0.0", "pkg:pypi/lxml@4.2.5",
                     "pkg:pypi/cryptography@2.3", "pkg:pypi/pyyaml@5.4", "pkg:pypi/paramiko@2.4.1"] {
            #expect(purls.contains(purl), "\(purl)")
        }
        #expect(pypi.first { $0.name == "requests" }?.licenses == ["Apache 2.0"])
        #expect(pypi.first { $0.name == "PyYAML" }?.metadata?["normalizedName"] == "pyyaml")
    }
}
