import Foundation
import GatewayCore

/// An acquirer as the simulator knows it.
struct AcquirerInfo: Sendable, Hashable {
    let id: String
    let krn: String
}

/// Who an API key belongs to.
enum Principal: Sendable {
    case acquirer(AcquirerInfo)
    case merchant(krn: String, acquirer: AcquirerInfo)

    var acquirer: AcquirerInfo {
        switch self {
        case .acquirer(let acquirer), .merchant(_, let acquirer): acquirer
        }
    }

    /// A stable id for scoping idempotency keys and the like.
    var id: String {
        switch self {
        case .acquirer(let acquirer): acquirer.krn
        case .merchant(let krn, _): krn
        }
    }
}

/// The seeded accounts: which merchants exist and whose they are. Fixed at start; keys live in `KeyRing`.
struct AccountDirectory: Sendable {
    let acquirers: [String: AcquirerInfo]
    /// Merchant KRN → owning acquirer.
    let merchants: [String: AcquirerInfo]
    let merchantOrder: [String]

    init(configuration: SimulatorConfiguration) {
        var acquirers: [String: AcquirerInfo] = [:]
        for acquirer in configuration.acquirers { acquirers[acquirer.id] = AcquirerInfo(id: acquirer.id, krn: acquirer.krn) }
        let first = configuration.acquirers[0].id
        var merchants: [String: AcquirerInfo] = [:]
        for merchant in configuration.merchants { merchants[merchant.krn] = acquirers[merchant.acquirer ?? first] }
        self.acquirers = acquirers
        self.merchants = merchants
        self.merchantOrder = configuration.merchants.map(\.krn)
    }
}

/// The API keys accepted right now: the configured ones plus any created through the credentials API.
struct KeyRing: Sendable {
    struct Credential: Sendable {
        let id: String
        let key: String
        let principal: Principal
        var status: String
        let createdAt: Int64
        var description: String?
    }

    private(set) var byKey: [String: Principal] = [:]
    private(set) var credentials: [String: Credential] = [:]
    private(set) var order: [String] = []

    mutating func add(key: String, principal: Principal, id: String, createdAt: Int64, description: String? = nil) {
        byKey[key] = principal
        credentials[id] = Credential(id: id, key: key, principal: principal, status: "ENABLED", createdAt: createdAt, description: description)
        order.append(id)
    }

    mutating func setStatus(id: String, status: String) {
        guard var credential = credentials[id] else { return }
        credential.status = status
        credentials[id] = credential
        if status == "ENABLED" { byKey[credential.key] = credential.principal } else { byKey[credential.key] = nil }
    }

    mutating func remove(id: String) {
        guard let credential = credentials.removeValue(forKey: id) else { return }
        byKey[credential.key] = nil
        order.removeAll { $0 == id }
    }

    /// The key in an `Authorization` header: `Basic klarna_test_api_…` as issued, or standard Basic of `:key`.
    static func apiKey(fromAuthorization header: String) -> String? {
        // Runs on every request: plain UTF-8 checks, no Foundation.
        guard header.utf8.count > 6 else { return nil }
        let scheme = header.utf8.prefix(6).map { $0 | 0x20 }
        guard scheme == Array("basic ".utf8) else { return nil }
        var trimmed = Substring(header.utf8.dropFirst(6))
        while trimmed.first == " " { trimmed = trimmed.dropFirst() }
        while trimmed.last == " " { trimmed = trimmed.dropLast() }
        let credential = String(trimmed)
        if credential.hasPrefix(KlarnaEnvironment.test.apiKeyPrefix) || credential.hasPrefix(KlarnaEnvironment.live.apiKeyPrefix) {
            return credential
        }
        guard let decoded = Base64Decoding.decode(credential), let text = String(bytes: decoded, encoding: .utf8) else { return nil }
        // Standard Basic: user ":" password; Klarna's key goes in the password with an empty (or any) user.
        guard let colon = text.firstIndex(of: ":") else { return nil }
        let password = String(text[text.index(after: colon)...])
        return password.isEmpty ? String(text[..<colon]) : password
    }
}

/// Standard base64 decoding without Foundation's Data round trip.
enum Base64Decoding {
    static func decode(_ text: String) -> [UInt8]? {
        var values: [UInt8] = []
        values.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): values.append(byte - 65)
            case UInt8(ascii: "a")...UInt8(ascii: "z"): values.append(byte - 71)
            case UInt8(ascii: "0")...UInt8(ascii: "9"): values.append(byte + 4)
            case UInt8(ascii: "+"), UInt8(ascii: "-"): values.append(62)
            case UInt8(ascii: "/"), UInt8(ascii: "_"): values.append(63)
            case UInt8(ascii: "="): break
            default: return nil
            }
        }
        var out: [UInt8] = []
        var index = 0
        while index + 1 < values.count {
            let a = values[index], b = values[index + 1]
            out.append(a << 2 | b >> 4)
            if index + 2 < values.count {
                let c = values[index + 2]
                out.append((b & 15) << 4 | c >> 2)
                if index + 3 < values.count { out.append((c & 3) << 6 | values[index + 3]) }
            }
            index += 4
        }
        return out
    }
}
