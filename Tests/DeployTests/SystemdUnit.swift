import Foundation

/// A systemd unit file read by the rules of systemd.syntax(7): `[Section]` headers, `Key=Value` lines with the
/// whitespace around `=` dropped, `#` and `;` comment lines (ignored inside continued lines too), a trailing
/// backslash joining the next line. A key may be assigned several times; every assignment is kept in order.
struct SystemdUnit {
    private(set) var sections: [String: [(key: String, value: String)]] = [:]

    init(text: String) throws {
        var section: String?
        var pending = ""
        for (number, rawLine) in text.components(separatedBy: "\n").enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.isEmpty && pending.isEmpty { continue }
            if line.hasSuffix("\\") {
                pending += String(line.dropLast()) + " "
                continue
            }
            let logical = pending + line
            pending = ""
            if logical.hasPrefix("[") {
                guard logical.hasSuffix("]") else { throw DeployFileError("line \(number + 1): malformed section header \(logical)") }
                section = String(logical.dropFirst().dropLast())
                if sections[section!] == nil { sections[section!] = [] }
                continue
            }
            guard let section else { throw DeployFileError("line \(number + 1): assignment outside a section") }
            guard let equals = logical.firstIndex(of: "=") else { throw DeployFileError("line \(number + 1): not Key=Value: \(logical)") }
            let key = logical[..<equals].trimmingCharacters(in: .whitespaces)
            let value = logical[logical.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            guard !key.isEmpty, key.allSatisfy({ $0.isLetter || $0.isNumber }) else {
                throw DeployFileError("line \(number + 1): malformed key '\(key)'")
            }
            sections[section, default: []].append((key, value))
        }
    }

    /// Every value assigned to `key` in `section`, in order.
    func values(_ section: String, _ key: String) -> [String] {
        (sections[section] ?? []).filter { $0.key == key }.map(\.value)
    }

    /// The value that wins for a single-valued setting: the last assignment.
    func value(_ section: String, _ key: String) -> String? { values(section, key).last }
}
