import Foundation
import GantryTesting
import PostgresNIO
import Testing

/// Exactly-once metering under concurrency and retries, through the real HTTP endpoint and PostgreSQL.
@Suite("Billing metering race")
struct MeteringRaceTests {
    /// One distinct usage message of the race and the (subscription, digest) it is about.
    struct Message: Sendable {
        var usage: UsageMessage
        var key: String { "\(usage.subscriptionId) \(usage.digest)" }
    }

    @Test("20 concurrent senders × 50 deliveries (500 messages, each delivered twice, rescans mixed in) charge each (subscription, digest) exactly once")
    func raceManyScannersOnTheSameDigests() async throws {
        try await BillingHarness.run { h in
            let accounts = [try await h.account(), try await h.account()]
            // Per subscription and digest, five scans; digests ending in 9 are only ever rescanned or re-evaluated.
            var messages: [Message] = []
            for account in accounts {
                for index in 0..<50 {
                    let triggers = index % 10 == 9
                        ? ["rescan", "reevaluation", "rescan", "rescan", "rescan"]
                        : ["push", "rescan", "manual", "import", "push"]
                    for (copy, trigger) in triggers.enumerated() {
                        messages.append(Message(usage: account.scan(digest(number: index), trigger: trigger,
                                                                    messageID: "usage:\(account.subscription):\(index):\(copy)")))
                    }
                }
            }
            // Every message is delivered twice (a retried outbox POST), in random order, by 20 senders at once.
            let deliveries = (messages + messages).shuffled()
            let senders = 20
            let perSender = deliveries.count / senders
            #expect(deliveries.count == 1000 && perSender == 50)
            let started = ContinuousClock.now
            let receipts = try await withThrowingTaskGroup(of: [(Message, Receipt)].self) { group in
                for sender in 0..<senders {
                    let share = Array(deliveries[(sender * perSender)..<((sender + 1) * perSender)])
                    group.addTask {
                        var answered: [(Message, Receipt)] = []
                        for message in share { answered.append((message, try await h.receipt(message.usage))) }
                        return answered
                    }
                }
                var all: [(Message, Receipt)] = []
                for try await answered in group { all += answered }
                return all
            }
            let elapsed = ContinuousClock.now - started
            print("metering race: \(receipts.count) deliveries by \(senders) senders in \(elapsed)")
            #expect(receipts.count == 1000)

            // Receipts: per (subscription, digest) exactly one first-time charge; both deliveries of a message agree.
            let billableKeys = Set(messages.filter { $0.usage.trigger != "rescan" && $0.usage.trigger != "reevaluation" }.map(\.key))
            #expect(billableKeys.count == 90)
            let fresh = receipts.filter { !$0.1.redelivered }
            #expect(fresh.count == 500)
            let charges = Dictionary(grouping: fresh.filter { $0.1.charged }, by: { $0.0.key })
            #expect(Set(charges.keys) == billableKeys)
            #expect(charges.values.allSatisfy { $0.count == 1 })
            let byMessage = Dictionary(grouping: receipts, by: { $0.0.usage.messageId })
            #expect(byMessage.count == 500)
            for (id, pair) in byMessage {
                #expect(pair.count == 2 && pair[0].1.disposition == pair[1].1.disposition
                        && pair[0].1.chargeID == pair[1].1.chargeID, "\(id)")
            }

            // The database agrees: one charge per billable (subscription, digest), none for the rescanned ones.
            #expect(try await h.chargeCount() == 90)
            #expect(try await h.count("""
                SELECT count(*)::int FROM (SELECT subscription_id, digest FROM billing.charges
                GROUP BY 1, 2 HAVING count(*) > 1) AS doubled
                """) == 0)
            for index in stride(from: 9, to: 50, by: 10) {
                #expect(try await h.chargeCount(digest: digest(number: index)) == 0)
            }
            #expect(try await h.count("SELECT count(*)::int FROM billing.inbox") == 500)
            #expect(try await h.count("SELECT count(*)::int FROM billing.usage_events") == 500)
            #expect(try await h.count("SELECT count(*)::int FROM billing.usage_events WHERE charge_id IS NOT NULL") == 90)
            for account in accounts {
                let usage = try await h.usage(tenant: account.tenant, subscription: account.subscription)
                #expect(usage["scans"] as? Int == 250)
                #expect(usage["billableImages"] as? Int == 45)
                #expect(usage["amount"] as? String == "13.0500")
            }
        }
    }
}
