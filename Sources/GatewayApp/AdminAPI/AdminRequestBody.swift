import GatewayCore

/// A change's JSON body: an object of known fields only, each read with its type checked, so that a malformed or
/// unexpected body is a 400 naming the field rather than a change half understood.
struct AdminRequestBody {
    private let fields: [String: JSONValue]

    /// Parses `bytes` as a JSON object whose field names are all in `allowed`; `shape` is quoted in refusals.
    init(_ bytes: [UInt8], allowed: Set<String>, shape: String) throws {
        guard let parsed = try? JSONValue.parse(bytes), let object = parsed.objectValue else {
            throw GatewayError(.badRequest, "send a JSON object: \(shape)")
        }
        var fields: [String: JSONValue] = [:]
        for (name, value) in object {
            guard allowed.contains(name) else { throw GatewayError(.badRequest, "unknown field '\(Self.quoted(name))'; send \(shape)") }
            guard fields.updateValue(value, forKey: name) == nil else { throw GatewayError(.badRequest, "field '\(name)' appears twice") }
        }
        self.fields = fields
    }

    /// A field as sent; nil when absent.
    func value(_ name: String) -> JSONValue? { fields[name] }

    /// Whether the field was sent (null included).
    func has(_ name: String) -> Bool { fields[name] != nil }

    /// A string field of at most `maxLength` characters; nil when absent (or null, if `nullable`).
    func string(_ name: String, maxLength: Int = 64, nullable: Bool = false) throws -> String? {
        switch fields[name] {
        case nil: return nil
        case .null? where nullable: return nil
        case .string(let text)? where text.count <= maxLength: return text
        default: throw GatewayError(.badRequest, "\(name) is a string of at most \(maxLength) characters\(nullable ? " or null" : "")")
        }
    }

    /// A required string field.
    func requiredString(_ name: String, maxLength: Int = 64) throws -> String {
        guard let text = try string(name, maxLength: maxLength) else { throw GatewayError(.badRequest, "\(name) is required") }
        return text
    }

    /// A boolean field; nil when absent.
    func bool(_ name: String) throws -> Bool? {
        switch fields[name] {
        case nil: return nil
        case .bool(let flag)?: return flag
        default: throw GatewayError(.badRequest, "\(name) is true or false")
        }
    }

    /// An array of strings (at most `maxCount`, each at most 64 characters); nil when absent.
    func strings(_ name: String, maxCount: Int = 100) throws -> [String]? {
        guard let value = fields[name] else { return nil }
        guard let items = value.arrayValue, items.count <= maxCount else {
            throw GatewayError(.badRequest, "\(name) is an array of at most \(maxCount) strings")
        }
        return try items.map { item in
            guard let text = item.stringValue, text.count <= 64 else { throw GatewayError(.badRequest, "each of \(name) is a string of at most 64 characters") }
            return text
        }
    }

    /// A field name as quoted in a refusal: bounded, so a huge key does not come back in the answer.
    private static func quoted(_ name: String) -> String { name.count > 64 ? String(name.prefix(64)) + "…" : name }
}
