import Crypto
import GatewayCore

/// The `v1` canonical encodings the chain and the checkpoint signatures are computed over (see docs/audit.md).
///
/// JSON without whitespace, keys in a fixed order, every key present (`null` when absent), integers in decimal,
/// strings escaped by `JSONText.quote`; so anyone can recompute it from an export with a few lines of code.
public enum AuditCanonical {
    /// The encoding version, the first key of every canonical record.
    public static let version = 1

    /// The hash the first entry of a fresh trail chains from.
    public static let genesisHash = String(repeating: "0", count: 64)

    /// The canonical encoding of an entry's chained fields (not its `prev_hash`/`hash`).
    public static func encode(_ entry: AuditEntry) -> String {
        head(seq: entry.seq) + tail(entry)
    }

    /// `SHA-256(prev hash bytes || canonical encoding)`, hex; a malformed previous hash is hashed as its text.
    public static func chainHash(previous: String, entry: AuditEntry) -> String {
        chainHash(previous: previous, seq: entry.seq, tail: tail(entry))
    }

    /// The encoding up to and including `seq`, the only field the writer learns late.
    static func head(seq: Int64) -> String { "{\"v\":\(version),\"seq\":\(seq)" }

    /// The encoding after `seq`: computed by the caller's thread, so the single writer only hashes.
    static func tail(_ entry: AuditEntry) -> String {
        var out = ""
        out.reserveCapacity(768)
        for (name, value) in zip(AuditEntry.fieldNames, entry.fieldValues).dropFirst() {
            out += ",\""
            out += name
            out += "\":"
            append(value, to: &out)
        }
        out += "}"
        return out
    }

    static func chainHash(previous: String, seq: Int64, tail: String) -> String {
        var hasher = SHA256()
        if let bytes = Hex.decode(previous), bytes.count == 32 {
            hasher.update(data: bytes)
        } else {
            hasher.update(data: Array(previous.utf8))
        }
        hasher.update(data: Array(head(seq: seq).utf8))
        hasher.update(data: Array(tail.utf8))
        return Hex.encode(hasher.finalize())
    }

    static func append(_ value: AuditFieldValue, to out: inout String) {
        switch value {
        case .text(nil), .integer(nil): out += "null"
        case .text(let text?):
            // Most values need no escaping; the byte scan is far cheaper than quoting scalar by scalar.
            if text.utf8.allSatisfy({ $0 >= 0x20 && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }) {
                out += "\""
                out += text
                out += "\""
            } else {
                out += JSONText.quote(text)
            }
        case .integer(let number?): out += String(number)
        }
    }
}
