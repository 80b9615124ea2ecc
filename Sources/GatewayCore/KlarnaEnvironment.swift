/// Klarna's two fully separate worlds; every identifier names the one it belongs to.
public enum KlarnaEnvironment: String, Sendable, Hashable, Codable, CaseIterable {
    case test
    case live

    /// Klarna's global Network API host for this environment.
    public var defaultBaseURL: String {
        switch self {
        case .test: "https://api-global.test.klarna.com"
        case .live: "https://api-global.klarna.com"
        }
    }

    /// The prefix Klarna gives API keys of this environment.
    public var apiKeyPrefix: String {
        switch self {
        case .test: "klarna_test_api_"
        case .live: "klarna_live_api_"
        }
    }

    /// The environment an API key belongs to, read from its prefix; nil when it has neither prefix.
    public static func of(apiKey: String) -> KlarnaEnvironment? {
        if apiKey.hasPrefix(KlarnaEnvironment.test.apiKeyPrefix) { return .test }
        if apiKey.hasPrefix(KlarnaEnvironment.live.apiKeyPrefix) { return .live }
        return nil
    }

    /// The environment a Klarna host serves, or nil for a host the gateway cannot place (a simulator, a proxy).
    ///
    /// Klarna writes the environment into its host names (`test`, `playground`); any other host is `live` only
    /// when it is one of Klarna's production hosts.
    public static func of(klarnaHost host: String) -> KlarnaEnvironment? {
        let host = host.lowercased()
        guard host == "klarna.com" || host.hasSuffix(".klarna.com") else { return nil }
        let labels = host.fastSplit(UInt8(ascii: "."))
        if labels.contains("test") || labels.contains("playground") { return .test }
        return .live
    }
}
