import FuzzSupport
import GatewayCore

/// `METHOD\npath`: the trie matcher must never crash, and on a validated target a match must agree with the
/// operation's template.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOperationMatcher(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: start, count: count))
    let text = String(decoding: bytes, as: UTF8.self)
    guard let newline = text.firstIndex(of: "\n") else { return 0 }
    let method = String(text[..<newline])
    let path = text[text.index(after: newline)...]
    let matcher = FuzzSupport.catalogue.matcher
    // Raw paths: the matcher documents that it expects validated targets, so only a crash counts here.
    _ = matcher.match(method: method, path: path)
    // Validated targets, as the gateway calls it: a match must be for the method asked, with one segment per
    // template segment, literal segments equal to the template's, and the same answer twice.
    guard let target = try? RequestTarget(parsing: String(path)) else { return 0 }
    guard case .success(let match) = matcher.match(method: method, path: target.path) else { return 0 }
    let operation = match.operation
    FuzzSupport.require(operation.method == method, "matched \(operation.id) for method \(method)", input: bytes)
    FuzzSupport.require(match.segments.count == operation.templateSegments.count, "\(operation.id) matched another segment count", input: bytes)
    for (segment, template) in zip(match.segments, operation.templateSegments) where !template.hasPrefix("{") {
        FuzzSupport.require(segment == template, "\(operation.id) matched \(segment) for the literal \(template)", input: bytes)
    }
    if case .success(let again) = matcher.match(method: method, path: target.path) {
        FuzzSupport.require(again.operation.id == operation.id, "a second match differs", input: bytes)
    } else {
        FuzzSupport.require(false, "a second match failed", input: bytes)
    }
    return 0
}
