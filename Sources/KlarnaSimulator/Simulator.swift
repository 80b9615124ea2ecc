import Crypto
import GatewayCore
import NIOHTTP1
import Synchronization

/// One API call being answered: the request, what it matched, who made it, and the events it raised.
struct Call: Sendable {
    let request: SimulatorRequest
    let operation: Operation
    /// Path parameters by template name (`payment_transaction_id`).
    let parameters: [String: String]
    let principal: Principal
    /// The merchant KRN the call acts for: from the path (merchant scope) or the key (direct scope).
    let merchant: String?
    let nowMilliseconds: Int64
    var events: [SimulatorEvent] = []

    var acquirer: AcquirerInfo { principal.acquirer }

    func parameter(_ name: String) -> String { parameters[name] ?? "" }

    /// The body as a JSON object; an empty body is an empty object.
    func jsonBody() throws(KlarnaError) -> JSONValue {
        if request.body.isEmpty { return .object([]) }
        let value: JSONValue
        do throws(JSONValue.ParseError) { value = try JSONValue.parse(request.body) } catch { throw KlarnaError.badJSON(error.reason) }
        guard case .object = value else { throw KlarnaError.validation("body", "must be a JSON object") }
        return value
    }

    mutating func emit(_ type: String, payload: JSONValue) {
        events.append(SimulatorEvent(type: type, acquirer: acquirer, merchant: merchant, payload: payload))
    }
}

/// The simulator proper: routes a complete request through Klarna's checks to a handler, with no I/O of its own,
/// so the connection handler only frames bytes and the control server only reads and tweaks this object.
///
/// Order of checks, as Klarna's edge applies them: route, injected faults, authentication, account access, rate
/// limits, idempotency, then the operation. State sits behind one lock; the hot read path holds it only for a
/// dictionary lookup.
final class Simulator: Sendable {
    let catalogue: OperationCatalogue
    let directory: AccountDirectory
    let configuration: SimulatorConfiguration
    let pki: SimulatorPKI?
    /// Request headers copied into the record; tests may add names at run time through the control port.
    let recordedHeaderNames: Mutex<[String]>
    let state: Mutex<SimulatorState>
    let record: Mutex<RequestRecord>
    let faults: Mutex<FaultInjector>
    let limiter: Mutex<RateLimiter>
    let webhooks: WebhookDispatcher
    /// Per operation, the path segments that are parameters and their names: worked out once, not per request.
    let parameterPositions: [String: [(Int, String)]]

    static let emptyBodySHA256 = Hex.encode(SHA256.hash(data: [UInt8]()))

    init(configuration: SimulatorConfiguration, catalogue: OperationCatalogue, pki: SimulatorPKI?, webhooks: WebhookDispatcher) {
        self.configuration = configuration
        self.catalogue = catalogue
        self.directory = AccountDirectory(configuration: configuration)
        self.pki = pki
        self.webhooks = webhooks
        var positions: [String: [(Int, String)]] = [:]
        for operation in catalogue.operations {
            positions[operation.id] = operation.templateSegments.enumerated().compactMap { index, segment in
                segment.hasPrefix("{") ? (index, String(segment.dropFirst().dropLast())) : nil
            }
        }
        self.parameterPositions = positions
        self.recordedHeaderNames = Mutex(["Partner-Correlation-Id", "Klarna-Idempotency-Key", "Klarna-Integration-Metadata", "Content-Type", "User-Agent"]
            + (configuration.recordedHeaders ?? []))
        self.record = Mutex(RequestRecord(capacity: configuration.recordCapacity ?? 100_000))
        self.faults = Mutex(FaultInjector(rules: configuration.faults ?? [], seed: configuration.seed ?? 0x5EED))
        self.limiter = Mutex(RateLimiter(
            perAccount: configuration.rateLimits?.perAccount ?? SimulatorConfiguration.RateLimits.defaultPerAccount,
            perAcquirer: configuration.rateLimits?.perAcquirer ?? SimulatorConfiguration.RateLimits.defaultPerAcquirer
        ))
        var initial = SimulatorState()
        let now = SimulatorClock.nowMilliseconds()
        let directory = self.directory
        for acquirer in configuration.acquirers {
            let info = directory.acquirers[acquirer.id]!
            for (index, key) in acquirer.apiKeys.enumerated() {
                initial.keys.add(key: key, principal: .acquirer(info), id: "cred_\(acquirer.id)_\(index + 1)", createdAt: now, description: "configured")
            }
        }
        for merchant in configuration.merchants {
            let owner = directory.merchants[merchant.krn]!
            for (index, key) in (merchant.apiKeys ?? []).enumerated() {
                let id = "cred_\(merchant.krn.split(separator: ":").last ?? "")_\(index + 1)"
                initial.keys.add(key: key, principal: .merchant(krn: merchant.krn, acquirer: owner), id: id, createdAt: now, description: "configured")
            }
        }
        SimulatorSeed.seed(&initial, configuration: configuration, directory: directory, now: now)
        self.state = Mutex(initial)
    }

    // MARK: - The request path

    /// Answers one request; webhook deliveries it causes are handed to the dispatcher before returning.
    func handle(_ request: SimulatorRequest) -> SimulatorOutcome {
        let now = SimulatorClock.nowMilliseconds()
        var account: String?
        var operationID: String?
        var outcome = answer(request, now: now, account: &account, operationID: &operationID)
        let mtls = request.peer == nil ? "NOT_PRESENT" : "VALID"
        outcome.response.headers.append(("Klarna-Mtls-Verification-Status", mtls))
        if let correlation = request.headers.first(name: "Partner-Correlation-Id") {
            outcome.response.headers.append(("Partner-Correlation-Id", correlation))
        }
        remember(request, account: account, operationID: operationID, status: outcome.response.status, now: now)
        return outcome
    }

    private func remember(_ request: SimulatorRequest, account: String?, operationID: String?, status: Int, now: Int64) {
        var headers: [(String, String)] = []
        for name in recordedHeaderNames.withLock({ $0 }) {
            if let value = request.headers.first(name: name) { headers.append((name, value)) }
        }
        let bodyHash = request.body.isEmpty ? Simulator.emptyBodySHA256 : Hex.encode(SHA256.hash(data: request.body))
        let authorization = request.headers.first(name: "Authorization")
        record.withLock { record in
            record.append { sequence in
                RecordedRequest(
                    sequence: sequence, receivedAtMilliseconds: now, method: request.method, path: String(request.path),
                    operationID: operationID, account: account, authorization: authorization,
                    certificateSubject: request.peer?.subject, certificateFingerprint: request.peer?.fingerprint,
                    headers: headers, bodySHA256: bodyHash, bodySize: request.body.count, status: status
                )
            }
        }
    }

    private func answer(_ request: SimulatorRequest, now: Int64, account: inout String?, operationID: inout String?) -> SimulatorOutcome {
        let match: OperationMatcher.Match
        switch catalogue.matcher.match(method: request.method, path: request.path) {
        case .success(let found): match = found
        case .failure(.noSuchPath): return SimulatorOutcome(response: KlarnaError.unknownRoute.response)
        case .failure(.methodNotAllowed(let allowed)):
            var error = KlarnaError(status: 405, type: "INPUT_ERROR", code: "METHOD_NOT_ALLOWED", message: "Method not allowed on this resource")
            error.headers = [("Allow", allowed.joined(separator: ", "))]
            return SimulatorOutcome(response: error.response)
        }
        let operation = match.operation
        operationID = operation.id
        var parameters: [String: String] = [:]
        for (index, name) in parameterPositions[operation.id] ?? [] where index < match.segments.count {
            parameters[name] = String(match.segments[index])
        }
        if operation.scope == .merchant { account = parameters["partner_account_id"] }

        // Faults come first: Klarna's edge (and the network) fail before any business logic runs.
        var delivery = ResponseDelivery.normal
        if let rule = faults.withLock({ $0.decide(method: request.method, path: request.path, operationID: operation.id) }) {
            switch rule.kind {
            case .error:
                let status = rule.status ?? 500
                let retryAfter = rule.retryAfterHeader(nowMilliseconds: now)
                if status == 429 {
                    // Klarna's rate-limit answer, with the reset the client is meant to wait for.
                    let reset = String(max(0, (rule.delayMilliseconds ?? 1000) / 1000))
                    return SimulatorOutcome(response: KlarnaError.rateLimited(headers: [
                        ("X-Ratelimit-Limit", "1, 1;w=1"), ("X-Ratelimit-Remaining", "0"), retryAfter ?? ("X-Ratelimit-Reset", reset),
                    ]).response)
                }
                let code = rule.errorCode ?? (status == 503 ? "SERVICE_UNAVAILABLE" : "TIMEOUT")
                var error = KlarnaError.technical(status: status, code: code, message: "Injected fault")
                if status == 503, let retryAfter { error.headers = [retryAfter] }
                return SimulatorOutcome(response: error.response)
            case .forbiddenNoBody:
                return SimulatorOutcome(response: SimulatorResponse(status: 403, headers: [], body: []))
            case .latency: delivery = .delayed(milliseconds: rule.delayMilliseconds ?? 1000)
            case .slowBody: delivery = .slowBody(milliseconds: rule.delayMilliseconds ?? 1000)
            case .reset: delivery = .resetMidResponse
            case .drop: delivery = .resetBeforeResponse
            }
        }

        do throws(KlarnaError) {
            let principal = try authenticate(request)
            let merchant = try authorizeAccess(operation: operation, parameters: parameters, principal: principal)
            if operation.scope == .direct { account = merchant }
            if let refusal = limiter.withLock({
                $0.admit(account: merchant, acquirer: principal.acquirer.id, operationID: operation.id, category: operation.category, nowMilliseconds: now)
            }) {
                throw KlarnaError.rateLimited(headers: refusal)
            }
            var call = Call(request: request, operation: operation, parameters: parameters, principal: principal, merchant: merchant, nowMilliseconds: now)
            let response = try perform(&call)
            if !call.events.isEmpty { deliver(call.events) }
            return SimulatorOutcome(response: response, delivery: delivery)
        } catch {
            return SimulatorOutcome(response: error.response, delivery: delivery == .resetMidResponse || delivery == .resetBeforeResponse ? delivery : .normal)
        }
    }

    private func authenticate(_ request: SimulatorRequest) throws(KlarnaError) -> Principal {
        // With `require_client_certificate: false` the handshake lets a certificate-less client in, and the answer
        // is Klarna's 401 (flagged NOT_PRESENT) instead of a TLS refusal.
        if request.peer == nil { throw KlarnaError.unauthorized }
        guard let header = request.headers.first(name: "Authorization"), let key = KeyRing.apiKey(fromAuthorization: header),
            KlarnaEnvironment.of(apiKey: key) == .test
        else { throw KlarnaError.unauthorized }
        guard let principal = state.withLock({ $0.keys.byKey[key] }) else { throw KlarnaError.unauthorized }
        return principal
    }

    /// The merchant the call acts for, after checking the key may act for it: Klarna answers 404 for an account it
    /// does not know and 403 for one that belongs to someone else.
    private func authorizeAccess(operation: Operation, parameters: [String: String], principal: Principal) throws(KlarnaError) -> String? {
        switch operation.scope {
        case .merchant:
            let krn = parameters["partner_account_id"] ?? ""
            guard let owner = directory.merchants[krn] else { throw KlarnaError.notFound("Partner account not found") }
            switch principal {
            case .acquirer(let acquirer):
                guard owner == acquirer else { throw KlarnaError.forbidden("The credentials may not act for this partner account") }
            case .merchant(let own, _):
                guard own == krn else { throw KlarnaError.forbidden("The credentials may not act for this partner account") }
            }
            return krn
        case .acquirer:
            guard case .acquirer = principal else { throw KlarnaError.forbidden("This operation needs the acquiring partner's credentials") }
            return nil
        case .direct:
            guard case .merchant(let krn, _) = principal else {
                throw KlarnaError.forbidden("Direct operations need the merchant's own credentials; use /v2/accounts/{partner_account_id}/…")
            }
            return krn
        }
    }

    /// Idempotency wraps the operation: POST and PATCH with a key replay the first answer.
    private func perform(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        let method = call.request.method
        guard method == "POST" || method == "PATCH", let key = call.request.headers.first(name: "Klarna-Idempotency-Key") else {
            return try dispatch(&call)
        }
        guard !key.isEmpty, key.utf8.count <= 255 else { throw KlarnaError.validation("Klarna-Idempotency-Key", "must be 1 to 255 characters") }
        let scopedKey = "\(call.principal.id)|\(key)"
        let fingerprint = "\(call.operation.id)|\(call.request.path)|" + Hex.encode(SHA256.hash(data: call.request.body))
        let now = call.nowMilliseconds
        switch state.withLock({ $0.idempotency.lookup(key: scopedKey, fingerprint: fingerprint, nowMilliseconds: now) }) {
        case .replay(let response):
            var replayed = response
            replayed.headers.append(("Klarna-Idempotency-Replayed", "true"))
            return replayed
        case .conflict:
            throw KlarnaError.conflict("The idempotency key was already used with a different request")
        case .miss:
            let response: SimulatorResponse
            do throws(KlarnaError) { response = try dispatch(&call) } catch {
                if error.status < 500 && error.status != 429 {
                    let stored = error.response
                    state.withLock { $0.idempotency.store(key: scopedKey, fingerprint: fingerprint, response: stored, nowMilliseconds: now) }
                }
                throw error
            }
            state.withLock { $0.idempotency.store(key: scopedKey, fingerprint: fingerprint, response: response, nowMilliseconds: now) }
            return response
        }
    }

    /// Every catalogue operation lands somewhere: the stateful flows by id, the rest on canned bodies.
    private func dispatch(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        switch call.operation.id {
        case "createPaymentRequest", "createPaymentRequestDirect", "createPaymentRequestV1": return try createPaymentRequest(&call)
        case "readPaymentRequest", "readPaymentRequestDirect": return try readPaymentRequest(&call)
        case "updatePaymentRequest", "updatePaymentRequestDirect": return try updatePaymentRequest(&call)
        case "cancelPaymentRequest", "cancelPaymentRequestDirect": return try cancelPaymentRequest(&call)
        case "confirmPaymentConfirmationToken": return try confirmPaymentConfirmationToken(&call)
        case "authorizePayment": return try authorizePayment(&call)
        case "readPaymentTransaction": return try readPaymentTransaction(&call)
        case "updatePaymentTransaction": return try updatePaymentTransaction(&call)
        case "capturePaymentTransaction": return try captureTransaction(&call)
        case "refundPaymentTransaction": return try refundTransaction(&call, captureID: nil)
        case "refundPaymentCapture": return try refundTransaction(&call, captureID: call.parameter("payment_capture_id"))
        case "voidPaymentTransaction": return try voidTransaction(&call)
        case "reauthorizePaymentTransaction": return try reauthorizeTransaction(&call)
        case "readPaymentCapture": return try readMovement(&call, kind: "capture")
        case "readPaymentRefund": return try readMovement(&call, kind: "refund")
        case "deletePaymentToken": return try deletePaymentToken(&call)
        case "listDisputes": return try listDisputes(&call)
        case "readDispute": return try readDispute(&call)
        case "acceptDisputeLoss": return try acceptDisputeLoss(&call)
        case "respondToDispute": return try respondToDispute(&call)
        case "uploadDisputeAttachment": return try uploadDisputeAttachment(&call)
        case "listSettlements": return try listSettlements(&call)
        case "readSettlement": return try readSettlement(&call)
        case "listSettlementTransactions": return try listSettlementTransactions(&call)
        case "readSettlementCsv": return try readSettlementCSV(&call)
        case "readSettlementPayoutStatus": return try readSettlementPayoutStatus(&call)
        case "setSettlementPayoutStatus": return try setSettlementPayoutStatus(&call)
        case "listSigningKeys": return try listSigningKeys(&call)
        case "createSigningKey": return try createSigningKey(&call)
        case "readSigningKey": return try readSigningKey(&call)
        case "deleteSigningKey": return try deleteSigningKey(&call)
        case "listWebhooks", "listWebhooksV1": return try listWebhooks(&call)
        case "createWebhook", "createWebhookV1": return try createWebhook(&call)
        case "readWebhook": return try readWebhook(&call)
        case "updateWebhook": return try updateWebhook(&call)
        case "deleteWebhook": return try deleteWebhook(&call)
        case "simulateWebhook": return try simulateWebhook(&call)
        case "listApiKeyCredentials": return try listAPIKeys(&call)
        case "createApiKeyCredential": return try createAPIKey(&call)
        case "readApiKeyCredential": return try readAPIKey(&call)
        case "updateApiKeyCredential": return try updateAPIKey(&call)
        case "deleteApiKeyCredential": return try deleteAPIKey(&call)
        case "listClientCertificateCredentials": return try listClientCertificates(&call)
        case "createClientCertificateCredential": return try createClientCertificate(&call)
        case "readClientCertificateCredential": return try readClientCertificate(&call)
        case "updateClientCertificateCredential": return try updateClientCertificate(&call)
        case "revokeClientCertificateCredential": return try revokeClientCertificate(&call)
        case "readClientCertificateEnforcement": return try readEnforcement(&call)
        case "setClientCertificateEnforcement": return try setEnforcement(&call)
        case "deleteClientCertificateEnforcement": return try deleteEnforcement(&call)
        default: return try CannedResponses.answer(&call)
        }
    }

    /// Matches events to webhooks under the lock, then hands deliveries to the dispatcher outside it.
    func deliver(_ events: [SimulatorEvent], onlyWebhook: String? = nil) {
        let deliveries: [WebhookDelivery] = state.withLock { state in
            var out: [WebhookDelivery] = []
            for event in events {
                for webhook in state.webhooks.values where webhook.acquirer == event.acquirer.id {
                    if let onlyWebhook { guard webhook.id == onlyWebhook else { continue } } else { guard webhook.subscribes(to: event.type) else { continue } }
                    guard let key = state.signingKeys[webhook.signingKeyID] else { continue }
                    out.append(WebhookDelivery(event: event, webhook: webhook, signingKey: key))
                }
            }
            return out
        }
        for delivery in deliveries { webhooks.start(delivery) }
    }
}
