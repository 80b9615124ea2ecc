import Foundation

/// Reads a file line by line in fixed-size chunks, so a multi-gigabyte archive never sits in memory.
enum LineReader {
    static func forEachLine(of url: URL, _ body: (Substring) throws -> Void) throws {
        let handle = try FileHandle(forReadingFrom: url)
        defer { try? handle.close() }
        var pending: [UInt8] = []
        while let chunk = try handle.read(upToCount: 64 * 1024), !chunk.isEmpty {
            pending.append(contentsOf: chunk)
            var start = 0
            while let newline = pending[start...].firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: pending[start..<newline], as: UTF8.self)
                if !line.isEmpty { try body(line[...]) }
                start = newline + 1
            }
            pending.removeFirst(start)
        }
        if !pending.isEmpty { try body(String(decoding: pending, as: UTF8.self)[...]) }
    }
}

/// A buffered writer to a file descriptor: exports write through it in 64 KiB chunks.
public final class AuditOutput {
    private let descriptor: Int32
    private let ownsDescriptor: Bool
    private var buffer: [UInt8] = []

    /// Writes to standard output.
    public static func standardOutput() -> AuditOutput { AuditOutput(descriptor: STDOUT_FILENO, owns: false) }

    /// Creates (or truncates) a file with mode 0600, since exports are as sensitive as the trail itself.
    public init(path: String, append: Bool = false) throws {
        let flags = O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC)
        let fd = open(path, flags, 0o600)
        guard fd >= 0 else { throw AuditError.io("cannot open \(path): \(String(cString: strerror(errno)))") }
        descriptor = fd
        ownsDescriptor = true
        buffer.reserveCapacity(64 * 1024)
    }

    private init(descriptor: Int32, owns: Bool) {
        self.descriptor = descriptor
        self.ownsDescriptor = owns
    }

    /// Appends text, writing out when the buffer is full.
    public func write(_ text: String) throws {
        buffer.append(contentsOf: text.utf8)
        if buffer.count >= 64 * 1024 { try flush() }
    }

    /// Writes out what is buffered.
    public func flush() throws {
        var offset = 0
        while offset < buffer.count {
            let written = buffer[offset...].withUnsafeBytes { systemWrite(descriptor, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                throw AuditError.io("write failed: \(String(cString: strerror(errno)))")
            }
            offset += written
        }
        buffer.removeAll(keepingCapacity: true)
    }

    /// Flushes and forces the data to stable storage.
    public func sync() throws {
        try flush()
        guard fsync(descriptor) == 0 else { throw AuditError.io("fsync failed: \(String(cString: strerror(errno)))") }
    }

    /// Flushes and closes the file (not standard output).
    public func close() throws {
        try flush()
        if ownsDescriptor { _ = systemClose(descriptor) }
    }
}

// File-scope wrappers: inside `AuditOutput` the names `write` and `close` resolve to its own methods.
private func systemWrite(_ descriptor: Int32, _ bytes: UnsafeRawPointer?, _ count: Int) -> Int { write(descriptor, bytes, count) }
private func systemClose(_ descriptor: Int32) -> Int32 { close(descriptor) }
