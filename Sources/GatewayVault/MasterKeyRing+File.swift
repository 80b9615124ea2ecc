import Foundation
import GatewayCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension MasterKeyRing {
    /// Loads a key-ring file, refusing one that group or others may read or write.
    ///
    /// The permission check comes first so that a file exposed by mistake stops the gateway before it can be
    /// relied upon; the fix is in the message.
    public static func load(file path: String) throws -> MasterKeyRing {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw VaultError.keyFileUnreadable(path: path, reason: String(cString: strerror(errno)))
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw VaultError.keyFileUnreadable(path: path, reason: "not a regular file")
        }
        let mode = UInt16(info.st_mode & 0o7777)
        guard mode & 0o077 == 0 else { throw VaultError.keyFileTooOpen(path: path, mode: mode) }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw VaultError.keyFileUnreadable(path: path, reason: "permission denied or unreadable")
        }
        return try MasterKeyRing(parsing: String(decoding: data, as: UTF8.self), source: path)
    }

    /// Loads the key ring from an environment variable holding the same text as the file.
    public static func load(
        environmentVariable name: String, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> MasterKeyRing {
        guard let text = environment[name], !text.isEmpty else { throw VaultError.environmentVariableMissing(name: name) }
        // A variable is often set on one line; accept `;` between versions as well as newlines.
        let lines = text.replacingOccurrences(of: ";", with: "\n")
        return try MasterKeyRing(parsing: lines, source: "environment variable \(name)")
    }

    /// Writes the ring to `path` atomically with mode 0600; with `overwrite` false an existing file is refused.
    ///
    /// The text goes to a temporary file created 0600 in the same directory (so no other mode is ever visible),
    /// is synced, then renamed (or hard-linked, which fails instead of replacing) into place.
    public func write(to path: String, overwrite: Bool) throws {
        let directory = (path as NSString).deletingLastPathComponent
        let temporary = (directory.isEmpty ? "." : directory) + "/.\((path as NSString).lastPathComponent).\(UInt32.random(in: 0...UInt32.max)).tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else { throw VaultError.keyFileUnwritable(path: path, reason: String(cString: strerror(errno))) }
        defer { unlink(temporary) }
        let bytes = Array(rendered.exposedValue.utf8)
        let written = bytes.withUnsafeBytes { posixWrite(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd) == 0
        close(fd)
        guard written == bytes.count, synced else {
            throw VaultError.keyFileUnwritable(path: path, reason: "short write or sync failure")
        }
        if overwrite {
            guard rename(temporary, path) == 0 else {
                throw VaultError.keyFileUnwritable(path: path, reason: String(cString: strerror(errno)))
            }
        } else {
            guard link(temporary, path) == 0 else {
                if errno == EEXIST { throw VaultError.keyFileExists(path: path) }
                throw VaultError.keyFileUnwritable(path: path, reason: String(cString: strerror(errno)))
            }
        }
    }
}

/// `write(2)`, named apart from the `write(to:overwrite:)` method.
private func posixWrite(_ fd: Int32, _ buffer: UnsafeRawPointer?, _ count: Int) -> Int {
    #if canImport(Darwin)
    return Darwin.write(fd, buffer, count)
    #else
    return Glibc.write(fd, buffer, count)
    #endif
}
