import GatewayCore
import GatewayWebhooks

/// What the running gateway loads from the store: partners and merchants with their secrets opened, callers.
public struct LoadedCredentials: Sendable {
    /// Partners ready for the hot path.
    public var partners: [PartnerState]
    /// Merchants ready for the hot path.
    public var merchants: [MerchantState]
    /// Every caller (revoked ones are filtered by the snapshot).
    public var callers: [CallerRecord]
    /// Staged roll-outs in force.
    public var rollouts: [Rollout]
    /// The newest stored version of each policy that has one; the config's files serve the others.
    public var policies: [PolicyVersion]
    /// The store generation they were read at.
    public var generation: Int64

    /// Makes a bundle.
    public init(
        partners: [PartnerState], merchants: [MerchantState], callers: [CallerRecord], rollouts: [Rollout] = [], policies: [PolicyVersion] = [],
        generation: Int64
    ) {
        self.partners = partners
        self.merchants = merchants
        self.callers = callers
        self.rollouts = rollouts
        self.policies = policies
        self.generation = generation
    }
}

/// Where the gateway's credentials come from; the store-backed source opens sealed secrets with the vault.
public protocol CredentialSource: Sendable {
    /// The store's change counter, polled cheaply to decide whether to reload.
    func generation() async throws -> Int64
    /// Everything, with secrets opened.
    func load() async throws -> LoadedCredentials
    /// Calls `onChange` soon after the source changes, until cancelled; false at once when it cannot push.
    func watchChanges(_ onChange: @escaping @Sendable () -> Void) async throws -> Bool
    /// The webhook path's keys, routes and destinations, secrets opened; `routesPath` is `policies.webhooks`.
    func loadWebhookDirectory(routesPath: String?) async throws -> WebhookDirectory
    /// Where webhook events and deliveries are stored; nil when the source has no store.
    var webhookStore: (any WebhookStore)? { get }
}

extension CredentialSource {
    /// No push by default: the gateway polls `generation()`.
    public func watchChanges(_ onChange: @escaping @Sendable () -> Void) async throws -> Bool { false }
    /// No webhooks by default.
    public func loadWebhookDirectory(routesPath: String?) async throws -> WebhookDirectory { .empty }
    /// No store by default.
    public var webhookStore: (any WebhookStore)? { nil }
}
