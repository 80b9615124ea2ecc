import Foundation
import GatewayCore
import GatewayProxy
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// `/admin/v1/` on the admin listener: admin accounts' bearer tokens, roles, the back-off, the audit records,
/// and the resources of docs/admin-api.md.
///
/// Every refusal is one `refusal` record in the audit trail; every change an `intent` record before the store is
/// written (a change that cannot be recorded is not made: 503) and an `outcome` record after. Changes go through
/// `AdminService` to the store, as the CLI's do, and then ask the running gateway to reload at once.
public struct AdminAPI: Sendable {
    /// The store and its rules.
    let service: AdminService
    /// Where the records go: the gateway's journal (the audit trail and the access log).
    let journal: any CallJournal
    /// Slows down repeated authentication failures.
    let backoff: AdminBackoff
    /// The running gateway's shared state: its snapshot (release calendar, merchants), breakers, calls in flight.
    let runtime: ProxyRuntime
    /// The audit trail's store and writer, for `/admin/v1/audit/…`; nil when the gateway records no trail.
    let audit: AdminAuditTrail?
    /// The client of the shared quota ledger (PostgreSQL storage), for the cluster's rate-limit room; nil otherwise.
    let ledger: QuotaLeaseDriver?
    /// Called after a change is committed: the gateway reloads now instead of at its next poll.
    let applied: @Sendable () -> Void
    /// The running gateway's configuration, for what a change needs of it (Klarna's CA for a signing key's rotation,
    /// the webhook routes a destination's removal is checked against); nil over a bare store.
    let gatewayConfig: @Sendable () -> GatewayConfig?
    /// Whether `GET /admin/v1/audit/verification` is running: it reads the whole trail, so one at a time.
    let verification = NIOLockedValueBox(false)
    /// The loop records are made on.
    let eventLoop: any EventLoop
    let logger: Logger

    /// Makes the API over a store, the gateway's journal and its run-time state.
    public init(
        service: AdminService, journal: any CallJournal, runtime: ProxyRuntime, audit: AdminAuditTrail?, backoff: AdminBackoff = AdminBackoff(),
        ledger: QuotaLeaseDriver? = nil, eventLoop: any EventLoop, logger: Logger, config: @escaping @Sendable () -> GatewayConfig? = { nil },
        applied: @escaping @Sendable () -> Void
    ) {
        self.gatewayConfig = config
        self.service = service
        self.ledger = ledger
        self.journal = journal
        self.backoff = backoff
        self.runtime = runtime
        self.audit = audit
        self.applied = applied
        self.eventLoop = eventLoop
        self.logger = logger
    }

    /// The API over a running gateway: its journal, its run-time state, its reload, and its audit trail if any.
    public init(service: AdminService, gateway: GatewayService, audit: AdminAuditTrail?, logger: Logger, backoff: AdminBackoff = AdminBackoff()) {
        self.init(
            service: service, journal: gateway.runtime.journal, runtime: gateway.runtime, audit: audit, backoff: backoff,
            ledger: gateway.quota, eventLoop: MultiThreadedEventLoopGroup.singleton.next(), logger: logger, config: { gateway.config },
            applied: { gateway.requestReload() })
    }

    /// The release calendar in force, to check pins against.
    func releases() -> ReleasePolicy { runtime.snapshots.current.releases }

    /// The OpenAPI 3.1 document of this API (`Sources/GatewayApp/Resources/admin-openapi.json`).
    public static let openAPIDocument = String(decoding: PackageResources.admin_openapi_json, as: UTF8.self)

    /// Answers one request.
    public func handle(_ request: AdminRequest) async -> AdminResponse {
        let requestID = RequestID.make()
        if request.method == "GET", request.path == "/admin/v1/openapi.json" {
            return AdminResponse(.ok, text: Self.openAPIDocument, contentType: "application/json", requestID: requestID)
        }
        if request.bodyTooLarge {
            return await refuse(
                GatewayError(.payloadTooLarge, "the admin API takes bodies of at most \(AdminHandler.maxBodyBytes(for: request.target) / 1024) KiB"), request,
                requestID: requestID, account: nil, route: nil)
        }
        if let crossSite = CrossSiteCheck.refusal(request) {
            return await refuse(crossSite, request, requestID: requestID, account: nil, route: nil)
        }
        let address = request.clientAddress ?? "unknown"
        let wait = backoff.delay(for: address)
        if wait > .zero { try? await Task.sleep(for: wait) }
        let account: AdminAccount
        do {
            guard let found = try await authenticate(request) else {
                backoff.failed(address)
                return await refuse(
                    GatewayError(
                        .unauthenticated, "send Authorization: Bearer with a valid admin token, or an admin's client certificate (with its token, if any)",
                        headers: [.init("WWW-Authenticate", "Bearer")]),
                    request, requestID: requestID, account: nil, route: nil)
            }
            account = found
        } catch {
            return await failed(error, request, requestID: requestID, account: nil, route: nil)
        }
        backoff.succeeded(address)
        switch AdminRoute.match(method: request.method, path: request.path) {
        case .notFound:
            return await refuse(GatewayError(.notFound, "no such admin API path"), request, requestID: requestID, account: account, route: nil)
        case .methodNotAllowed(let allow):
            return await refuse(
                GatewayError(.methodNotAllowed, "this path answers \(allow)", headers: [.init("Allow", allow)]), request, requestID: requestID,
                account: account, route: nil)
        case .route(let route, let parameters):
            guard account.role.allows(route.role) else {
                return await refuse(
                    GatewayError(.forbidden, "role \(account.role.rawValue) may not do this; it needs \(route.role.rawValue)"), request,
                    requestID: requestID, account: account, route: route)
            }
            let exchange = Exchange(api: self, request: request, requestID: requestID, account: account, route: route)
            do {
                return try await exchange.perform(parameters)
            } catch let error as GatewayError {
                return await refuse(error, request, requestID: requestID, account: account, route: route, merchant: exchange.merchant)
            } catch {
                return await failed(error, request, requestID: requestID, account: account, route: route)
            }
        }
    }

    /// The account the request's credentials name: its token, its verified client certificate, or both bound
    /// together, by the rule callers follow (`CallerAuthentication.tokenMethod`); nil when they name none, or two.
    func authenticate(_ request: AdminRequest) async throws -> AdminAccount? {
        let presented = request.clientCertificateFingerprint?.lowercased()
        var holder: AdminAccount?
        if let presented { holder = try await service.adminAccount(certificateFingerprint: presented) }
        guard let header = request.headers.first(name: "Authorization") else {
            // A certificate alone: it must be registered to an account.
            return holder
        }
        guard header.count > 7, header.prefix(7).lowercased() == "bearer ", let token = AdminToken.parse(header.dropFirst(7)[...]),
            let account = try await service.authenticateAdmin(token)
        else { return nil }
        let method = CallerAuthentication.tokenMethod(
            holder: account.name, bound: account.certificateFingerprint, presented: presented, holderOfPresented: { _ in holder?.name })
        return method == nil ? nil : account
    }

    /// Records a refusal (answered even when the record fails, as the data plane's refusals are) and renders it.
    func refuse(
        _ error: GatewayError, _ request: AdminRequest, requestID: String, account: AdminAccount?, route: AdminRoute?,
        merchant: MerchantRecord? = nil
    ) async -> AdminResponse {
        let record = AdminAuditRecords.record(
            .refusal, requestID: requestID, request: request, account: account, route: route, merchant: merchant, refusal: error)
        do {
            try await journal.record(record, on: eventLoop).get()
        } catch {
            logger.error("admin API refusal not recorded in the audit trail", metadata: ["request_id": "\(requestID)", "error": "\(error)"])
        }
        return AdminResponse(refusal: error, requestID: requestID)
    }

    /// A failure that is no refusal (the store is unreachable): logged with its reason, answered without it.
    private func failed(_ error: any Error, _ request: AdminRequest, requestID: String, account: AdminAccount?, route: AdminRoute?) async -> AdminResponse {
        logger.error("admin API request failed", metadata: ["request_id": "\(requestID)", "error": "\(error)"])
        return await refuse(
            GatewayError(.internalError, "the admin API could not complete the request; the log names the reason under this error_id"), request,
            requestID: requestID, account: account, route: route)
    }

    /// Records what is about to change; throws 503 when the trail cannot record it, and nothing changes.
    func recordIntent(_ exchange: Exchange, merchant: MerchantRecord?, partner: AdminAuditRecords.PartnerNamed? = nil) async throws {
        let record = AdminAuditRecords.record(
            .intent, requestID: exchange.requestID, request: exchange.request, account: exchange.account, route: exchange.route, merchant: merchant,
            partner: partner)
        do {
            try await journal.record(record, on: eventLoop).get()
        } catch {
            throw GatewayError(.auditUnavailable, "the audit trail cannot record the change; nothing was changed")
        }
    }

    /// Records what changed, and has the gateway reload at once when the change is in its snapshot; `inSnapshot` is
    /// false for what the snapshot does not hold (the log level, admin accounts), which a full reload would only
    /// rebuild unchanged.
    func recordOutcome(
        _ exchange: Exchange, merchant: MerchantRecord?, partner: AdminAuditRecords.PartnerNamed? = nil, status: Int, inSnapshot: Bool = true
    ) async {
        if inSnapshot { applied() }
        let record = AdminAuditRecords.record(
            .outcome, requestID: exchange.requestID, request: exchange.request, account: exchange.account, route: exchange.route,
            merchant: merchant, partner: partner, status: status)
        do {
            try await journal.record(record, on: eventLoop).get()
        } catch {
            logger.error("admin API change made but its outcome not recorded", metadata: ["request_id": "\(exchange.requestID)", "error": "\(error)"])
        }
    }
}
