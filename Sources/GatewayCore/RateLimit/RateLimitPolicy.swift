/// One limit as written in `policies/rate-limits.yaml`: a sustained rate per second and a burst.
public struct LimitSpec: Sendable, Hashable, Codable {
    /// Requests per second, sustained.
    public var rate: Double
    /// Requests admitted at one instant; defaults to the rate (one second's worth), at least 1.
    public var burst: Int?

    /// Makes a spec.
    public init(rate: Double, burst: Int? = nil) {
        self.rate = rate
        self.burst = burst
    }

    /// The GCRA parameters.
    public var gcra: GCRA { GCRA(rate: rate, burst: burst ?? max(1, Int(rate.rounded(.down)))) }
}

/// Limits of one level: a default and per-category overrides.
public struct CategoryLimits: Sendable, Hashable, Codable {
    /// The limit for categories without an override; nil means no limit at this level.
    public var `default`: LimitSpec?
    /// Per rate-limit category (`payment-request-management`).
    public var categories: [String: LimitSpec]?

    /// Makes limits.
    public init(default: LimitSpec? = nil, categories: [String: LimitSpec]? = nil) {
        self.default = `default`
        self.categories = categories
    }

    /// The limit for a category.
    public func limit(for category: String) -> LimitSpec? { categories?[category] ?? `default` }
}

/// How one rule behaves beyond its numbers.
public struct RuleOptions: Sendable, Hashable, Codable {
    /// Wait up to this long for room instead of refusing (shaping); 0 refuses at once.
    public var maxDelayMs: Int?
    /// Decide and count, but never delay or refuse (to roll out a new limit safely).
    public var shadow: Bool?

    enum CodingKeys: String, CodingKey { case maxDelayMs = "max_delay_ms", shadow }

    /// Makes options.
    public init(maxDelayMs: Int? = nil, shadow: Bool? = nil) {
        self.maxDelayMs = maxDelayMs
        self.shadow = shadow
    }
}

/// A named plan: merchant-level limits assigned to merchants or groups instead of the environment's defaults.
public struct RatePlan: Sendable, Hashable, Codable {
    /// Per (merchant, category) limits of the plan.
    public var merchant: CategoryLimits

    /// Makes a plan.
    public init(merchant: CategoryLimits) { self.merchant = merchant }
}

/// `policies/rate-limits.yaml`: Klarna's two levels (merchant × category, acquirer × category) plus the
/// gateway's own (per caller, per caller × merchant, a global ceiling). Every level is optional.
public struct RateLimitPolicy: Sendable, Hashable, Codable {
    /// Per (merchant, category), by environment: Klarna's merchant-level quota.
    public var merchant: [KlarnaEnvironment: CategoryLimits]
    /// Per (partner, category), by environment: Klarna's acquirer-level quota.
    public var partner: [KlarnaEnvironment: CategoryLimits]
    /// The partner level of one partner, by partner id, instead of its environment's figures.
    public var partnerOverrides: [String: CategoryLimits]
    /// Per caller.
    public var caller: LimitSpec?
    /// The caller level of one caller, by caller id, instead of `caller`.
    public var callerOverrides: [String: LimitSpec]
    /// Per (caller, merchant).
    public var callerMerchant: LimitSpec?
    /// One ceiling for the whole gateway instance, or for the whole cluster in cluster mode (PostgreSQL storage).
    public var global: LimitSpec?
    /// Named plans.
    public var plans: [String: RatePlan]
    /// Plan assignment by merchant id.
    public var merchantPlans: [String: String]
    /// Plan assignment by merchant group (a merchant's own assignment wins).
    public var groupPlans: [String: String]
    /// Options per rule name (`merchant`, `partner`, `caller`, `caller_merchant`, `global`).
    public var options: [String: RuleOptions]
    /// Most calls waiting for room at once, across all rules; beyond it calls are refused.
    public var maxQueued: Int

    enum CodingKeys: String, CodingKey {
        case merchant, partner, caller, callerMerchant = "caller_merchant", global, plans
        case partnerOverrides = "partner_overrides", callerOverrides = "caller_overrides"
        case assign, options, maxQueued = "max_queued"
    }

    enum AssignKeys: String, CodingKey { case merchants, groups }

    /// Makes a policy.
    public init(
        merchant: [KlarnaEnvironment: CategoryLimits] = [:], partner: [KlarnaEnvironment: CategoryLimits] = [:],
        caller: LimitSpec? = nil, callerMerchant: LimitSpec? = nil, global: LimitSpec? = nil,
        plans: [String: RatePlan] = [:], merchantPlans: [String: String] = [:], groupPlans: [String: String] = [:],
        options: [String: RuleOptions] = [:], maxQueued: Int = 10_000,
        partnerOverrides: [String: CategoryLimits] = [:], callerOverrides: [String: LimitSpec] = [:]
    ) {
        self.merchant = merchant
        self.partner = partner
        self.partnerOverrides = partnerOverrides
        self.caller = caller
        self.callerOverrides = callerOverrides
        self.callerMerchant = callerMerchant
        self.global = global
        self.plans = plans
        self.merchantPlans = merchantPlans
        self.groupPlans = groupPlans
        self.options = options
        self.maxQueued = maxQueued
    }

    /// Klarna's published per-merchant figures (test 5/s session creation and 50/s otherwise; live 40/s and
    /// 200/s), used when the policy file says nothing. Acquirer-level figures are not public: none by default.
    public static let klarnaDefaults = RateLimitPolicy(
        merchant: [
            .test: CategoryLimits(default: LimitSpec(rate: 50), categories: ["payment-request-management": LimitSpec(rate: 5)]),
            .live: CategoryLimits(default: LimitSpec(rate: 200), categories: ["payment-request-management": LimitSpec(rate: 40)]),
        ]
    )

    /// Decodes, with every section optional.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func byEnvironment(_ key: CodingKeys) throws -> [KlarnaEnvironment: CategoryLimits] {
            let raw = try c.decodeIfPresent([String: CategoryLimits].self, forKey: key) ?? [:]
            var out: [KlarnaEnvironment: CategoryLimits] = [:]
            for (name, limits) in raw {
                guard let environment = KlarnaEnvironment(rawValue: name) else {
                    throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "'\(name)' is not an environment (test or live)")
                }
                out[environment] = limits
            }
            return out
        }
        merchant = try byEnvironment(.merchant)
        partner = try byEnvironment(.partner)
        partnerOverrides = try c.decodeIfPresent([String: CategoryLimits].self, forKey: .partnerOverrides) ?? [:]
        caller = try c.decodeIfPresent(LimitSpec.self, forKey: .caller)
        callerOverrides = try c.decodeIfPresent([String: LimitSpec].self, forKey: .callerOverrides) ?? [:]
        callerMerchant = try c.decodeIfPresent(LimitSpec.self, forKey: .callerMerchant)
        global = try c.decodeIfPresent(LimitSpec.self, forKey: .global)
        plans = try c.decodeIfPresent([String: RatePlan].self, forKey: .plans) ?? [:]
        if c.contains(.assign) {
            let assign = try c.nestedContainer(keyedBy: AssignKeys.self, forKey: .assign)
            merchantPlans = try assign.decodeIfPresent([String: String].self, forKey: .merchants) ?? [:]
            groupPlans = try assign.decodeIfPresent([String: String].self, forKey: .groups) ?? [:]
        } else {
            merchantPlans = [:]
            groupPlans = [:]
        }
        options = try c.decodeIfPresent([String: RuleOptions].self, forKey: .options) ?? [:]
        maxQueued = try c.decodeIfPresent(Int.self, forKey: .maxQueued) ?? 10_000
    }

    /// Encodes in the file's shape.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(Dictionary(uniqueKeysWithValues: merchant.map { ($0.key.rawValue, $0.value) }), forKey: .merchant)
        try c.encode(Dictionary(uniqueKeysWithValues: partner.map { ($0.key.rawValue, $0.value) }), forKey: .partner)
        try c.encode(partnerOverrides, forKey: .partnerOverrides)
        try c.encodeIfPresent(caller, forKey: .caller)
        try c.encode(callerOverrides, forKey: .callerOverrides)
        try c.encodeIfPresent(callerMerchant, forKey: .callerMerchant)
        try c.encodeIfPresent(global, forKey: .global)
        try c.encode(plans, forKey: .plans)
        var assign = c.nestedContainer(keyedBy: AssignKeys.self, forKey: .assign)
        try assign.encode(merchantPlans, forKey: .merchants)
        try assign.encode(groupPlans, forKey: .groups)
        try c.encode(options, forKey: .options)
        try c.encode(maxQueued, forKey: .maxQueued)
    }

    /// The partner level of one partner: its override, else its environment's figures. Resolved once per partner
    /// when a snapshot is built (`PartnerState.rateLimits`), not per call.
    public func partnerLimits(partnerID: String, environment: KlarnaEnvironment) -> CategoryLimits? {
        partnerOverrides[partnerID] ?? partner[environment]
    }

    /// The caller level of one caller: its override, else `caller`. Resolved once per caller when a snapshot is
    /// built (`CallerState.rateLimit`), not per call.
    public func callerLimit(callerID: String) -> LimitSpec? {
        callerOverrides[callerID] ?? caller
    }

    /// Overrides whose id names none of `partners` / `callers` (the store's ids). Allowed, since a partner or
    /// caller added later picks its figures up, but worth a warning: a mistyped id would otherwise do nothing.
    public func overridesNamingNone(partners: Set<String>, callers: Set<String>) -> [String] {
        partnerOverrides.keys.filter { !partners.contains($0) }.sorted().map { "partner_overrides.\($0)" }
            + callerOverrides.keys.filter { !callers.contains($0) }.sorted().map { "caller_overrides.\($0)" }
    }

    /// Problems a human should fix: unknown plans, rule names and categories, non-positive numbers, malformed ids.
    public func problems(knownCategories: Set<String>) -> [String] {
        var problems: [String] = []
        func check(_ spec: LimitSpec?, _ name: String) {
            guard let spec else { return }
            if !(spec.rate > 0) { problems.append("\(name): rate must be positive") }
            if let burst = spec.burst, burst < 1 { problems.append("\(name): burst must be at least 1") }
        }
        func check(_ limits: CategoryLimits, _ name: String) {
            check(limits.default, "\(name).default")
            for (category, spec) in limits.categories ?? [:] {
                if !knownCategories.contains(category) { problems.append("\(name): unknown category '\(category)'") }
                check(spec, "\(name).categories.\(category)")
            }
        }
        for (environment, limits) in merchant { check(limits, "merchant.\(environment.rawValue)") }
        for (environment, limits) in partner { check(limits, "partner.\(environment.rawValue)") }
        for (id, limits) in partnerOverrides {
            if let problem = MerchantRecord.problem(withID: id, kind: "partner") { problems.append("partner_overrides: '\(id)': \(problem)") }
            check(limits, "partner_overrides.\(id)")
        }
        check(caller, "caller")
        for (id, spec) in callerOverrides {
            if let problem = MerchantRecord.problem(withID: id, kind: "caller") { problems.append("caller_overrides: '\(id)': \(problem)") }
            check(spec, "caller_overrides.\(id)")
        }
        check(callerMerchant, "caller_merchant")
        check(global, "global")
        for (name, plan) in plans { check(plan.merchant, "plans.\(name).merchant") }
        for (who, plan) in merchantPlans.merging(groupPlans, uniquingKeysWith: { a, _ in a }) where plans[plan] == nil {
            problems.append("assign: \(who) names unknown plan '\(plan)'")
        }
        for name in options.keys where !RateLimitRule.allCases.map(\.rawValue).contains(name) {
            problems.append("options: unknown rule '\(name)' (rules: \(RateLimitRule.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        if maxQueued < 0 { problems.append("max_queued must not be negative") }
        return problems.sorted()
    }
}

/// The rules, in the order a refusal is attributed: the first that has no room decides.
public enum RateLimitRule: String, Sendable, CaseIterable, Hashable {
    /// Klarna's merchant-level quota.
    case merchant
    /// Klarna's acquirer-level quota.
    case partner
    /// A caller's own limit.
    case caller
    /// A caller's limit per merchant.
    case callerMerchant = "caller_merchant"
    /// The instance-wide ceiling (cluster-wide in cluster mode).
    case global
}
