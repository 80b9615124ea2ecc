import Foundation
import GatewayCore

/// Plausible fixed answers for the catalogue operations the simulator does not model: every route answers, never
/// with a bare 404.
///
/// Canned (stateless) operations: partner accounts, brands, stores, store groups, compliance decisions, business
/// entities, payment products/programs/accounts/profiles/plans, price plans, onboarding, portal deep links and user
/// access, messaging placements, payment presentation, identity and interoperability tokens, chargebacks, dispute
/// attachment download, client identifier and SFTP credentials, allowed IPs, and `createSettlement`.
/// Reads echo the ids in the path; creates return 201 with a fresh id and the body's fields; updates return the
/// body's fields; deletes return 204. Bodies are still parsed, so malformed JSON gets Klarna's 400.
enum CannedResponses {
    static func answer(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        let body = try call.jsonBody()
        let operation = call.operation
        let now = SimulatorClock.iso8601(call.nowMilliseconds)
        if let special = special(&call, body: body, now: now) { return special }

        let literals = operation.templateSegments.filter { !$0.hasPrefix("{") }
        let parameterNames = operation.templateSegments.filter { $0.hasPrefix("{") }.map { String($0.dropFirst().dropLast()) }
        let lastSegmentIsParameter = operation.templateSegments.last?.hasPrefix("{") ?? false
        let collection = String(literals.last ?? "items").replacingOccurrences(of: "-", with: "_")
        let noun = collection.hasSuffix("ies") ? String(collection.dropLast(3)) + "y" : (collection.hasSuffix("s") ? String(collection.dropLast()) : collection)
        let idName = lastSegmentIsParameter ? (parameterNames.last ?? "\(noun)_id") : "\(noun)_id"

        var echo: [(String, JSONValue)] = []
        for name in parameterNames where name != idName { echo.append((name, .string(call.parameter(name)))) }

        switch operation.method {
        case "DELETE": return .noContent
        case "GET" where !lastSegmentIsParameter:
            let item = JSONValue.object([(idName, .string(SimulatorID.krn(noun.replacingOccurrences(of: "_", with: "-"))))] + echo
                + [("status", "ACTIVE"), ("created_at", .string(now))])
            return SimulatorResponse(status: 200, json: .object([(collection, .array([item])), ("pagination", ["next": .null])]))
        case "GET":
            return SimulatorResponse(status: 200, json: .object([(idName, .string(call.parameter(idName)))] + echo
                + [("status", "ACTIVE"), ("created_at", .string(now)), ("updated_at", .string(now))]))
        case "POST" where operation.id.hasPrefix("create") || operation.id.hasPrefix("grant") || operation.id.hasPrefix("upload"):
            let fields = (body.objectValue ?? []).filter { $0.0 != idName }
            return SimulatorResponse(status: 201, json: .object([(idName, .string(SimulatorID.krn(noun.replacingOccurrences(of: "_", with: "-"))))] + echo + fields
                + [("status", "ACTIVE"), ("created_at", .string(now))]))
        default:
            let fields = (body.objectValue ?? []).filter { $0.0 != idName }
            let id = lastSegmentIsParameter || parameterNames.contains(idName) ? call.parameter(idName) : SimulatorID.krn(noun)
            return SimulatorResponse(status: 200, json: .object([(idName, .string(id))] + echo + fields + [("updated_at", .string(now))]))
        }
    }

    /// Operations whose generic shape would be implausible.
    private static func special(_ call: inout Call, body: JSONValue, now: String) -> SimulatorResponse? {
        let expires = SimulatorClock.iso8601(call.nowMilliseconds + 3_600_000)
        switch call.operation.id {
        case "readPartnerAccount", "updatePartnerAccount":
            var account: JSONValue = [
                "partner_account_id": .string(call.merchant ?? ""), "account_name": .string("Simulated merchant \(call.merchant?.split(separator: ":").last ?? "")"),
                "state": "OPERATIONAL", "country": "SE", "currency": "EUR", "created_at": .string(now),
            ]
            for (key, value) in body.objectValue ?? [] { account = account.setting(key, value) }
            return SimulatorResponse(status: 200, json: account)
        case "onboardPartnerAccount":
            return SimulatorResponse(status: 201, json: [
                "partner_account_id": .string("krn:partner:global:account:test:\(SimulatorID.secret(bytes: 10).uppercased())"),
                "state": "ONBOARDING", "created_at": .string(now),
            ])
        case "enablePaymentProduct", "disablePaymentProduct":
            return SimulatorResponse(status: 200, json: [
                "product_id": .string(call.parameter("product_id")), "status": .string(call.operation.id == "enablePaymentProduct" ? "ENABLED" : "DISABLED"),
                "updated_at": .string(now),
            ])
        case "readPaymentProduct":
            return SimulatorResponse(status: 200, json: ["products": [["product_id": "payment", "status": "ENABLED", "payment_programs": ["pay_later", "pay_now", "financing"]]]])
        case "readCreditPromotionAutoSize", "readCreditPromotionBadge", "readTopStripPromotionAutoSize", "readTopStripPromotionBadge":
            return SimulatorResponse(status: 200, json: [
                "placement": .string(call.operation.id), "content": ["main_text": "Pay in 3 interest-free instalments", "link_text": "Learn more"],
                "locale": .string(call.request.queryItem("locale") ?? "en-SE"),
            ])
        case "readPaymentPresentation", "readPaymentPresentationDirect":
            return SimulatorResponse(status: 200, json: [
                "instruction": "SHOW_KLARNA", "payment_method_categories": [["identifier": "klarna", "name": "Pay with Klarna"]],
            ])
        case "introspectCustomerToken", "introspectCustomerTokenDirect":
            return SimulatorResponse(status: 200, json: ["active": true, "scopes": ["payment:customer_present", "payment:customer_not_present"], "expires_at": .string(expires)])
        case "revokeCustomerToken":
            return SimulatorResponse(status: 200, json: ["revoked": true])
        case "createIdentitySdkToken", "createIdentitySdkTokenDirect", "createInteroperabilitySdkToken", "createInteroperabilitySdkTokenDirect",
            "createInteroperabilityToken", "createInteroperabilityTokenDirect", "createInteroperabilityTestToken":
            return SimulatorResponse(status: 201, json: ["token": .string("tok_" + SimulatorID.secret(bytes: 40)), "expires_at": .string(expires)])
        case "createPortalDeepLink":
            let id = SimulatorID.short("dl")
            return SimulatorResponse(status: 201, json: ["deep_link_id": .string(id), "url": .string("https://portal.test.klarna.com/deep-link/\(id)"), "expires_at": .string(expires)])
        case "listAllowedIps":
            return SimulatorResponse(status: 200, json: ["allowed_ips": [], "mode": "DISABLED"])
        case "downloadDisputeAttachment":
            return SimulatorResponse(status: 200, headers: [("Content-Type", "application/pdf")], body: Array("%PDF-1.4\n% simulated attachment\n%%EOF\n".utf8))
        case "readPaymentChargeback":
            return SimulatorResponse(status: 200, json: [
                "payment_chargeback_id": .string(call.parameter("payment_chargeback_id")), "state": "SETTLED", "amount": 1000, "currency": "EUR",
                "created_at": .string(now),
            ])
        default: return nil
        }
    }
}
