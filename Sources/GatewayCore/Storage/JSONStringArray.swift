/// The JSON arrays of strings both stores write for merchant groups (`["eu","b\"x"]`): written and parsed here,
/// so the SQLite and PostgreSQL stores keep the same text.
///
/// A dedicated parser instead of `JSONDecoder`: it runs once per merchant on every reload, and a general
/// decoder costs more than the rest of the row.
package enum JSONStringArray {
    /// The array's JSON text.
    package static func render(_ strings: [String]) -> String {
        "[" + strings.map(JSONText.quote).joined(separator: ",") + "]"
    }

    /// The strings, or nil when the text is not a JSON array of strings.
    package static func parse(_ text: String) -> [String]? {
        if text == "[]" { return [] }
        var bytes = Array(text.utf8)[...]
        func skipSpace() { while let byte = bytes.first, byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 { bytes.removeFirst() } }
        skipSpace()
        guard bytes.popFirst() == UInt8(ascii: "[") else { return nil }
        var result: [String] = []
        skipSpace()
        if bytes.first == UInt8(ascii: "]") {
            bytes.removeFirst()
            return result
        }
        while true {
            skipSpace()
            guard bytes.popFirst() == UInt8(ascii: "\"") else { return nil }
            var scalars = String.UnicodeScalarView()
            var raw: [UInt8] = []
            while true {
                guard let byte = bytes.popFirst() else { return nil }
                if byte == UInt8(ascii: "\"") { break }
                guard byte == UInt8(ascii: "\\") else {
                    raw.append(byte)
                    continue
                }
                if !raw.isEmpty {
                    scalars.append(contentsOf: String(decoding: raw, as: UTF8.self).unicodeScalars)
                    raw.removeAll(keepingCapacity: true)
                }
                guard let escape = bytes.popFirst() else { return nil }
                switch escape {
                case UInt8(ascii: "\""): scalars.append("\"")
                case UInt8(ascii: "\\"): scalars.append("\\")
                case UInt8(ascii: "/"): scalars.append("/")
                case UInt8(ascii: "n"): scalars.append("\n")
                case UInt8(ascii: "r"): scalars.append("\r")
                case UInt8(ascii: "t"): scalars.append("\t")
                case UInt8(ascii: "b"): scalars.append("\u{8}")
                case UInt8(ascii: "f"): scalars.append("\u{C}")
                case UInt8(ascii: "u"):
                    guard bytes.count >= 4, let value = UInt32(String(decoding: bytes.prefix(4), as: UTF8.self), radix: 16),
                        let scalar = Unicode.Scalar(value)
                    else { return nil }
                    bytes.removeFirst(4)
                    scalars.append(scalar)
                default: return nil
                }
            }
            if !raw.isEmpty { scalars.append(contentsOf: String(decoding: raw, as: UTF8.self).unicodeScalars) }
            result.append(String(scalars))
            skipSpace()
            switch bytes.popFirst() {
            case UInt8(ascii: ","): continue
            case UInt8(ascii: "]"):
                skipSpace()
                return bytes.isEmpty ? result : nil
            default: return nil
            }
        }
    }
}
