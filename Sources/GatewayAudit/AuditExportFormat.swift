import Foundation

/// How `audit export` and `audit tail` write records.
public enum AuditExportFormat: String, Sendable, CaseIterable {
    /// One JSON object per line: the record's fields after `"v"` (its canonical version) plus `prev_hash` and
    /// `hash`, so a line can be re-verified.
    case jsonl
    /// RFC 4180 CSV with a header row of the column names.
    case csv

    /// The header line, if the format has one.
    public var header: String? {
        switch self {
        case .jsonl: nil
        case .csv: (AuditEntry.fieldNames + AuditEntry.chainColumns).joined(separator: ",") + "\n"
        }
    }

    /// One record, newline-terminated.
    public func line(for entry: AuditEntry) -> String {
        switch self {
        case .jsonl:
            var text = AuditCanonical.encode(entry)
            text.removeLast()
            return text + ",\"prev_hash\":\"\(entry.prevHash)\",\"hash\":\"\(entry.hash)\"}\n"
        case .csv:
            var fields = entry.fieldValues.map { value -> String in
                switch value {
                case .text(nil), .integer(nil): ""
                case .integer(let number?): String(number)
                case .text(let text?): Self.csvField(text)
                }
            }
            fields.append(entry.prevHash)
            fields.append(entry.hash)
            fields.append(String(entry.canonicalVersion))
            return fields.joined(separator: ",") + "\n"
        }
    }

    /// Quotes a CSV field when it needs it; a leading formula character is neutralised so spreadsheets
    /// opened by investigators do not execute values a caller chose (idempotency keys, correlation ids).
    static func csvField(_ text: String) -> String {
        var value = text
        if let first = value.first, "=+-@\t\r".contains(first) { value = "'" + value }
        guard value.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return value }
        return "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
