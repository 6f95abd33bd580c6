import ArgumentParser
import Foundation

/// `gantry`: the operator and demo command line.
@main
struct GantryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gantry",
        abstract: "Operate a Gantry deployment: import feeds, run the end-to-end demo, inventory images offline.",
        subcommands: [FeedsCommand.self, DemoCommand.self, InventoryCommand.self, ScanCommand.self, SBOMCommand.self,
                      BillingCommand.self, ScansCommand.self, TokenCommand.self, ImportCommand.self])
}

/// `gantry feeds …`
struct FeedsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "feeds", abstract: "Manage the vulnerability knowledge base.",
        subcommands: [FeedsKeygenCommand.self, FeedsBundleCommand.self, FeedsImportCommand.self, FeedsExportCommand.self,
                      FeedsListCommand.self, ImportAlpineSecDBCommand.self])
}
