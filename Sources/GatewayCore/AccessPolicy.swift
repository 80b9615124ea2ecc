/// What one caller may do, from `policies/access.yaml`.
public struct Grant: Sendable, Hashable, Codable {
    /// Merchant selectors: an id, `group:NAME`, `partner:ID` (all of a partner's merchants) or `*`.
    public var merchants: [String]
    /// Partners the caller may act for in acquirer-scoped operations, or `*`.
    public var partners: [String]
    /// Operation families (`payment-transaction`), or `*`.
    public var families: [String]
    /// Extra permissions: `release-override`.
    public var permissions: [String]

    /// Makes a grant.
    public init(merchants: [String] = [], partners: [String] = [], families: [String] = [], permissions: [String] = []) {
        self.merchants = merchants
        self.partners = partners
        self.families = families
        self.permissions = permissions
    }

    enum CodingKeys: String, CodingKey { case merchants, partners, families, permissions }

    /// Decodes with every list optional.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        merchants = try c.decodeIfPresent([String].self, forKey: .merchants) ?? []
        partners = try c.decodeIfPresent([String].self, forKey: .partners) ?? []
        families = try c.decodeIfPresent([String].self, forKey: .families) ?? []
        permissions = try c.decodeIfPresent([String].self, forKey: .permissions) ?? []
    }

    /// True when the grant covers this merchant.
    public func covers(merchant: MerchantRecord) -> Bool { MerchantSelector.any(merchants, covers: merchant) }

    /// True when the grant covers acquirer-scoped calls for this partner.
    public func covers(partnerID: String) -> Bool { partners.contains("*") || partners.contains(partnerID) }

    /// True when the grant covers this operation family; operations outside the catalogue need `*`.
    public func covers(family: String) -> Bool {
        families.contains("*") || (family != OperationMatching.unknownFamily && families.contains(family))
    }

    /// True when the caller may choose a release with `Klarna-Gateway-Release`.
    public var mayOverrideRelease: Bool { permissions.contains("release-override") }
}

/// The whole access policy: grants by caller id.
public struct AccessPolicy: Sendable, Hashable, Codable {
    /// Grants by caller id; a caller without an entry may do nothing.
    public var callers: [String: Grant]

    /// Makes a policy.
    public init(callers: [String: Grant]) { self.callers = callers }

    /// Problems a human should fix: unknown families and permissions, malformed selectors.
    public func problems(knownFamilies: Set<String>) -> [String] {
        var problems: [String] = []
        for (caller, grant) in callers.sorted(by: { $0.key < $1.key }) {
            for family in grant.families where family != "*" && !knownFamilies.contains(family) {
                problems.append("caller \(caller): unknown family '\(family)' (known: \(knownFamilies.sorted().joined(separator: ", ")))")
            }
            for permission in grant.permissions where permission != "release-override" {
                problems.append("caller \(caller): unknown permission '\(permission)'")
            }
            for selector in grant.merchants where MerchantSelector.isEmpty(selector) {
                problems.append("caller \(caller): empty merchant selector")
            }
        }
        return problems
    }
}

/// Merchant selectors as access grants and webhook routes write them: an id, `group:NAME`, `partner:ID` or `*`.
public enum MerchantSelector {
    /// True when one of `selectors` covers `merchant`.
    public static func any(_ selectors: [String], covers merchant: MerchantRecord) -> Bool {
        for selector in selectors {
            if selector == "*" || selector == merchant.id { return true }
            if selector.hasPrefix("group:"), merchant.groups.contains(String(selector.dropFirst(6))) { return true }
            if selector.hasPrefix("partner:"), merchant.partnerID == selector.dropFirst(8) { return true }
        }
        return false
    }

    /// True for a selector that can never match anything (empty, or a prefix without a name).
    public static func isEmpty(_ selector: String) -> Bool { selector.isEmpty || selector == "group:" || selector == "partner:" }
}
