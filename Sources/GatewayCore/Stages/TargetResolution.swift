/// Who a call acts for: a merchant (through its partner) or a partner itself.
public enum CallTarget: Sendable {
    /// A merchant-scoped call: the partner's key, the merchant's KRN in the path.
    case merchant(MerchantState, PartnerState)
    /// A direct-model call: the merchant's own key, no account segment.
    case direct(MerchantState, PartnerState)
    /// An acquirer-scoped call for a partner.
    case partner(PartnerState)

    /// The partner whose host and certificate are used.
    public var partner: PartnerState {
        switch self {
        case .merchant(_, let partner), .direct(_, let partner), .partner(let partner): partner
        }
    }

    /// The merchant, if the call acts for one.
    public var merchant: MerchantState? {
        switch self {
        case .merchant(let merchant, _), .direct(let merchant, _): merchant
        case .partner: nil
        }
    }
}

/// Stage 3: resolve the merchant (header or account segment) or the partner, and check the caller's grant.
///
/// Resolution and authorization are one stage on purpose: an unknown merchant and a merchant the caller may not
/// see must produce the same refusal, so that grants do not leak which merchants exist.
public struct TargetResolution: Sendable {
    /// Header naming the merchant.
    public static let merchantHeader = "klarna-gateway-merchant"
    /// Header naming the partner for acquirer-scoped calls.
    public static let partnerHeader = "klarna-gateway-partner"

    static let hidden = GatewayError(.forbidden, "The caller is not granted this merchant, partner or operation.")

    /// Makes the stage.
    public init() {}

    /// Resolves and authorizes the target of a matched operation.
    public func resolve<H: HeaderLookup>(
        operation: Operation, segments: [Substring], headers: H, caller: CallerRecord, in snapshot: GatewaySnapshot
    ) throws(GatewayError) -> CallTarget {
        guard let grant = snapshot.access.callers[caller.id] else { throw Self.hidden }
        let named = try headers.single(Self.merchantHeader)
        switch operation.scope {
        case .merchant:
            guard let index = operation.accountSegmentIndex, index < segments.count else { throw Self.hidden }
            let fromPath = try merchant(forSegment: segments[index], in: snapshot)
            // The header naming the merchant the path names (as callers send it) needs no second lookup.
            if let named, fromPath?.record.id != named {
                guard let fromHeader = snapshot.merchants[named] else { throw Self.hidden }
                guard let fromPath else { throw Self.hidden }
                guard fromHeader.record.id == fromPath.record.id else {
                    throw GatewayError(.badRequest, "Klarna-Gateway-Merchant and the account in the path name different merchants.")
                }
            }
            guard let merchant = fromPath else { throw Self.hidden }
            let partner = try authorize(merchant: merchant, family: operation.family, grant: grant, in: snapshot)
            return .merchant(merchant, partner)
        case .direct:
            guard let named else {
                throw GatewayError(.badRequest, "Direct-model operations need the Klarna-Gateway-Merchant header.")
            }
            guard let merchant = snapshot.merchants[named] else { throw Self.hidden }
            let partner = try authorize(merchant: merchant, family: operation.family, grant: grant, in: snapshot)
            guard merchant.ownAuthorization != nil else {
                throw GatewayError(.forbidden, "This merchant has no API key of its own for direct-model operations.")
            }
            return .direct(merchant, partner)
        case .acquirer:
            let partnerID: String
            if let header = try headers.single(Self.partnerHeader) {
                partnerID = header
            } else {
                let granted = grant.partners.contains("*") ? Array(snapshot.partners.keys) : grant.partners
                guard granted.count == 1, let only = granted.first else {
                    throw GatewayError(.badRequest, "Name the partner with the Klarna-Gateway-Partner header.")
                }
                partnerID = only
            }
            guard grant.covers(partnerID: partnerID), grant.covers(family: operation.family),
                let partner = snapshot.partners[partnerID]
            else { throw Self.hidden }
            return .partner(partner)
        }
    }

    /// The merchant an account segment names: its KRN, or its gateway id.
    func merchant(forSegment segment: Substring, in snapshot: GatewaySnapshot) throws(GatewayError) -> MerchantState? {
        // Bytes, not `hasPrefix`, which compares by Unicode canonical equivalence on a Substring.
        if segment.utf8.starts(with: "krn:".utf8) {
            guard let environment = AccountKRN.environment(of: segment) else {
                throw GatewayError(.badRequest, "The account segment is not a valid partner account KRN.")
            }
            return snapshot.merchants[account: segment, of: environment]
        }
        let id = String(segment)
        // A segment that cannot be a merchant id (a ':' or '%' in it, say) is malformed, not merely unknown.
        if MerchantRecord.problem(withID: id) != nil {
            throw GatewayError(.badRequest, "The account segment is neither a partner account KRN nor a merchant id.")
        }
        return snapshot.merchants[id]
    }

    private func authorize(merchant: MerchantState, family: String, grant: Grant, in snapshot: GatewaySnapshot) throws(GatewayError) -> PartnerState {
        guard grant.covers(merchant: merchant.record), grant.covers(family: family),
            let partner = snapshot.partners[merchant.record.partnerID]
        else { throw Self.hidden }
        // Suspension is told only to callers who may see the merchant.
        guard merchant.record.status == .active else {
            throw GatewayError(.merchantSuspended, "Merchant \(merchant.record.id) is suspended.")
        }
        return partner
    }
}
