import Foundation
import NotificationAPI

/// The bodies each channel type sends (notification.yaml, "Channels"), encoded with `JSONEncoder`.
enum ChannelPayloads {
    /// Finding lines in a chat message: both Slack (3,000 characters per section) and Teams (about 28 KB per
    /// message) cut long messages, so the rest is counted instead of listed; webhooks and CloudEvents carry all.
    static let chatFindingLimit = 20
    /// Finding lines in an e-mail.
    static let emailFindingLimit = 500

    static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }

    /// The generic webhook body: the alert itself (notification.yaml `Alert`), findings narrowed to the floor.
    static func webhook(_ presentation: AlertPresentation) throws -> Data {
        try encoder().encode(presentation.alert)
    }

    // MARK: Slack

    /// A Slack incoming-webhook message: `text` (the notification and fallback) and Block Kit `blocks`
    /// (https://api.slack.com/reference/block-kit/blocks: header ≤ 150 characters, section text ≤ 3,000).
    struct SlackMessage: Encodable {
        struct Text: Encodable {
            var type: String
            var text: String
        }

        struct Block: Encodable {
            var type: String
            var text: Text?
            var elements: [Text]?
        }

        var text: String
        var blocks: [Block]
    }

    static func slack(_ presentation: AlertPresentation) throws -> Data {
        let (lines, more) = presentation.findingLines(limit: chatFindingLimit)
        var blocks: [SlackMessage.Block] = [
            .init(type: "header", text: .init(type: "plain_text", text: String(presentation.title.prefix(150)))),
            .init(type: "section", text: .init(type: "mrkdwn", text: clip(slackEscape(presentation.alert.summary), 3000))),
        ]
        let facts = presentation.facts.map { "*\(slackEscape($0.0))*: \(slackEscape($0.1))" }.joined(separator: "\n")
        if !facts.isEmpty { blocks.append(.init(type: "section", text: .init(type: "mrkdwn", text: clip(facts, 3000)))) }
        if !lines.isEmpty {
            var text = lines.map { "• " + slackEscape($0) }.joined(separator: "\n")
            if more > 0 { text += "\n…and \(more) more" }
            blocks.append(.init(type: "section", text: .init(type: "mrkdwn", text: clip(text, 3000))))
        }
        blocks.append(.init(type: "context", elements: [.init(type: "mrkdwn", text: "Gantry alert `\(slackEscape(presentation.alert.messageId))`")]))
        return try encoder().encode(SlackMessage(text: clip(slackEscape(presentation.title), 3000), blocks: blocks))
    }

    /// Slack's three control characters in text (https://api.slack.com/reference/surfaces/formatting#escaping).
    static func slackEscape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
    }

    // MARK: Microsoft Teams

    /// A Teams incoming-webhook message with one Adaptive Card 1.4 attachment, the format Teams Workflows
    /// ("Post to a channel when a webhook request is received") and the older connectors both accept.
    struct TeamsMessage: Encodable {
        struct Attachment: Encodable {
            var contentType = "application/vnd.microsoft.card.adaptive"
            var content: Card
        }

        struct Card: Encodable {
            var schema = "http://adaptivecards.io/schemas/adaptive-card.json"
            var type = "AdaptiveCard"
            var version = "1.4"
            var body: [Element]

            enum CodingKeys: String, CodingKey {
                case schema = "$schema"
                case type, version, body
            }
        }

        struct Fact: Encodable {
            var title: String
            var value: String
        }

        struct Element: Encodable {
            var type: String
            var text: String?
            var wrap: Bool?
            var size: String?
            var weight: String?
            var color: String?
            var facts: [Fact]?
        }

        var type = "message"
        var attachments: [Attachment]
    }

    static func teams(_ presentation: AlertPresentation) throws -> Data {
        let (lines, more) = presentation.findingLines(limit: chatFindingLimit)
        var body: [TeamsMessage.Element] = [
            .init(type: "TextBlock", text: presentation.title, wrap: true, size: "Large", weight: "Bolder", color: "Attention"),
            .init(type: "TextBlock", text: presentation.alert.summary, wrap: true),
        ]
        let facts = presentation.facts.map { TeamsMessage.Fact(title: $0.0, value: $0.1) }
        if !facts.isEmpty { body.append(.init(type: "FactSet", facts: facts)) }
        if !lines.isEmpty {
            // Adaptive Card TextBlocks render a Markdown subset: one "- " list item per line.
            var text = lines.map { "- " + $0 }.joined(separator: "\n")
            if more > 0 { text += "\n\n…and \(more) more" }
            body.append(.init(type: "TextBlock", text: text, wrap: true))
        }
        body.append(.init(type: "TextBlock", text: "Gantry alert \(presentation.alert.messageId)", wrap: true, size: "Small"))
        return try encoder().encode(TeamsMessage(attachments: [.init(content: .init(body: body))]))
    }

    // MARK: CloudEvents

    /// A CloudEvents 1.0 event in the JSON event format, structured content mode
    /// (https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/formats/json-format.md).
    struct CloudEvent: Encodable {
        var specversion = "1.0"
        /// The alert's message ID: the same event on every delivery, so consumers deduplicate by `source` + `id`.
        var id: String
        var source: String
        var type: String
        var subject: String?
        var time: String
        var datacontenttype = "application/json"
        var data: Components.Schemas.Alert
    }

    static let cloudEventContentType = "application/cloudevents+json; charset=utf-8"

    static func cloudEvent(_ presentation: AlertPresentation, receivedAt: Date) throws -> Data {
        let alert = presentation.alert
        let source = "/gantry/tenants/\(alert.tenantId ?? "-")/subscriptions/\(alert.subscriptionId ?? "-")"
        let subject = presentation.kind.concernsImage
            ? [alert.registryHost, alert.repositoryName].compactMap { $0 }.joined(separator: "/") + "@" + (alert.imageDigest ?? "")
            : (alert.feed ?? alert.registryHost)
        let event = CloudEvent(id: alert.messageId, source: source, type: "gantry.alert.\(presentation.kind.rawValue)",
                               subject: subject, time: receivedAt.formatted(.iso8601), data: alert)
        return try encoder().encode(event)
    }

    // MARK: E-mail

    /// The subject and plain-text body of an alert e-mail.
    static func email(_ presentation: AlertPresentation) -> (subject: String, text: String) {
        let subject = "[Gantry] " + presentation.title + (presentation.severityCounts.map { " (\($0))" } ?? "")
        var text = presentation.alert.summary + "\n\n"
        for (label, value) in presentation.facts { text += "\(label): \(value)\n" }
        let (lines, more) = presentation.findingLines(limit: emailFindingLimit)
        if !lines.isEmpty {
            text += "\nFindings:\n" + lines.map { "  - " + $0 }.joined(separator: "\n") + "\n"
            if more > 0 { text += "  …and \(more) more\n" }
        }
        text += "\nGantry alert \(presentation.alert.messageId)\n"
        return (subject, text)
    }

    private static func clip(_ text: String, _ limit: Int) -> String {
        text.count <= limit ? text : String(text.prefix(limit - 1)) + "…"
    }
}
