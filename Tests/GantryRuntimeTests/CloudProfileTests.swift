import GantryModel
import GantryRuntime
import Testing

@Suite struct CloudProfileTests {
    let commercial = CloudProfile.profile(for: .commercial)
    let government = CloudProfile.profile(for: .government)
    let china = CloudProfile.profile(for: .china)

    @Test(arguments: ["127.0.0.1:5000", "localhost:5000", "LOCALHOST", "127.0.0.2", "[::1]:5000"])
    func loopbackOnlyInDevelopment(_ host: String) {
        #expect(commercial.refusal(forLoginServer: host, profile: .development) == nil)
        let refusal = commercial.refusal(forLoginServer: host, profile: .production)
        #expect(refusal?.contains("loopback") == true)
    }

    @Test(arguments: [
        "10.0.0.1", "10.255.255.255:5000", "192.168.1.10:5000", "172.16.0.1", "172.20.3.4", "172.31.255.255",
        "169.254.169.254", "0.0.0.0", "[fd00::1]:5000", "[fe80::1]", "[::]",
    ])
    func privateAndLinkLocalAlwaysRefused(_ host: String) {
        for profile in [DeploymentProfile.development, .production] {
            #expect(commercial.refusal(forLoginServer: host, profile: profile) != nil, "\(host) in \(profile)")
            #expect(commercial.refusalForWebhook(host: host, profile: profile) != nil, "\(host) webhook in \(profile)")
        }
    }

    @Test(arguments: ["172.15.0.1", "172.32.0.1", "192.169.0.1", "11.0.0.1", "8.8.8.8:443", "docker.io",
                      "myregistry.azurecr.io", "registry-1.docker.io:443",
                      // Host names that merely start like IPv6 unique-local or link-local prefixes are public.
                      "fdic-registry.example.com", "fcr.io", "fe80registry.example.com"])
    func publicHostsAcceptedInCommercial(_ host: String) {
        #expect(commercial.refusal(forLoginServer: host, profile: .production) == nil, "\(host)")
        #expect(commercial.refusalForWebhook(host: host, profile: .production) == nil, "\(host)")
    }

    /// Resolvers (getaddrinfo via inet_aton) read these as private or loopback addresses, so they must be judged as such.
    @Test(arguments: ["10.1", "167772161", "0x0a000001", "012.0.0.1", "0xa9.0xfe.169.254", "[::ffff:10.0.0.1]",
                      "[::ffff:192.168.0.1]:5000", "[::ffff:a9fe:a9fe]", "[fc00::1]", "[febf::1]"])
    func alternativeSpellingsOfPrivateAddressesRefused(_ host: String) {
        for profile in [DeploymentProfile.development, .production] {
            #expect(commercial.refusal(forLoginServer: host, profile: profile)?.contains("private") == true, "\(host)")
            #expect(commercial.refusalForWebhook(host: host, profile: profile)?.contains("private") == true, "\(host)")
        }
    }

    @Test(arguments: ["2130706433", "0x7f000001", "127.1", "[::ffff:127.0.0.1]:5000", "[0:0:0:0:0:0:0:1]"])
    func alternativeSpellingsOfLoopbackOnlyInDevelopment(_ host: String) {
        #expect(commercial.refusal(forLoginServer: host, profile: .development) == nil, "\(host)")
        #expect(commercial.refusal(forLoginServer: host, profile: .production)?.contains("loopback") == true, "\(host)")
        #expect(commercial.refusalForWebhook(host: host, profile: .production)?.contains("loopback") == true, "\(host)")
    }

    @Test func governmentAcceptsOnlyItsSuffixes() {
        #expect(government.refusal(forLoginServer: "x.azurecr.us", profile: .production) == nil)
        #expect(government.refusal(forLoginServer: "X.AZURECR.US:443", profile: .production) == nil)
        #expect(government.refusal(forLoginServer: "registry.agency.gov", profile: .production) == nil)
        #expect(government.refusal(forLoginServer: "fdic.gov", profile: .production) == nil)
        for host in ["docker.io", "x.azurecr.io", "evilazurecr.us", "azurecr.us.evil.com", "x.gov.example.com"] {
            let refusal = government.refusal(forLoginServer: host, profile: .production)
            #expect(refusal?.contains("government") == true, "\(host)")
        }
        // Loopback still works for development in every cloud; private addresses never do.
        #expect(government.refusal(forLoginServer: "127.0.0.1:5000", profile: .development) == nil)
        // A host name is judged as a name, whatever its labels look like.
        #expect(government.refusal(forLoginServer: "10.1.2.3.azurecr.us", profile: .production) == nil)
        #expect(government.refusal(forLoginServer: "10.1.2.3", profile: .production) != nil)
    }

    @Test func chinaAcceptsOnlyItsSuffixes() {
        #expect(china.refusal(forLoginServer: "x.azurecr.cn", profile: .production) == nil)
        #expect(china.refusal(forLoginServer: "docker.io", profile: .production) != nil)
        #expect(china.currency == "CNY")
        #expect(china.offlineFeeds)
        #expect(!commercial.offlineFeeds)
    }

    @Test(arguments: ["", "https://docker.io", "docker.io/library", "user@docker.io", "docker io", ":5000",
                      "docker.io:port", String(repeating: "a", count: 256)])
    func malformedHostsRefused(_ host: String) {
        let refusal = commercial.refusal(forLoginServer: host, profile: .development)
        #expect(refusal?.contains("is not a host name") == true, "\(host)")
        #expect(CloudProfile.host(ofLoginServer: host) == nil)
    }

    @Test func hostIsLowercasedWithoutPort() {
        #expect(CloudProfile.host(ofLoginServer: "Registry.Example.COM:5000") == "registry.example.com")
    }
}
