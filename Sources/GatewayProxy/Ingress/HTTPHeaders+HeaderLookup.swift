import GatewayCore
import NIOHTTP1

extension HTTPHeaders: HeaderLookup {
    /// Every value of `name`, case-insensitively, without splitting on commas.
    public func values(of name: String) -> [String] { self[name] }

    /// Every pair in order.
    public func forEachHeader(_ body: (String, String) throws -> Void) rethrows {
        for (name, value) in self { try body(name, value) }
    }

    /// How many pairs there are.
    public var headerCount: Int { count }
}
