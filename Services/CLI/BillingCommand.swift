import ArgumentParser
import BillingAPI
import Foundation
import GantryRuntime
import OpenAPIRuntime

/// `gantry billing …`: a subscription's usage and invoices from the billing service
/// (`GANTRY_BILLING_URL`, default http://127.0.0.1:8085).
struct BillingCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "billing", abstract: "Show a subscription's usage and monthly invoices.",
        subcommands: [BillingUsageCommand.self, BillingInvoiceCommand.self])
}

/// The subscription a billing command is about.
struct BillingSubscriptionOptions: ParsableArguments {
    @Option(help: "The tenant ID (UUID).")
    var tenant: String
    @Option(help: "The subscription ID (UUID).")
    var subscription: String

    func validate() throws {
        guard UUID(uuidString: tenant) != nil else { throw ValidationError("--tenant '\(tenant)' is not a UUID") }
        guard UUID(uuidString: subscription) != nil else {
            throw ValidationError("--subscription '\(subscription)' is not a UUID")
        }
    }

    func client() async throws -> BillingAPI.Client {
        let (url, transport, middlewares) = try await ServiceConnection.fromEnvironment().clientParts(.billing)
        return BillingAPI.Client(serverURL: url, transport: transport, middlewares: middlewares)
    }
}

/// `gantry billing usage --tenant T --subscription S [--from DAY] [--to DAY] [--by day|month] [--json]`.
struct BillingUsageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "usage",
        abstract: "Scans, billable images and the amount per registry and UTC day or month.")

    @OptionGroup var subscription: BillingSubscriptionOptions
    @Option(help: "First UTC day included, YYYY-MM-DD (default: all usage).")
    var from: String?
    @Option(help: "Last UTC day included, YYYY-MM-DD (default: all usage).")
    var to: String?
    @Option(help: "Period length: day or month.")
    var by: Operations.GetUsage.Input.Query.GranularityPayload = .month
    @Flag(help: "Print the usage document as JSON.")
    var json = false

    func run() async throws {
        let client = try await subscription.client()
        let reply = try await client.getUsage(
            path: .init(tenantId: subscription.tenant, subscriptionId: subscription.subscription),
            query: .init(from: from, to: to, granularity: by))
        let usage: Components.Schemas.Usage
        switch reply {
        case .ok(let ok): usage = try ok.body.json
        case .badRequest(let problem): throw CLIError((try? problem.body.applicationProblemJson.detail) ?? "refused")
        case .undocumented(let status, let payload): throw await CLIError.undocumented("billing", status: status, payload)
        }
        if json {
            print(try CLIOutput.json(usage))
            return
        }
        var table = [["PERIOD", "REGISTRY", "SCANS", "BILLABLE", "TRIAL", "AMOUNT"]]
        for period in usage.periods {
            table.append([period.period, period.registryHost ?? period.registryId, String(period.scans),
                          String(period.billableImages), String(period.trialImages), period.amount])
        }
        table.append(["total", "", String(usage.scans), String(usage.billableImages), String(usage.trialImages),
                      "\(usage.amount) \(usage.currency)"])
        print(CLIOutput.columns(table))
    }
}

/// `gantry billing invoice --tenant T --subscription S --month YYYY-MM [--format json|csv]`.
struct BillingInvoiceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "invoice", abstract: "Print the invoice of a UTC month, JSON or CSV (RFC 4180).")

    @OptionGroup var subscription: BillingSubscriptionOptions
    @Option(help: "The month, YYYY-MM.")
    var month: String
    @Option(help: "json or csv.")
    var format: Operations.GetInvoice.Input.Query.FormatPayload = .json

    func run() async throws {
        let client = try await subscription.client()
        let reply = try await client.getInvoice(
            path: .init(tenantId: subscription.tenant, subscriptionId: subscription.subscription, month: month),
            query: .init(format: format),
            headers: .init(accept: [.init(contentType: format == .csv ? .csv : .json)]))
        switch reply {
        case .ok(let ok):
            switch ok.body {
            case .json(let invoice): print(try CLIOutput.json(invoice))
            case .csv(let body):
                // The CSV as billing wrote it, CRLF line ends included.
                FileHandle.standardOutput.write(try await Data(collecting: body, upTo: 64 << 20))
            }
        case .badRequest(let problem): throw CLIError((try? problem.body.applicationProblemJson.detail) ?? "refused")
        case .undocumented(let status, let payload): throw await CLIError.undocumented("billing", status: status, payload)
        }
    }
}

extension Operations.GetUsage.Input.Query.GranularityPayload: ExpressibleByArgument {}
extension Operations.GetInvoice.Input.Query.FormatPayload: ExpressibleByArgument {}
