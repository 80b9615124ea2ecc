import Foundation
import GatewayCore

/// The control port's routes (plain HTTP on loopback; JSON in and out):
///
/// - `GET /control/health`
/// - `GET /control/requests[?since=SEQ]`, `DELETE /control/requests`: the record of API requests, oldest first
/// - `GET|POST /control/recorded-headers`: list, or add (`{"headers": ["X-Name"]}`), the headers copied into the record
/// - `GET|POST|DELETE /control/faults`: list, add (a `FaultRule` as JSON) or clear fault rules
/// - `POST /control/payment-requests/{id}/advance` with `{"state": "IN_PROGRESS|COMPLETED|DECLINED|EXPIRED|CANCELED"}`
/// - `GET|DELETE /control/webhook-deliveries`: webhook deliveries with every attempt
/// - `GET /control/signing-keys`: every signing key with its secret, so a test can search a receiver's outputs for
///   a secret Klarna showed only once
struct SimulatorControl: Sendable {
    let simulator: Simulator

    func handle(_ request: SimulatorRequest) -> SimulatorOutcome {
        SimulatorOutcome(response: route(request))
    }

    private func route(_ request: SimulatorRequest) -> SimulatorResponse {
        let segments = request.path.split(separator: "/")
        guard segments.first == "control" else { return KlarnaError.unknownRoute.response }
        switch (request.method, Array(segments.dropFirst())) {
        case ("GET", ["health"]):
            return SimulatorResponse(status: 200, json: ["status": "ok", "operations": .int(simulator.catalogue.operations.count)])
        case ("GET", ["requests"]):
            let since = request.queryItem("since").flatMap(Int.init) ?? 0
            let entries = simulator.record.withLock { $0.entries }.filter { $0.sequence > since }
            return SimulatorResponse(status: 200, json: ["requests": .array(entries.map(\.json))])
        case ("DELETE", ["requests"]):
            simulator.record.withLock { $0.clear() }
            return .noContent
        case ("GET", ["recorded-headers"]):
            return SimulatorResponse(status: 200, json: ["headers": .array(simulator.recordedHeaderNames.withLock { $0 }.map { .string($0) })])
        case ("POST", ["recorded-headers"]):
            let body = (try? JSONValue.parse(request.body)) ?? .null
            guard let names = body["headers"]?.arrayValue?.compactMap(\.stringValue), !names.isEmpty else {
                return KlarnaError.validation("headers", "must be a non-empty list of header names").response
            }
            let all = simulator.recordedHeaderNames.withLock { current -> [String] in
                for name in names where !current.contains(where: { $0.lowercased() == name.lowercased() }) { current.append(name) }
                return current
            }
            return SimulatorResponse(status: 200, json: ["headers": .array(all.map { .string($0) })])
        case ("GET", ["faults"]):
            return faultsResponse(status: 200)
        case ("POST", ["faults"]):
            do {
                let rule = try JSONDecoder().decode(FaultRule.self, from: Data(request.body))
                if let rate = rule.rate, !(0...1).contains(rate) { return KlarnaError.validation("rate", "must be between 0 and 1").response }
                if let count = rule.count, count < 1 { return KlarnaError.validation("count", "must be at least 1").response }
                simulator.faults.withLock { $0.add(rule) }
                return faultsResponse(status: 201)
            } catch {
                return KlarnaError.validation("body", "not a fault rule: \(error)").response
            }
        case ("DELETE", ["faults"]):
            simulator.faults.withLock { $0.clear() }
            return .noContent
        case ("POST", let parts) where parts.count == 3 && parts[0] == "payment-requests" && parts[2] == "advance":
            let body = (try? JSONValue.parse(request.body)) ?? .null
            guard let name = body["state"]?.stringValue, let target = PaymentRequestState(rawValue: name) else {
                return KlarnaError.validation("state", "must be one of IN_PROGRESS, COMPLETED, DECLINED, EXPIRED, CANCELED").response
            }
            switch simulator.advancePaymentRequest(id: String(parts[1]), to: target) {
            case .success(let json): return SimulatorResponse(status: 200, json: json)
            case .failure(let error): return error.response
            }
        case ("GET", ["webhook-deliveries"]):
            return SimulatorResponse(status: 200, json: ["deliveries": .array(simulator.webhooks.deliveries.map(\.json))])
        case ("GET", ["signing-keys"]):
            let keys = simulator.state.withLock { state in
                state.signingKeys.values.sorted { $0.createdAt < $1.createdAt }.map { $0.json.setting("signing_key", .string($0.secret)) }
            }
            return SimulatorResponse(status: 200, json: ["signing_keys": .array(keys)])
        case ("DELETE", ["webhook-deliveries"]):
            simulator.webhooks.clear()
            return .noContent
        default:
            return KlarnaError.unknownRoute.response
        }
    }

    private func faultsResponse(status: Int) -> SimulatorResponse {
        let rules = simulator.faults.withLock { $0.rules }
        let data = (try? JSONEncoder().encode(rules)) ?? Data("[]".utf8)
        return SimulatorResponse(status: status, headers: [("Content-Type", "application/json")], body: Array("{\"faults\":".utf8) + Array(data) + [UInt8(ascii: "}")])
    }
}
