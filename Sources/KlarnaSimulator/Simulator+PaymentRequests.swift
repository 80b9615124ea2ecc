import GatewayCore
/// Payment requests: create, read, update, cancel, and the customer's side (`advance`, used by the control port).
extension Simulator {
    /// Three hours, Klarna's default lifetime of an open payment request.
    static let paymentRequestLifetimeMilliseconds: Int64 = 3 * 3600 * 1000

    static func validateAmount(_ body: JSONValue, required: Bool, field: String = "amount") -> [KlarnaError.FieldError] {
        guard let value = body[field] else { return required ? [.init(parameter: field, reason: "is required")] : [] }
        guard let amount = value.intValue else { return [.init(parameter: field, reason: "must be an integer in minor units")] }
        return amount > 0 ? [] : [.init(parameter: field, reason: "must be greater than 0")]
    }

    static func validateCurrency(_ body: JSONValue, required: Bool) -> [KlarnaError.FieldError] {
        guard let value = body["currency"] else { return required ? [.init(parameter: "currency", reason: "is required")] : [] }
        guard let text = value.stringValue, text.utf8.count == 3, text.utf8.allSatisfy({ $0 >= 65 && $0 <= 90 }) else {
            return [.init(parameter: "currency", reason: "must be an ISO 4217 code such as EUR")]
        }
        return []
    }

    static func validateReference(_ body: JSONValue, _ field: String) -> [KlarnaError.FieldError] {
        guard let value = body[field] else { return [] }
        guard let text = value.stringValue, text.utf8.count <= 255 else { return [.init(parameter: field, reason: "must be a string of at most 255 characters")] }
        _ = text
        return []
    }

    func createPaymentRequest(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        let body = try call.jsonBody()
        let errors = Self.validateCurrency(body, required: true) + Self.validateAmount(body, required: true)
            + Self.validateReference(body, "payment_request_reference")
        guard errors.isEmpty else { throw KlarnaError.validation(errors) }
        let known = Set(["currency", "amount", "payment_request_reference"])
        let now = call.nowMilliseconds
        let record = PaymentRequestRecord(
            id: SimulatorID.krn("request"), merchant: call.merchant, acquirer: call.acquirer, state: .submitted,
            currency: body["currency"]!.stringValue!, amount: body["amount"]!.intValue!, reference: body["payment_request_reference"]?.stringValue,
            extra: (body.objectValue ?? []).filter { !known.contains($0.0) }, createdAt: now, updatedAt: now,
            expiresAt: now + Self.paymentRequestLifetimeMilliseconds
        )
        state.withLock { $0.paymentRequests[record.id] = record }
        let json = record.json
        call.emit(PaymentRequestState.submitted.eventType, payload: json)
        return SimulatorResponse(status: 201, json: json)
    }

    /// The request, if it exists and belongs to the caller's merchant; open requests past their time expire on read.
    private func withPaymentRequest<T: Sendable>(_ call: inout Call, _ body: (inout PaymentRequestRecord) throws(KlarnaError) -> T) throws(KlarnaError) -> T {
        let id = call.parameter("payment_request_id")
        let merchant = call.merchant
        let now = call.nowMilliseconds
        var expiredEvent: JSONValue?
        let result: Result<T, KlarnaError> = state.withLock { state in
            guard var record = state.paymentRequests[id], record.merchant == merchant else { return .failure(KlarnaError.notFound("Payment request not found")) }
            if !record.state.isFinal && now >= record.expiresAt {
                record.state = .expired
                record.updatedAt = now
                expiredEvent = record.json
            }
            defer { state.paymentRequests[id] = record }
            do throws(KlarnaError) { return .success(try body(&record)) } catch { return .failure(error) }
        }
        if let expiredEvent { call.emit(PaymentRequestState.expired.eventType, payload: expiredEvent) }
        return try result.get()
    }

    func readPaymentRequest(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        let json = try withPaymentRequest(&call) { record throws(KlarnaError) in record.json }
        return SimulatorResponse(status: 200, json: json)
    }

    func updatePaymentRequest(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        let body = try call.jsonBody()
        let errors = Self.validateCurrency(body, required: false) + Self.validateAmount(body, required: false)
            + Self.validateReference(body, "payment_request_reference")
        guard errors.isEmpty else { throw KlarnaError.validation(errors) }
        let now = call.nowMilliseconds
        let json = try withPaymentRequest(&call) { record throws(KlarnaError) in
            guard !record.state.isFinal else { throw KlarnaError.forbidden("A payment request in state \(record.state.rawValue) cannot be updated") }
            if let currency = body["currency"]?.stringValue { record.currency = currency }
            if let amount = body["amount"]?.intValue { record.amount = amount }
            if let reference = body["payment_request_reference"]?.stringValue { record.reference = reference }
            for (key, value) in body.objectValue ?? [] where !["currency", "amount", "payment_request_reference"].contains(key) {
                if let index = record.extra.firstIndex(where: { $0.0 == key }) { record.extra[index].1 = value } else { record.extra.append((key, value)) }
            }
            record.updatedAt = now
            return record.json
        }
        return SimulatorResponse(status: 200, json: json)
    }

    func cancelPaymentRequest(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        let now = call.nowMilliseconds
        let json = try withPaymentRequest(&call) { record throws(KlarnaError) in
            guard record.state.canMove(to: .canceled) else { throw KlarnaError.forbidden("A payment request in state \(record.state.rawValue) cannot be canceled") }
            record.state = .canceled
            record.updatedAt = now
            return record.json
        }
        call.emit(PaymentRequestState.canceled.eventType, payload: json)
        return SimulatorResponse(status: 200, json: json)
    }

    /// The customer's side, driven by tests through `POST /control/payment-requests/{id}/advance`: moves the request
    /// (via `IN_PROGRESS` when needed) and, on `COMPLETED`, issues a payment token the partner authorises with.
    func advancePaymentRequest(id: String, to target: PaymentRequestState) -> Result<JSONValue, KlarnaError> {
        let now = SimulatorClock.nowMilliseconds()
        var events: [SimulatorEvent] = []
        let result: Result<JSONValue, KlarnaError> = state.withLock { state in
            guard var record = state.paymentRequests[id] else { return .failure(KlarnaError.notFound("Payment request not found")) }
            guard let steps = record.state.path(to: target) else {
                return .failure(KlarnaError.forbidden("Cannot move a payment request from \(record.state.rawValue) to \(target.rawValue)"))
            }
            for step in steps {
                record.state = step
                record.updatedAt = now
                if step == .completed {
                    let token = "pt_" + SimulatorID.secret(bytes: 32)
                    record.paymentToken = token
                    state.paymentTokens[token] = record.id
                }
                events.append(SimulatorEvent(type: step.eventType, acquirer: record.acquirer, merchant: record.merchant, payload: record.json))
            }
            state.paymentRequests[id] = record
            return .success(record.json)
        }
        if !events.isEmpty { deliver(events) }
        return result
    }

    /// A confirmation token is the one-step flavour of a completed request: confirming it authorises the payment.
    func confirmPaymentConfirmationToken(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        let body = try call.jsonBody()
        let token = call.parameter("payment_confirmation_token")
        let errors = Self.validateCurrency(body, required: false) + Self.validateAmount(body, required: false)
        guard errors.isEmpty else { throw KlarnaError.validation(errors) }
        let request = state.withLock { state in state.paymentTokens[token].flatMap { state.paymentRequests[$0] } }
        let amount = body["amount"]?.intValue ?? request?.amount ?? 10_000
        let currency = body["currency"]?.stringValue ?? request?.currency ?? "EUR"
        let transaction = makeTransaction(&call, amount: amount, currency: currency, reference: body["payment_transaction_reference"]?.stringValue,
            paymentRequestID: request?.id, captureNow: false)
        return SimulatorResponse(status: 200, json: ["payment_transaction_response": ["result": "APPROVED", "payment_transaction": transaction]])
    }
}
