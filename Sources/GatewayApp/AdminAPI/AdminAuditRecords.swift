import Crypto
import GatewayCore

/// The audit trail's records of the admin API, in the trail's existing columns, as the webhook path's are: the
/// field list, the canonical encoding and `audit verify`, export and prune stay as they are (docs/admin-api.md
/// maps the columns). The admin is the caller (`admin:NAME`), `operation_family` is `admin`, the operation id
/// and template say what was done, and the merchant and partner columns name the merchant changed.
enum AdminAuditRecords {
    /// `operation_family` of every admin record.
    static let family = "admin"

    /// A partner a change names (added or changed), for the record's partner and environment columns.
    typealias PartnerNamed = (id: String, environment: KlarnaEnvironment)

    /// A record of `request` in `phase`; `account` is nil while (or because) the admin is unknown.
    static func record(
        _ phase: CallRecord.Phase, requestID: String, request: AdminRequest, account: AdminAccount?, route: AdminRoute?,
        merchant: MerchantRecord? = nil, partner: PartnerNamed? = nil, status: Int? = nil, refusal: GatewayError? = nil
    ) -> CallRecord {
        var record = CallRecord(
            phase: phase, requestID: requestID, timeMicros: UTCTime.nowMicros(), method: request.method,
            path: CallRecord.recordedPath(rawTarget: request.target, operation: nil))
        record.clientAddress = request.clientAddress
        // Named on refusals too: an unknown certificate's fingerprint is what an SRE searches the trail for.
        record.callerCertificateFingerprint = request.clientCertificateFingerprint
        if let account {
            record.facts.callerID = "admin:" + account.name
            record.facts.authentication = request.authenticationMethod
        }
        if let route {
            record.facts.operation = Operation(
                id: route.operationID, method: request.method, template: route.template, scope: .acquirer, family: family, category: family,
                introducedIn: "gateway", testOnly: false)
        }
        if let merchant {
            record.facts.merchantID = merchant.id
            record.facts.partnerID = merchant.partnerID
            record.facts.account = merchant.account.rawValue
            record.facts.environment = merchant.account.environment
            record.facts.release = merchant.release
        }
        if let partner {
            record.facts.partnerID = partner.id
            record.facts.environment = partner.environment
        }
        if !request.body.isEmpty {
            record.requestBodySHA256 = Hex.encode(SHA256.hash(data: request.body))
            record.requestBodyBytes = request.body.count
        }
        record.status = status ?? refusal?.status
        record.gatewayErrorCode = refusal?.code.rawValue
        return record
    }
}

extension AdminAuditRecords {
    /// The record of a change made outside the admin API (the CLI), from its change-log event, in the same columns
    /// as the API's records: the maker is the caller (`cli:USER`), the operation id and template name the command
    /// (`cli.merchants.suspend`, `klarna-gateway merchants suspend`), the method is `CLI` and the path the change's
    /// details. The time is the change's, not the recording's; the request id names the event (`admin-event-ID`), so
    /// a record written twice after a crash is recognisably the same change.
    static func record(of stored: StoredAdminEvent) -> CallRecord {
        let event = stored.event
        var record = CallRecord(
            phase: .outcome, requestID: "admin-event-\(stored.id)", timeMicros: event.timeMicros, method: "CLI", path: event.detail)
        record.facts.callerID = "cli:" + event.actor
        record.facts.operation = Operation(
            id: "cli." + event.action, method: "CLI", template: "klarna-gateway " + event.action.replacingOccurrences(of: ".", with: " "),
            scope: .acquirer, family: family, category: family, introducedIn: "gateway", testOnly: false)
        return record
    }
}
