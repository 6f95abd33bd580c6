import Foundation
import GantryRuntime
import GantryTesting
import Notification
import Testing

/// Notification uses the deployment's one SSRF guard (`AddressGuard.forDeployment`), so the private-network setting
/// registries and imports honour applies to its receivers too (issue 6, "SSRF guard").
@Suite struct AddressGuardSettingTests {
    @Test("GANTRY_ALLOW_PRIVATE_WEBHOOKS=true admits private-network receivers; link-local stays refused")
    func privateNetworksWhenAllowed() async throws {
        try await Harness.run(environment: ["GANTRY_ALLOW_PRIVATE_WEBHOOKS": "true"]) { h in
            let lan = try await h.createChannel(["type": "webhook", "name": "lan", "url": "http://10.0.0.5/hook",
                                                 "secret": Harness.secret])
            #expect(lan.status == 201, "\(lan.text)")
            let slack = try await h.createChannel(["type": "slack", "name": "lan chat", "url": "http://192.168.1.1:8080/hook/x/y"])
            #expect(slack.status == 201, "\(slack.text)")
            for url in ["http://169.254.169.254/latest", "http://0.0.0.0/hook", "http://[fe80::1]/hook"] {
                try expectProblem(try await h.createChannel(["type": "webhook", "name": "x", "url": url, "secret": Harness.secret]),
                                  status: 400)
            }
        }
    }

    @Test("without the setting a private receiver is refused with the guard's reason")
    func privateNetworksRefusedByDefault() async throws {
        try await Harness.run { h in
            let refused = try await h.createChannel(["type": "webhook", "name": "lan", "url": "http://10.0.0.5/hook",
                                                     "secret": Harness.secret])
            try expectProblem(refused, status: 400)
            #expect(refused.text.contains("private-network"), "\(refused.text)")
            // It names notification's own setting, not the registries' one.
            #expect(refused.text.contains("GANTRY_ALLOW_PRIVATE_WEBHOOKS=true allows private networks"), "\(refused.text)")
        }
    }

    @Test("a setting that is neither true nor false stops the service at start-up, naming the variable")
    func badSettingRefused() async throws {
        let error = await #expect(throws: ConfigurationError.self) {
            try await Harness.run(environment: ["GANTRY_ALLOW_PRIVATE_WEBHOOKS": "yes"]) { _ in }
        }
        #expect(error?.variable == "GANTRY_ALLOW_PRIVATE_WEBHOOKS")
    }
}
