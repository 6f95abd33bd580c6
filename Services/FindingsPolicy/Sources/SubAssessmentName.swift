import Crypto
import FindingsPolicyAPI
import Foundation

/// Sub-assessment names: UUIDs that stay the same across rescans of an image, so that links and
/// exports keep pointing at the same finding.
enum SubAssessmentName {
    /// One name per finding of `image`, in report order.
    ///
    /// The name is an RFC 9562 version 8 UUID over the first 16 bytes of SHA-256 of the registry, repository,
    /// digest, vulnerability ID, package, installed version and — for a finding repeated in one report (the
    /// same package version installed twice) — its occurrence number.
    static func names(for findings: [Finding], in image: ImageKey) -> [UUID] {
        var occurrences: [String: Int] = [:]
        return findings.map { finding in
            let key = [finding.vulnerabilityId, finding.packageName, finding.installedVersion].joined(separator: "\u{0}")
            let occurrence = occurrences[key, default: 0]
            occurrences[key] = occurrence + 1
            let text = ["gantry-sub-assessment", image.registryID.uuidString.lowercased(), image.repository, image.digest,
                        key, String(occurrence)].joined(separator: "\u{0}")
            var bytes = Array(SHA256.hash(data: Data(text.utf8)).prefix(16))
            bytes[6] = (bytes[6] & 0x0F) | 0x80  // version 8
            bytes[8] = (bytes[8] & 0x3F) | 0x80  // variant 10
            return UUID(uuid: (bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                               bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]))
        }
    }
}
