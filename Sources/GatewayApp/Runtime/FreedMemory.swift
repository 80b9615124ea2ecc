#if canImport(Glibc)
import Glibc
#endif

/// Gives the pages that a snapshot build freed back to the system.
///
/// Building a snapshot reads every merchant into temporary records, then into the compact table; the temporaries
/// are freed, but glibc keeps their pages in its arenas, and a page that also holds one live allocation of the
/// table cannot be given back at all. With the table holding no heap string per merchant, `malloc_trim` returns
/// what the build used: about 8 MB of the idle footprint with 100,000 merchants (docs/performance.md, eighth round).
/// It runs off the event loops, once per snapshot built, never per call.
enum FreedMemory {
    /// Returns free pages of every malloc arena to the system, where the C library can.
    static func returnToSystem() {
        #if canImport(Glibc)
        // Looked up by name: Glibc's module does not import `malloc.h`, and a libc without it (musl) skips the trim.
        guard let symbol = trim else { return }
        _ = symbol(0)
        #endif
    }

    #if canImport(Glibc)
    private typealias Trim = @convention(c) (Int) -> Int32
    private static let trim: Trim? = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim").map { unsafeBitCast($0, to: Trim.self) }
    #endif
}
