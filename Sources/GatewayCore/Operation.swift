import Synchronization

/// Who a Klarna operation acts for, which decides where the merchant comes from and which key is sent.
public enum OperationScope: String, Sendable, Hashable, Codable {
    /// `/v2/accounts/{partner_account_id}/…`: the acquirer's key, the merchant's KRN in the path.
    case merchant
    /// `/v2/account/…`, `/v2/notification/…`, …: the acquirer itself, no merchant.
    case acquirer
    /// `/v2/payment/…` without an account segment: the merchant's own key.
    case direct
}

/// One row of the operation catalogue: a Klarna API operation the gateway knows.
///
/// A value with its fields in one shared, immutable box: a call carries its operation through its facts, its plan
/// and its records, and copying eleven fields (seven of them strings) at each step cost more than the decisions
/// made with them. A copy is now one reference count.
public struct Operation: Sendable, Hashable {
    private final class Storage: Sendable {
        let id: String
        let method: String
        let template: String
        let scope: OperationScope
        let family: String
        let category: String
        let introducedIn: String
        let testOnly: Bool
        let templateSegments: [Substring]
        let accountSegmentIndex: Int?
        let hasTokenSegment: Bool
        /// `cachedBytes`'s bytes once made: the address (0 until then) of a length (`Int`) followed by that many
        /// bytes, owned by the box. An integer, since an atomic pointer is not `Sendable`.
        let cached = Atomic<Int>(0)

        init(
            id: String, method: String, template: String, scope: OperationScope, family: String, category: String,
            introducedIn: String, testOnly: Bool
        ) {
            self.id = id
            self.method = method
            self.template = template
            self.scope = scope
            self.family = family
            self.category = category
            self.introducedIn = introducedIn
            self.testOnly = testOnly
            self.templateSegments = Array(template.fastSplit(UInt8(ascii: "/")).dropFirst())
            self.accountSegmentIndex = templateSegments.firstIndex(of: "{partner_account_id}")
            self.hasTokenSegment = templateSegments.contains { $0.hasPrefix("{") && $0.lowercased().contains("token") }
        }

        deinit { UnsafeMutableRawPointer(bitPattern: cached.load(ordering: .acquiring))?.deallocate() }
    }

    private let storage: Storage

    /// Stable operation id (`capturePaymentTransaction`).
    public var id: String { storage.id }
    /// HTTP method.
    public var method: String { storage.method }
    /// Path template with `{name}` parameters.
    public var template: String { storage.template }
    /// Merchant, acquirer or direct.
    public var scope: OperationScope { storage.scope }
    /// API family, the unit grants are written in (`payment-transaction`).
    public var family: String { storage.family }
    /// Klarna rate-limit category (`payment-transaction-capture`).
    public var category: String { storage.category }
    /// The release that introduced it (`stable-v1`, `r3` …).
    public var introducedIn: String { storage.introducedIn }
    /// True where Klarna offers it in the test environment only.
    public var testOnly: Bool { storage.testOnly }
    /// The template's segments (without the leading empty one), split once.
    public var templateSegments: [Substring] { storage.templateSegments }
    /// Index of the `{partner_account_id}` segment in the path's segments, for merchant-scoped operations.
    public var accountSegmentIndex: Int? { storage.accountSegmentIndex }
    /// Whether a path parameter carries a customer's token (`{payment_token}` …), which the audit record replaces
    /// by its template name: known once here rather than searched for on every call.
    public var hasTokenSegment: Bool { storage.hasTokenSegment }

    /// Bytes `make` derives from this operation's constant fields, made on its first use and kept in the shared box
    /// (the tracing encoder's call-span attributes: appending them cost a traced call less than reading three
    /// strings out of the box, whose reference counts every event loop touches). Valid while the operation lives;
    /// `make` must give the same bytes each time, since two threads may both make them once.
    public func cachedBytes(_ make: (Operation) -> [UInt8]) -> UnsafeRawBufferPointer {
        if let cached = UnsafeMutableRawPointer(bitPattern: storage.cached.load(ordering: .acquiring)) { return Self.bytes(at: cached) }
        let bytes = make(self)
        let made = UnsafeMutableRawPointer.allocate(byteCount: MemoryLayout<Int>.size + bytes.count, alignment: MemoryLayout<Int>.alignment)
        made.storeBytes(of: bytes.count, as: Int.self)
        UnsafeMutableRawBufferPointer(start: made + MemoryLayout<Int>.size, count: bytes.count).copyBytes(from: bytes)
        let (stored, winner) = storage.cached.compareExchange(expected: 0, desired: Int(bitPattern: made), ordering: .acquiringAndReleasing)
        if stored { return Self.bytes(at: made) }
        made.deallocate()
        return Self.bytes(at: UnsafeMutableRawPointer(bitPattern: winner)!)
    }

    private static func bytes(at pointer: UnsafeMutableRawPointer) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: pointer + MemoryLayout<Int>.size, count: pointer.load(as: Int.self))
    }

    /// Makes an operation.
    public init(
        id: String, method: String, template: String, scope: OperationScope, family: String, category: String,
        introducedIn: String, testOnly: Bool
    ) {
        storage = Storage(
            id: id, method: method, template: template, scope: scope, family: family, category: category,
            introducedIn: introducedIn, testOnly: testOnly)
    }

    /// Equal when every catalogue field is (the derived ones follow from the template); the same box is equal at once.
    public static func == (left: Operation, right: Operation) -> Bool {
        left.storage === right.storage
            || (left.id == right.id && left.method == right.method && left.template == right.template && left.scope == right.scope
                && left.family == right.family && left.category == right.category && left.introducedIn == right.introducedIn
                && left.testOnly == right.testOnly)
    }

    /// Hashes the fields `==` compares, less the ones an id and template already tell apart.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(id)
        hasher.combine(method)
        hasher.combine(template)
    }
}
