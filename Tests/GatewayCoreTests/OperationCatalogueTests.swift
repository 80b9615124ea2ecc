import GatewayCore
import Testing

@Suite("Operation catalogue")
struct OperationCatalogueTests {
    @Test("every operation of Klarna's endpoint list is in the catalogue")
    func coversEndpointList() throws {
        let endpoints = try String(
            contentsOf: Fixtures.repositoryRoot.deletingLastPathComponent().appendingPathComponent("shared/klarna-endpoints.tsv"),
            encoding: .utf8)
        let rows = endpoints.split(separator: "\n").dropFirst().map { $0.split(separator: "\t").map(String.init) }
        let catalogued = Set(Fixtures.catalogue.operations.map { "\($0.method) \($0.template)" })
        for row in rows { #expect(catalogued.contains("\(row[0]) \(row[1])"), "missing \(row[0]) \(row[1])") }
        #expect(Fixtures.catalogue.operations.count == rows.count)
    }

    @Test("a request built from each template matches that row and no other")
    func everyRowMatchesItself() {
        for operation in Fixtures.catalogue.operations {
            let path = operation.templateSegments.map { segment -> String in
                switch segment {
                case "{partner_account_id}": "krn:partner:global:account:test:M1"
                case "{payment_transaction_id}": "krn:payment:eu1:transaction:6debe89e"
                default: segment.hasPrefix("{") ? "id-\(segment.count)" : String(segment)
                }
            }.joined(separator: "/")
            let result = Fixtures.catalogue.matcher.match(method: operation.method, path: Substring("/" + path))
            switch result {
            case .success(let match): #expect(match.operation.id == operation.id, "\(operation.method) /\(path) matched \(match.operation.id)")
            case .failure(let miss): Issue.record("\(operation.id) did not match: \(miss)")
            }
        }
    }

    @Test("unknown paths and methods are misses")
    func misses() {
        let matcher = Fixtures.catalogue.matcher
        #expect(throws: OperationMatcher.Miss.noSuchPath) { try matcher.match(method: "GET", path: "/v2/nothing/here").get() }
        #expect(throws: OperationMatcher.Miss.noSuchPath) { try matcher.match(method: "GET", path: "/").get() }
        guard case .failure(.methodNotAllowed(let allowed)) = matcher.match(method: "PUT", path: "/v2/accounts/x/payment/requests") else {
            Issue.record("PUT on payment requests should be a method miss")
            return
        }
        #expect(allowed == ["POST"])
    }

    @Test("the matcher walks bytes: deeper, shorter and prefix paths miss, segments come back as sent")
    func byteWalkEdges() throws {
        let matcher = Fixtures.catalogue.matcher
        let deepest = Fixtures.catalogue.operations.map(\.templateSegments.count).max()!
        let tooDeep = "/v2/accounts/x/payment/requests" + String(repeating: "/x", count: deepest)
        #expect(throws: OperationMatcher.Miss.noSuchPath) { try matcher.match(method: "GET", path: Substring(tooDeep)).get() }
        #expect(throws: OperationMatcher.Miss.noSuchPath) { try matcher.match(method: "GET", path: "/v2/accounts").get() }
        #expect(throws: OperationMatcher.Miss.noSuchPath) { try matcher.match(method: "GET", path: "/v2/accountsx/x/payment/requests").get() }
        #expect(throws: OperationMatcher.Miss.noSuchPath) { try matcher.match(method: "GET", path: "/v2/account/x/payment/requests").get() }
        #expect(throws: OperationMatcher.Miss.noSuchPath) { try matcher.match(method: "GET", path: "v2").get() }
        // An empty segment never fills a parameter.
        #expect(throws: OperationMatcher.Miss.noSuchPath) { try matcher.match(method: "POST", path: "/v2/accounts//payment/requests").get() }
        // A substring of a longer string: the offsets are the substring's own.
        let whole = "GET /v2/accounts/krn:partner:global:account:test:M7/payment/requests?x=1"
        let path = whole.dropFirst(4).prefix { $0 != "?" }
        let match = try matcher.match(method: "POST", path: path).get()
        #expect(match.segments == ["v2", "accounts", "krn:partner:global:account:test:M7", "payment", "requests"])
        // A bridged or otherwise non-contiguous string takes the copying path and agrees.
        let copied = try matcher.match(method: "POST", path: Substring(String(path))).get()
        #expect(copied.operation.id == match.operation.id && copied.segments == match.segments)
    }

    @Test("the catalogue parser names the line of a bad row")
    func parserErrors() {
        let header = OperationCatalogue.columns.joined(separator: "\t")
        #expect(throws: OperationCatalogue.ParseError.self) { try OperationCatalogue(tsv: "") }
        #expect(throws: OperationCatalogue.ParseError.self) { try OperationCatalogue(tsv: "id\tmethod\n") }
        do {
            _ = try OperationCatalogue(tsv: header + "\nx\tGET\t/v2/a\tsomewhere\tf\tc\tr3\tno\n")
            Issue.record("bad scope accepted")
        } catch let error as OperationCatalogue.ParseError {
            #expect(error.line == 2)
        } catch {
            Issue.record("unexpected \(error)")
        }
        #expect(throws: OperationCatalogue.ParseError.self) {
            try OperationCatalogue(tsv: header + "\na\tGET\t/v2/{x}\tacquirer\tf\tc\tr3\tno\nb\tGET\t/v2/{y}\tacquirer\tf\tc\tr3\tno\n")
        }
    }
}
