import GatewayCore
/// One request as the simulator received it, for tests to read through `GET /control/requests`.
struct RecordedRequest: Sendable {
    let sequence: Int
    let receivedAtMilliseconds: Int64
    let method: String
    let path: String
    let operationID: String?
    let account: String?
    /// The `Authorization` value exactly as sent: the point of the record, exposed only on the loopback control port.
    let authorization: String?
    let certificateSubject: String?
    let certificateFingerprint: String?
    let headers: [(String, String)]
    let bodySHA256: String
    let bodySize: Int
    let status: Int

    var json: JSONValue {
        [
            "sequence": .int(sequence), "received_at_ms": .int(Int(receivedAtMilliseconds)), "method": .string(method),
            "path": .string(path), "operation_id": operationID.json, "account": account.json, "authorization": authorization.json,
            "client_certificate_subject": certificateSubject.json, "client_certificate_fingerprint": certificateFingerprint.json,
            "headers": .object(headers.map { ($0.0, .string($0.1)) }), "body_sha256": .string(bodySHA256),
            "body_size": .int(bodySize), "status": .int(status),
        ]
    }
}

/// A bounded ring buffer of recorded requests: the oldest fall off, so a long benchmark cannot exhaust memory.
struct RequestRecord: Sendable {
    let capacity: Int
    private var storage: [RecordedRequest] = []
    private var start = 0
    private(set) var nextSequence = 1

    init(capacity: Int) { self.capacity = max(1, capacity) }

    mutating func append(_ make: (Int) -> RecordedRequest) {
        let entry = make(nextSequence)
        nextSequence += 1
        if storage.count < capacity {
            storage.append(entry)
        } else {
            storage[start] = entry
            start = (start + 1) % capacity
        }
    }

    /// Oldest first.
    var entries: [RecordedRequest] { Array(storage[start...] + storage[..<start]) }

    mutating func clear() {
        storage.removeAll()
        start = 0
    }
}
