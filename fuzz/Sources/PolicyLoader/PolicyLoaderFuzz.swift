import FuzzSupport
import GatewayCore
import GatewayPolicy

/// Any text as each policy file: loading must end in a policy or a `ConfigError`, never a crash or a hang.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPolicyLoader(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: start, count: count))
    let text = String(decoding: bytes, as: UTF8.self)
    let catalogue = FuzzSupport.catalogue
    expectConfigError(bytes) { _ = try PolicyLoader.access(yaml: text, source: "fuzz", catalogue: catalogue) }
    expectConfigError(bytes) { _ = try PolicyLoader.rateLimits(yaml: text, source: "fuzz", catalogue: catalogue) }
    expectConfigError(bytes) { _ = try PolicyLoader.releases(yaml: text, source: "fuzz", catalogue: catalogue) }
    return 0
}

/// A refusal must be a `ConfigError` naming the source, so an operator is told which file is wrong.
private func expectConfigError(_ input: [UInt8], _ body: () throws -> Void) {
    do {
        try body()
    } catch let error as ConfigError {
        FuzzSupport.require(error.source == "fuzz", "a ConfigError without its source", input: input)
    } catch {
        FuzzSupport.require(false, "an error that is not a ConfigError: \(type(of: error))", input: input)
    }
}
