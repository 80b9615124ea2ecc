import GatewayCore
import NIOCore

/// One `CallerTokenCache` per event loop, built with the runtime: every connection of a loop shares its loop's
/// answers, and no cache is ever touched by two threads, so none takes a lock.
///
/// `@unchecked Sendable` so the runtime can hold the table: a cache is handed out only to handlers on its own loop.
final class LoopTokenCaches: @unchecked Sendable {
    private let caches: PerEventLoop<CallerTokenCache>

    init(group: any EventLoopGroup) { caches = PerEventLoop(group) { _ in CallerTokenCache() } }

    /// `loop`'s cache, to be used on `loop` only; nil for a loop outside the gateway's group.
    func cache(for loop: any EventLoop) -> CallerTokenCache? {
        loop.preconditionInEventLoop()
        return caches[loop]
    }
}
