import GatewayCore
/// Authorisation and payment transactions: capture, refund, void, reauthorise, references, and reads.
extension Simulator {
    /// Creates and stores an authorised transaction (captured at once for `capture: NOW`); returns its JSON.
    func makeTransaction(_ call: inout Call, amount: Int, currency: String, reference: String?, paymentRequestID: String?, captureNow: Bool) -> JSONValue {
        let now = call.nowMilliseconds
        var record = TransactionRecord(
            id: SimulatorID.krn("transaction"), merchant: call.merchant, acquirer: call.acquirer, currency: currency,
            ledger: TransactionLedger(authorized: amount), reference: reference, paymentRequestID: paymentRequestID,
            createdAt: now, updatedAt: now
        )
        var capture: MovementRecord?
        if captureNow, (try? record.ledger.capture(nil)) != nil {
            let movement = MovementRecord(id: SimulatorID.krn("capture"), transactionID: record.id, merchant: call.merchant, amount: amount, reference: reference, createdAt: now)
            record.captureIDs.append(movement.id)
            capture = movement
        }
        record.render()
        let stored = record
        state.withLock { state in
            state.transactions[stored.id] = stored
            if let capture { state.captures[capture.id] = capture }
        }
        let json = (try? JSONValue.parse(stored.rendered)) ?? .null
        call.emit("payment.transaction.state-change.authorized", payload: json)
        if let capture {
            call.emit("payment.transaction.captured", payload: capture.json(kind: "capture", currency: currency))
            call.emit("payment.transaction.state-change.completed", payload: json)
        }
        return json
    }

    func authorizePayment(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        let body = try call.jsonBody()
        let nested = body["request_payment_transaction"] ?? .object([])
        var errors = Self.validateCurrency(body, required: true)
        let amountSource = nested["amount"] != nil ? nested : body
        let amountField = nested["amount"] != nil ? "request_payment_transaction.amount" : "amount"
        errors += Self.validateAmount(amountSource, required: true).map { KlarnaError.FieldError(parameter: amountField, reason: $0.reason) }
        let capture = (nested["capture"] ?? body["capture"])?.stringValue
        if let capture, capture != "NOW" && capture != "LATER" && capture != "MANUAL" {
            errors.append(.init(parameter: "request_payment_transaction.capture", reason: "must be NOW or omitted"))
        }
        guard errors.isEmpty else { throw KlarnaError.validation(errors) }
        let token = call.request.headers.first(name: "Klarna-Payment-Token") ?? body["payment_token"]?.stringValue
        let reference = (nested["payment_transaction_reference"] ?? body["payment_transaction_reference"])?.stringValue
        // Tokens are opaque to the simulator; one starting with "declined" lets a test see a refusal.
        if let token, token.hasPrefix("declined") {
            return SimulatorResponse(status: 200, json: ["payment_transaction_response": ["result": "DECLINED", "result_reason": "DECLINED_BY_KLARNA"]])
        }
        let paymentRequestID = token.flatMap { token in state.withLock { $0.paymentTokens[token] } }
        let transaction = makeTransaction(
            &call, amount: amountSource["amount"]!.intValue!, currency: body["currency"]!.stringValue!, reference: reference,
            paymentRequestID: paymentRequestID, captureNow: capture == "NOW"
        )
        if let paymentRequestID, let id = transaction["payment_transaction_id"]?.stringValue {
            state.withLock { $0.paymentRequests[paymentRequestID]?.paymentTransactionID = id }
        }
        return SimulatorResponse(status: 201, json: ["payment_transaction_response": ["result": "APPROVED", "payment_transaction": transaction]])
    }

    /// The hot read path: one lookup under the lock, bytes rendered at the last change.
    func readPaymentTransaction(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        let id = call.parameter("payment_transaction_id")
        let merchant = call.merchant
        guard let bytes = state.withLock({ state -> [UInt8]? in
            guard let record = state.transactions[id], record.merchant == merchant else { return nil }
            return record.rendered
        }) else { throw KlarnaError.notFound("Payment transaction not found") }
        return SimulatorResponse(status: 200, jsonBytes: bytes)
    }

    static func refusal(_ refusal: TransactionLedger.Refusal, amountField: String) -> KlarnaError {
        switch refusal {
        case .amountNotPositive: .validation(amountField, "must be greater than 0")
        case .exceedsAuthorized(let remaining): .forbidden("The amount exceeds the remaining authorized amount (\(remaining))")
        case .exceedsCaptured(let refundable): .forbidden("The amount exceeds the captured, unrefunded amount (\(refundable))")
        case .exceedsCapture(let refundable): .forbidden("The amount exceeds what is left to refund on this capture (\(refundable))")
        case .limitReached(let what): .forbidden("Operation limit reached: \(what)")
        case .wrongState(let state): .forbidden("Not allowed on a transaction in state \(state.rawValue)")
        case .belowCaptured(let captured): .validation(amountField, "must not be below the captured amount (\(captured))")
        }
    }

    /// Runs `change` on the caller's transaction under the lock, re-renders it, and raises a state-change event
    /// when the state moved.
    private func changeTransaction<T: Sendable>(_ call: inout Call, _ change: (inout TransactionRecord, inout SimulatorState) throws(KlarnaError) -> T) throws(KlarnaError) -> (T, JSONValue) {
        let id = call.parameter("payment_transaction_id")
        let merchant = call.merchant
        let now = call.nowMilliseconds
        let result: Result<(T, [UInt8], TransactionLedger.State, TransactionLedger.State), KlarnaError> = state.withLock { state in
            guard var record = state.transactions[id], record.merchant == merchant else { return .failure(KlarnaError.notFound("Payment transaction not found")) }
            let before = record.ledger.state
            let value: T
            do throws(KlarnaError) { value = try change(&record, &state) } catch { return .failure(error) }
            record.updatedAt = now
            record.render()
            state.transactions[id] = record
            return .success((value, record.rendered, before, record.ledger.state))
        }
        let (value, bytes, before, after) = try result.get()
        let json = (try? JSONValue.parse(bytes)) ?? .null
        if before != after { call.emit("payment.transaction.state-change.\(after.rawValue.lowercased())", payload: json) }
        return (value, json)
    }

    func updatePaymentTransaction(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        let body = try call.jsonBody()
        let errors = Self.validateReference(body, "payment_transaction_reference")
        guard errors.isEmpty else { throw KlarnaError.validation(errors) }
        let (_, json) = try changeTransaction(&call) { record, _ throws(KlarnaError) in
            do throws(TransactionLedger.Refusal) { try record.ledger.touch() } catch { throw Self.refusal(error, amountField: "amount") }
            if let reference = body["payment_transaction_reference"]?.stringValue { record.reference = reference }
            if let references = body["merchant_references"] { record.merchantReferences = references }
        }
        return SimulatorResponse(status: 200, json: json)
    }

    func captureTransaction(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        let body = try call.jsonBody()
        let field = body["capture_amount"] != nil ? "capture_amount" : "amount"
        if body[field] != nil, body[field]?.intValue == nil { throw KlarnaError.validation(field, "must be an integer in minor units") }
        let reference = body["capture_reference"]?.stringValue
        let merchant = call.merchant
        let now = call.nowMilliseconds
        let (capture, json) = try changeTransaction(&call) { record, state throws(KlarnaError) -> MovementRecord in
            let amount: Int
            do throws(TransactionLedger.Refusal) { amount = try record.ledger.capture(body[field]?.intValue) } catch { throw Self.refusal(error, amountField: field) }
            let capture = MovementRecord(id: SimulatorID.krn("capture"), transactionID: record.id, merchant: merchant, amount: amount, reference: reference, createdAt: now)
            record.captureIDs.append(capture.id)
            state.captures[capture.id] = capture
            return capture
        }
        let currency = json["currency"]?.stringValue ?? "EUR"
        call.emit("payment.transaction.captured", payload: capture.json(kind: "capture", currency: currency))
        return SimulatorResponse(status: 201, json: capture.json(kind: "capture", currency: currency).setting("payment_transaction", json))
    }

    func refundTransaction(_ call: inout Call, captureID: String?) throws(KlarnaError) -> SimulatorResponse {
        let body = try call.jsonBody()
        let field = body["refund_amount"] != nil ? "refund_amount" : "amount"
        if body[field] != nil, body[field]?.intValue == nil { throw KlarnaError.validation(field, "must be an integer in minor units") }
        let reference = body["refund_reference"]?.stringValue
        let merchant = call.merchant
        let now = call.nowMilliseconds
        // A capture refund names the capture; find its transaction first.
        var effective = call
        if let captureID {
            guard let capture = state.withLock({ $0.captures[captureID] }), capture.merchant == merchant else { throw KlarnaError.notFound("Payment capture not found") }
            var parameters = call.parameters
            parameters["payment_transaction_id"] = capture.transactionID
            effective = Call(request: call.request, operation: call.operation, parameters: parameters, principal: call.principal, merchant: merchant, nowMilliseconds: now)
        }
        let (refund, json) = try changeTransaction(&effective) { record, state throws(KlarnaError) -> MovementRecord in
            let amount: Int
            let captureLeft = captureID.flatMap { state.captures[$0] }.map { $0.amount - $0.refunded }
            do throws(TransactionLedger.Refusal) { amount = try record.ledger.refund(body[field]?.intValue, captureRefundable: captureLeft) } catch { throw Self.refusal(error, amountField: field) }
            if let captureID { state.captures[captureID]?.refunded += amount }
            let refund = MovementRecord(id: SimulatorID.krn("refund"), transactionID: record.id, merchant: merchant, amount: amount, reference: reference, createdAt: now)
            record.refundIDs.append(refund.id)
            state.refunds[refund.id] = refund
            return refund
        }
        call.events += effective.events
        let currency = json["currency"]?.stringValue ?? "EUR"
        call.emit("payment.transaction.refunded", payload: refund.json(kind: "refund", currency: currency))
        return SimulatorResponse(status: 201, json: refund.json(kind: "refund", currency: currency).setting("payment_transaction", json))
    }

    func voidTransaction(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        let (_, json) = try changeTransaction(&call) { record, _ throws(KlarnaError) in
            do throws(TransactionLedger.Refusal) { _ = try record.ledger.void() } catch { throw Self.refusal(error, amountField: "amount") }
        }
        return SimulatorResponse(status: 200, json: json)
    }

    func reauthorizeTransaction(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        let body = try call.jsonBody()
        let errors = Self.validateAmount(body, required: true)
        guard errors.isEmpty else { throw KlarnaError.validation(errors) }
        let amount = body["amount"]!.intValue!
        let (_, json) = try changeTransaction(&call) { record, _ throws(KlarnaError) in
            do throws(TransactionLedger.Refusal) { try record.ledger.reauthorize(amount) } catch { throw Self.refusal(error, amountField: "amount") }
        }
        return SimulatorResponse(status: 200, json: ["payment_transaction_response": ["result": "APPROVED", "payment_transaction": json]])
    }

    func readMovement(_ call: inout Call, kind: String) throws(KlarnaError) -> SimulatorResponse {
        let id = call.parameter("payment_\(kind)_id")
        let merchant = call.merchant
        let found: (MovementRecord, String)? = state.withLock { state in
            guard let movement = kind == "capture" ? state.captures[id] : state.refunds[id], movement.merchant == merchant else { return nil }
            return (movement, state.transactions[movement.transactionID]?.currency ?? "EUR")
        }
        guard let (movement, currency) = found else { throw KlarnaError.notFound("Payment \(kind) not found") }
        return SimulatorResponse(status: 200, json: movement.json(kind: kind, currency: currency))
    }

    func deletePaymentToken(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        let token = call.parameter("payment_token")
        let removed = state.withLock { $0.paymentTokens.removeValue(forKey: token) }
        guard removed != nil else { throw KlarnaError.notFound("Payment token not found") }
        return .noContent
    }
}
