import ArgumentParser
import Foundation
import GatewayApp
import GatewayCore

/// `klarna-gateway webhooks …`
struct Webhooks: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Klarna's webhooks: signing keys, registration at Klarna, destinations, events and replays.",
        subcommands: [Register.self, Keys.self, Destinations.self, Events.self, Replay.self]
    )

    struct Register: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a signing key at Klarna (sealed at once, never shown) and a webhook to URL signed with it.")
        @OptionGroup var config: ConfigOptions
        @Option(name: .customLong("partner"), help: "Partner id: its credentials call Klarna.") var partner: String
        @Option(name: .customLong("url"), help: "The public URL Klarna posts to (https, port 443 or 8443), ending in /klarna/webhooks/PARTNER.")
        var url: String
        @Option(name: .customLong("events"), help: "Event type pattern (repeatable), e.g. 'payment.*'.") var events: [String] = ["*"]
        @Option(name: .customLong("event-version"), help: "Klarna's event version.") var eventVersion: String?

        func run() async throws {
            try await reportingErrors {
                let loaded = try config.load(.serving)
                let roots = try loaded.upstream.caFile.map { try String(contentsOfFile: loaded.resolve($0), encoding: .utf8) }
                let registration = try await AdminService.open(config: loaded).registerWebhook(
                    partnerID: partner, url: url, eventTypes: events, eventVersion: eventVersion, trustRootsPEM: roots)
                print("partner \(partner): signing key \(registration.keyID) sealed; webhook \(registration.webhookID) posts to \(url)")
            }
        }
    }

    struct Keys: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Signing keys that verify Klarna's deliveries (sealed in the vault).", subcommands: [List.self, Add.self, Rotate.self, Remove.self])

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List signing keys (ids only; a secret is never shown).")
            @OptionGroup var config: ConfigOptions
            @Option(name: .customLong("partner"), help: "Only this partner's keys.") var partner: String?

            func run() async throws {
                try await reportingErrors {
                    for key in try await config.admin().listWebhookKeys(partnerID: partner) {
                        print("\(key.partnerID)\t\(key.keyID)\tsealed under master key v\(key.sealedUnder)")
                    }
                }
            }
        }

        struct Add: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Seal a signing key created elsewhere.")
            @OptionGroup var config: ConfigOptions
            @Option(name: .customLong("partner"), help: "Partner id.") var partner: String
            @Option(name: .customLong("key-id"), help: "Klarna's signing key id.") var keyID: String
            @Option(name: .customLong("secret-file"), help: "File holding the secret, or - for stdin.") var secretFile: String

            func run() async throws {
                try await reportingErrors {
                    try await config.admin().addWebhookKey(
                        partnerID: partner, keyID: keyID, secret: try SecretInput.read(secretFile, what: "signing key secret"))
                    print("partner \(partner): signing key \(keyID) sealed")
                }
            }
        }

        struct Rotate: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Create a new key at Klarna and move every webhook of the partner to it; old keys stay accepted until removed.")
            @OptionGroup var config: ConfigOptions
            @Option(name: .customLong("partner"), help: "Partner id.") var partner: String

            func run() async throws {
                try await reportingErrors {
                    let loaded = try config.load(.serving)
                    let roots = try loaded.upstream.caFile.map { try String(contentsOfFile: loaded.resolve($0), encoding: .utf8) }
                    let rotated = try await AdminService.open(config: loaded).rotateWebhookKey(partnerID: partner, trustRootsPEM: roots)
                    print("partner \(partner): signing key \(rotated.keyID) sealed; webhooks moved: \(rotated.moved.isEmpty ? "none" : rotated.moved.joined(separator: ", "))")
                }
            }
        }

        struct Remove: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Remove a signing key: deliveries signed with it are refused.")
            @OptionGroup var config: ConfigOptions
            @Option(name: .customLong("partner"), help: "Partner id.") var partner: String
            @Option(name: .customLong("key-id"), help: "Klarna's signing key id.") var keyID: String

            func run() async throws {
                try await reportingErrors {
                    try await config.admin().removeWebhookKey(partnerID: partner, keyID: keyID)
                    print("partner \(partner): signing key \(keyID) removed")
                }
            }
        }
    }

    struct Destinations: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Internal systems events are delivered to.", subcommands: [Add.self, List.self, Remove.self])

        struct Add: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Add (or replace) a destination; its secret and client key are sealed.")
            @OptionGroup var config: ConfigOptions
            @Argument(help: "Destination name, as routes name it.") var name: String
            @Option(name: .customLong("url"), help: "https:// URL (http:// to loopback only).") var url: String
            @Option(name: .customLong("secret-file"), help: "Standard Webhooks secret (whsec_… or any text), or - for stdin.") var secretFile: String?
            @Option(name: .customLong("client-cert"), help: "PEM client certificate presented to the destination.") var clientCert: String?
            @Option(name: .customLong("client-key"), help: "PEM private key of that certificate, or -.") var clientKey: String?

            func run() async throws {
                try await reportingErrors {
                    try SecretInput.checkOneStdin(secretFile, clientKey)
                    try await config.admin().addWebhookDestination(
                        name: name, url: url, secret: try secretFile.map { try SecretInput.read($0, what: "destination secret") },
                        clientCertificatePEM: try clientCert.map { try SecretInput.text($0, what: "client certificate") },
                        clientKeyPEM: try clientKey.map { try SecretInput.read($0, what: "client key") })
                    print("destination \(name): \(url)")
                }
            }
        }

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List destinations (no secrets).")
            @OptionGroup var config: ConfigOptions

            func run() async throws {
                try await reportingErrors {
                    for destination in try await config.admin().webhookStore.webhookDestinations() {
                        let secret = destination.secret.map { "secret \($0)" } ?? "no secret"
                        let mtls = destination.clientKey.map { "client key \($0)" } ?? "no client certificate"
                        print("\(destination.name)\t\(destination.url)\t\(secret)\t\(mtls)")
                    }
                }
            }
        }

        struct Remove: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Remove a destination (refused while a route names it); its pending deliveries become dead.")
            @OptionGroup var config: ConfigOptions
            @Argument(help: "Destination name.") var name: String

            func run() async throws {
                try await reportingErrors {
                    let loaded = try config.load()
                    try await AdminService.open(config: loaded).removeWebhookDestination(name: name, routesPath: loaded.policies.webhooks.map(loaded.resolve))
                    print("destination \(name) removed")
                }
            }
        }
    }

    struct Events: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Received events and their deliveries.", subcommands: [List.self, Show.self])

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List events, newest first.")
            @OptionGroup var config: ConfigOptions
            @Option(name: .customLong("merchant"), help: "Only this merchant's events.") var merchant: String?
            @Option(name: .customLong("state"), help: "pending, delivered, dead, unroutable or unrouted.") var state: String?
            @Option(name: .customLong("since"), help: "Only events received at or after this ISO 8601 time.") var since: String?
            @Option(name: .customLong("limit"), help: "At most this many.") var limit = 100

            func run() async throws {
                try await reportingErrors {
                    var query = WebhookEventQuery(merchantID: merchant, limit: limit)
                    if let state {
                        guard let parsed = WebhookEventState(rawValue: state) else {
                            throw ValidationFailure("--state must be one of \(WebhookEventState.allCases.map(\.rawValue).joined(separator: ", "))")
                        }
                        query.state = parsed
                    }
                    if let since {
                        guard let date = ISO8601DateFormatter().date(from: since) else { throw ValidationFailure("--since must be an ISO 8601 time") }
                        query.sinceMicros = Int64(date.timeIntervalSince1970 * 1_000_000)
                    }
                    for event in try await config.admin().webhookStore.webhookEvents(query) {
                        print("\(event.eventID)\t\(event.state.rawValue)\t\(event.eventType)\t\(event.merchantID ?? "-")\t\(event.account)\t\(Self.time(event.receivedAtMicros))")
                    }
                }
            }

            static func time(_ micros: Int64) -> String { ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(micros) / 1e6)) }
        }

        struct Show: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "One event: envelope, merchant, each delivery and attempt.")
            @OptionGroup var config: ConfigOptions
            @Argument(help: "Klarna's event id.") var eventID: String

            func run() async throws {
                try await reportingErrors {
                    let store = try await config.admin().webhookStore
                    guard let event = try await store.webhookEvent(id: eventID) else { throw ValidationFailure("no event with id '\(eventID)'") }
                    print("event id:      \(event.eventID)")
                    print("type:          \(event.eventType)")
                    print("state:         \(event.state.rawValue)")
                    print("partner:       \(event.partnerID)")
                    print("merchant:      \(event.merchantID ?? "- (unroutable)")")
                    print("account:       \(event.account)")
                    print("signing key:   \(event.signingKeyID)")
                    print("received:      \(List.time(event.receivedAtMicros))")
                    print("body:          \(event.body.count) bytes")
                    print(String(decoding: event.body, as: UTF8.self))
                    for delivery in try await store.webhookDeliveries(eventID: eventID) {
                        print("delivery \(delivery.destination): \(delivery.state.rawValue), \(delivery.attempts) attempts"
                            + (delivery.state == .pending ? ", next \(List.time(delivery.nextAttemptMicros))" : ""))
                    }
                    for attempt in try await store.webhookAttempts(eventID: eventID) {
                        print("  attempt \(attempt.attempt) → \(attempt.destination) at \(List.time(attempt.timeMicros)) by \(attempt.nodeID): "
                            + (attempt.status.map { "HTTP \($0)" } ?? (attempt.error ?? "no answer")))
                    }
                }
            }
        }
    }

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Deliver again: one event (dead or delivered), or every dead delivery.")
        @OptionGroup var config: ConfigOptions
        @Argument(help: "Klarna's event id.") var eventID: String?
        @Flag(name: .customLong("dead"), help: "Every dead delivery.") var dead = false
        @Option(name: .customLong("destination"), help: "Only deliveries to this destination.") var destination: String?

        func validate() throws {
            guard (eventID != nil) != dead else { throw ValidationError("give an EVENT_ID or --dead, not both and not neither") }
        }

        func run() async throws {
            try await reportingErrors {
                let admin = try await config.admin()
                if let eventID, try await admin.webhookStore.webhookEvent(id: eventID) == nil { throw ValidationFailure("no event with id '\(eventID)'") }
                let count = try await admin.replayWebhookDeliveries(eventID: eventID, destination: destination)
                print("\(count) deliveries pending again")
            }
        }
    }
}
