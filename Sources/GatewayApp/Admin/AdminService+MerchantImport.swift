import Crypto
import GatewayCore

/// What `merchants import` did.
public struct MerchantImportResult: Sendable, Hashable {
    /// Merchants that did not exist before.
    public let added: Int
    /// Existing merchants whose partner, account or groups were replaced.
    public let updated: Int
}

extension AdminService {
    /// The most problems one failed import reports; past this the file is clearly wrong as a whole.
    static let maximumImportProblems = 50

    /// Imports merchants from CSV (`id,partner,account[,group]`; several groups separated by `;`), all or nothing.
    ///
    /// Every line is checked before anything is written, and every problem is reported with its line number.
    /// Existing merchants keep their status, own key and release pin; their partner, account and groups are
    /// replaced.
    public func importMerchants(csv text: String) async throws -> MerchantImportResult {
        let contents = try await store.contents()
        let partners = Dictionary(contents.partners.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        let existing = Dictionary(contents.merchants.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        var accountHolders = Dictionary(
            contents.merchants.map { ($0.account.rawValue, $0.id) }, uniquingKeysWith: { first, _ in first })

        // `\r\n` is one Character in Swift, so split on any newline rather than on "\n".
        var lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
        if let first = lines.first, first.hasPrefix("\u{FEFF}") { lines[0] = first.dropFirst() }
        guard let header = lines.first.map({ $0.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmed } }),
            header == ["id", "partner", "account"] || header == ["id", "partner", "account", "group"]
        else {
            throw AdminError("line 1: the header must be `id,partner,account` or `id,partner,account,group`")
        }

        var problems: [String] = []
        var records: [MerchantRecord] = []
        records.reserveCapacity(lines.count)
        var seenIDs: [String: Int] = [:]
        var added = 0
        for (index, line) in lines.enumerated().dropFirst() {
            let number = index + 1
            if line.allSatisfy({ $0 == " " || $0 == "\t" }) { continue }
            guard problems.count < AdminService.maximumImportProblems else { break }
            let fields = line.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmed }
            guard fields.count == header.count || (header.count == 4 && fields.count == 3) else {
                problems.append("line \(number): expected \(header.count) fields, found \(fields.count)")
                continue
            }
            let (id, partnerID, account) = (fields[0], fields[1], fields[2])
            let groups = fields.count > 3 ? fields[3].split(separator: ";").map { $0.trimmed }.filter { !$0.isEmpty } : []
            guard let partner = partners[partnerID] else {
                problems.append("line \(number): no partner with id '\(partnerID)'")
                continue
            }
            let krn: AccountKRN
            do {
                krn = try AdminService.checkMerchant(id: id, partner: partner, account: account, groups: groups)
            } catch {
                problems.append("line \(number): \(error)")
                continue
            }
            if let previous = seenIDs[id] {
                problems.append("line \(number): merchant '\(id)' already appears on line \(previous)")
                continue
            }
            seenIDs[id] = number
            if let holder = accountHolders[account], holder != id {
                problems.append("line \(number): account \(account) already belongs to merchant '\(holder)'")
                continue
            }
            accountHolders[account] = id
            var record = existing[id] ?? MerchantRecord(id: id, partnerID: partnerID, account: krn)
            if existing[id] == nil { added += 1 }
            record.partnerID = partnerID
            record.account = krn
            record.groups = groups
            records.append(record)
        }
        guard problems.isEmpty else {
            throw AdminError("nothing imported; fix these lines:\n" + problems.joined(separator: "\n"))
        }
        // An account moved from one merchant to another inside one file would violate the unique index half-way;
        // the check above catches accounts held by merchants outside the file, and SQLite catches the rest.
        // The file's hash identifies it, as the admin API's record of an import does; ids would be thousands.
        let digest = Hex.encode(SHA256.hash(data: Array(text.utf8)))
        try await changing("merchants.import", "\(records.count) merchants (\(added) added, \(records.count - added) updated) from CSV sha256 \(digest)") {
            try await store.saveMerchants(records, secrets: [])
        }
        return MerchantImportResult(added: added, updated: records.count - added)
    }
}

extension Substring {
    /// The text without surrounding spaces and tabs.
    var trimmed: String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let start = firstIndex(where: { !isSpace($0) }), let end = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[start...end])
    }
}
