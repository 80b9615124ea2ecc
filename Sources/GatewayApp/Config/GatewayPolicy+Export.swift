// `ConfigError` and `PolicyLoader` live in the small GatewayPolicy module (so the policy parser can be fuzzed
// without the whole application); users of GatewayApp keep seeing them as before.
@_exported import GatewayPolicy
