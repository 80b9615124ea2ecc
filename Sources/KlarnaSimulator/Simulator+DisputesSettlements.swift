import Foundation
import GatewayCore

/// Disputes (per merchant) and settlements (per acquirer), over seeded data.
extension Simulator {
    func listDisputes(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        let merchant = call.merchant
        let wanted = call.request.queryItem("state")
        let list = state.withLock { state in
            state.disputeOrder.compactMap { state.disputes[$0] }.filter { $0.merchant == merchant && (wanted == nil || $0.state == wanted) }.map(\.json)
        }
        return SimulatorResponse(status: 200, json: ["payment_disputes": .array(list)])
    }

    private func changeDispute(_ call: Call, _ change: (inout DisputeRecord) throws(KlarnaError) -> Void) throws(KlarnaError) -> DisputeRecord {
        let id = call.parameter("payment_dispute_id")
        let merchant = call.merchant
        let result: Result<DisputeRecord, KlarnaError> = state.withLock { state in
            guard var record = state.disputes[id], record.merchant == merchant else { return .failure(KlarnaError.notFound("Payment dispute not found")) }
            do throws(KlarnaError) { try change(&record) } catch { return .failure(error) }
            state.disputes[id] = record
            return .success(record)
        }
        return try result.get()
    }

    func readDispute(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        SimulatorResponse(status: 200, json: try changeDispute(call) { _ throws(KlarnaError) in }.json)
    }

    func acceptDisputeLoss(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        let record = try changeDispute(call) { record throws(KlarnaError) in
            guard record.state == "OPEN" || record.state == "UNDER_REVIEW" else { throw KlarnaError.forbidden("A dispute in state \(record.state) cannot be accepted") }
            record.state = "LOST"
        }
        call.emit("payment.dispute.state-change.lost", payload: record.json)
        return SimulatorResponse(status: 200, json: record.json)
    }

    func respondToDispute(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        let body = try call.jsonBody()
        guard body["message"] != nil || body["response"] != nil || body["attachment_ids"] != nil || body["comment"] != nil else {
            throw KlarnaError.validation("message", "a response needs a message or attachment_ids")
        }
        let record = try changeDispute(call) { record throws(KlarnaError) in
            guard record.state == "OPEN" else { throw KlarnaError.forbidden("A dispute in state \(record.state) cannot be responded to") }
            record.responses.append(body)
            record.state = "UNDER_REVIEW"
        }
        call.emit("payment.dispute.state-change.under-review", payload: record.json)
        return SimulatorResponse(status: 200, json: record.json)
    }

    func uploadDisputeAttachment(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        let id = "att_" + SimulatorID.secret(bytes: 16)
        let size = call.request.body.count
        _ = try changeDispute(call) { record throws(KlarnaError) in record.attachments.append(id) }
        return SimulatorResponse(status: 201, json: ["payment_dispute_attachment_id": .string(id), "size": .int(size)])
    }

    private func settlement(_ call: Call) throws(KlarnaError) -> SettlementRecord {
        let id = call.parameter("settlement_id")
        let acquirer = call.acquirer.id
        guard let record = state.withLock({ $0.settlements[id] }), record.acquirer == acquirer else { throw KlarnaError.notFound("Settlement not found") }
        return record
    }

    func listSettlements(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        let acquirer = call.acquirer.id
        let list = state.withLock { state in state.settlementOrder.compactMap { state.settlements[$0] }.filter { $0.acquirer == acquirer }.map(\.json) }
        return SimulatorResponse(status: 200, json: ["settlements": .array(list)])
    }

    func readSettlement(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        SimulatorResponse(status: 200, json: try settlement(call).json)
    }

    func listSettlementTransactions(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        let record = try settlement(call)
        let list: [JSONValue] = record.transactions.map {
            ["payment_transaction_id": .string($0.id), "partner_account_id": .string($0.merchant), "amount": .int($0.amount),
             "fee_amount": .int($0.fee), "currency": .string(record.currency), "type": "SALE"]
        }
        return SimulatorResponse(status: 200, json: ["settlement_id": .string(record.id), "transactions": .array(list)])
    }

    func readSettlementCSV(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        let record = try settlement(call)
        var csv = "settlement_id,payment_transaction_id,partner_account_id,type,currency,amount,fee_amount\n"
        for transaction in record.transactions {
            csv += "\(record.id),\(transaction.id),\(transaction.merchant),SALE,\(record.currency),\(transaction.amount),\(transaction.fee)\n"
        }
        return SimulatorResponse(status: 200, headers: [("Content-Type", "text/csv; charset=utf-8")], body: Array(csv.utf8))
    }

    func readSettlementPayoutStatus(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        let record = try settlement(call)
        return SimulatorResponse(status: 200, json: ["settlement_id": .string(record.id), "status": .string(record.payoutStatus)])
    }

    /// Test helper: moves the payout and raises the matching `settlement.payout.*` webhook.
    func setSettlementPayoutStatus(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        var record = try settlement(call)
        let body = try call.jsonBody()
        guard let status = body["status"]?.stringValue, ["PROCESSED", "CONFIRMED", "FAILED"].contains(status) else {
            throw KlarnaError.validation("status", "must be PROCESSED, CONFIRMED or FAILED")
        }
        record.payoutStatus = status
        let updated = record
        state.withLock { $0.settlements[updated.id] = updated }
        call.emit("settlement.payout.\(status.lowercased())", payload: updated.json)
        return SimulatorResponse(status: 200, json: ["settlement_id": .string(updated.id), "status": .string(status)])
    }
}

/// Seed data: disputes and settlements from the configuration, or generated ones, plus one authorised transaction
/// per merchant with a predictable id (`krn:payment:eu1:transaction:seed-<account id>`) for benchmarks to read.
enum SimulatorSeed {
    static func seed(_ state: inout SimulatorState, configuration: SimulatorConfiguration, directory: AccountDirectory, now: Int64) {
        let disputes = configuration.disputes ?? directory.merchantOrder.enumerated().flatMap { index, krn -> [SimulatorConfiguration.SeedDispute] in
            let short = krn.split(separator: ":").last.map(String.init) ?? "M"
            return [
                .init(id: "krn:payment:eu1:dispute:seed-\(short)-1", merchant: krn, amount: 2500 + index * 100, currency: "EUR", reason: "GOODS_NOT_RECEIVED", paymentTransactionID: nil),
                .init(id: "krn:payment:eu1:dispute:seed-\(short)-2", merchant: krn, amount: 990, currency: "EUR", reason: "FAULTY_GOODS", paymentTransactionID: nil),
            ]
        }
        for dispute in disputes {
            state.disputes[dispute.id] = DisputeRecord(
                id: dispute.id, merchant: dispute.merchant, transactionID: dispute.paymentTransactionID ?? "krn:payment:eu1:transaction:disputed-\(dispute.id.suffix(8))",
                amount: dispute.amount, currency: dispute.currency, reason: dispute.reason, state: "OPEN", openedAt: now - 86_400_000
            )
            state.disputeOrder.append(dispute.id)
        }
        let settlements = configuration.settlements ?? configuration.acquirers.flatMap { acquirer -> [SimulatorConfiguration.SeedSettlement] in
            [
                .init(id: "krn:settlement:eu1:settlement:seed-\(acquirer.id)-1", acquirer: acquirer.id, currency: "EUR", amount: 125_000, transactionCount: 5),
                .init(id: "krn:settlement:eu1:settlement:seed-\(acquirer.id)-2", acquirer: acquirer.id, currency: "EUR", amount: 48_000, transactionCount: 3),
            ]
        }
        for settlement in settlements {
            let merchants = directory.merchantOrder.filter { directory.merchants[$0]?.id == settlement.acquirer }
            let count = max(1, settlement.transactionCount ?? 3)
            let share = settlement.amount / count
            let transactions = (0..<count).map { index in
                (id: "krn:payment:eu1:transaction:settled-\(settlement.id.suffix(6))-\(index + 1)",
                 merchant: merchants.isEmpty ? "" : merchants[index % merchants.count], amount: share + share / 50, fee: share / 50)
            }
            state.settlements[settlement.id] = SettlementRecord(
                id: settlement.id, acquirer: settlement.acquirer, currency: settlement.currency, amount: settlement.amount,
                transactions: transactions, payoutStatus: "PROCESSED", createdAt: now - 2 * 86_400_000
            )
            state.settlementOrder.append(settlement.id)
        }
        for krn in directory.merchantOrder {
            guard let acquirer = directory.merchants[krn] else { continue }
            let id = "krn:payment:eu1:transaction:seed-\(krn.split(separator: ":").last ?? "")"
            var record = TransactionRecord(
                id: id, merchant: krn, acquirer: acquirer, currency: "EUR", ledger: TransactionLedger(authorized: 10_000),
                reference: "seed", paymentRequestID: nil, createdAt: now, updatedAt: now
            )
            record.render()
            state.transactions[id] = record
        }
    }
}
