/// Who a Klarna operation acts for, which decides where the merchant comes from and which key is sent.
public enum OperationScope: String, Sendable, Hashable, Codable {
    /// `/v2/accounts/{partner_account_id}/…`: the acquirer's key, the merchant's KRN in the path.
    case merchant
    /// `/v2/account/…`, `/v2/notification/…`, …: the acquirer itself, no merchant.
    case acquirer
    /// `/v2/payment/…` without an account segment: the merchant's own key.
    case direct
}

/// One row of the operation catalogue: a Klarna API operation the gateway knows.
public struct Operation: Sendable, Hashable {
    /// Stable operation id (`capturePaymentTransaction`).
    public let id: String
    /// HTTP method.
    public let method: String
    /// Path template with `{name}` parameters.
    public let template: String
    /// Merchant, acquirer or direct.
    public let scope: OperationScope
    /// API family, the unit grants are written in (`payment-transaction`).
    public let family: String
    /// Klarna rate-limit category (`payment-transaction-capture`).
    public let category: String
    /// The release that introduced it (`stable-v1`, `r3` …).
    public let introducedIn: String
    /// True where Klarna offers it in the test environment only.
    public let testOnly: Bool
    /// The template's segments (without the leading empty one), split once.
    public let templateSegments: [Substring]
    /// Index of the `{partner_account_id}` segment in the path's segments, for merchant-scoped operations.
    public let accountSegmentIndex: Int?
    /// Whether a path parameter carries a customer's token (`{payment_token}` …), which the audit record replaces
    /// by its template name: known once here rather than searched for on every call.
    public let hasTokenSegment: Bool

    /// Makes an operation.
    public init(
        id: String, method: String, template: String, scope: OperationScope, family: String, category: String,
        introducedIn: String, testOnly: Bool
    ) {
        self.id = id
        self.method = method
        self.template = template
        self.scope = scope
        self.family = family
        self.category = category
        self.introducedIn = introducedIn
        self.testOnly = testOnly
        self.templateSegments = Array(template.fastSplit(UInt8(ascii: "/")).dropFirst())
        self.accountSegmentIndex = templateSegments.firstIndex(of: "{partner_account_id}")
        self.hasTokenSegment = templateSegments.contains { $0.hasPrefix("{") && $0.lowercased().contains("token") }
    }
}
