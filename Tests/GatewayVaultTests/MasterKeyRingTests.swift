import Foundation
import GatewayCore
import GatewayVault
import Testing

@Suite struct MasterKeyRingTests {
    let directory: URL

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("vault-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    func mode(_ path: String) throws -> Int {
        try (FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as! NSNumber).intValue
    }

    @Test func writeThenLoadRoundTrips() throws {
        let path = directory.appendingPathComponent("master.keys").path
        let ring = MasterKeyRing.generate().addingNewVersion()
        try ring.write(to: path, overwrite: false)
        #expect(try mode(path) == 0o600)
        let loaded = try MasterKeyRing.load(file: path)
        #expect(loaded.versions == [1, 2])
        #expect(loaded.currentVersion == 2)
        let sealed = try SecretSealer(ring: ring).seal(Secret("x"), owner: "o", credential: .init(id: "c", version: 1))
        #expect(try SecretSealer(ring: loaded).open(sealed) == Secret("x"))
    }

    @Test func refusesToOverwriteUnlessAsked() throws {
        let path = directory.appendingPathComponent("master.keys").path
        try MasterKeyRing.generate().write(to: path, overwrite: false)
        #expect(throws: VaultError.keyFileExists(path: path)) {
            try MasterKeyRing.generate().write(to: path, overwrite: false)
        }
        let rotated = try MasterKeyRing.load(file: path).addingNewVersion()
        try rotated.write(to: path, overwrite: true)
        #expect(try MasterKeyRing.load(file: path).currentVersion == 2)
        #expect(try mode(path) == 0o600)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        #expect(leftovers == ["master.keys"])
    }

    @Test(arguments: [0o644, 0o640, 0o604, 0o660])
    func refusesAFileOthersCanRead(mode: Int) throws {
        let path = directory.appendingPathComponent("master-\(mode).keys").path
        try MasterKeyRing.generate().write(to: path, overwrite: false)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
        do {
            _ = try MasterKeyRing.load(file: path)
            Issue.record("loaded a key file with mode \(String(mode, radix: 8))")
        } catch let error as VaultError {
            #expect(error == .keyFileTooOpen(path: path, mode: UInt16(mode)))
            #expect("\(error)".contains("chmod 600 \(path)"))
        }
    }

    @Test func acceptsOwnerOnlyModes() throws {
        let path = directory.appendingPathComponent("master.keys").path
        try MasterKeyRing.generate().write(to: path, overwrite: false)
        try FileManager.default.setAttributes([.posixPermissions: 0o400], ofItemAtPath: path)
        #expect(try MasterKeyRing.load(file: path).currentVersion == 1)
    }

    @Test func missingFileIsAClearError() {
        let path = directory.appendingPathComponent("absent.keys").path
        #expect(throws: VaultError.self) { try MasterKeyRing.load(file: path) }
    }

    @Test func loadsFromAnEnvironmentVariable() throws {
        let ring = MasterKeyRing.generate().addingNewVersion()
        let text = ring.rendered.exposedValue
        let loaded = try MasterKeyRing.load(environmentVariable: "KGW_TEST_MASTER", environment: ["KGW_TEST_MASTER": text])
        #expect(loaded.versions == [1, 2])
        let oneLine = text.split(separator: "\n").filter { !$0.hasPrefix("#") }.joined(separator: ";")
        let fromOneLine = try MasterKeyRing.load(environmentVariable: "K", environment: ["K": oneLine])
        let sealed = try SecretSealer(ring: ring).seal(Secret("s"), owner: "o", credential: .init(id: "c", version: 3))
        #expect(try SecretSealer(ring: fromOneLine).open(sealed) == Secret("s"))
        #expect(throws: VaultError.environmentVariableMissing(name: "NOPE")) {
            try MasterKeyRing.load(environmentVariable: "NOPE", environment: [:])
        }
    }

    @Test(arguments: ["v1 short", "1 AAAA", "v0 \(String(repeating: "A", count: 44))", "", "# only a comment"])
    func malformedRingsAreRefused(text: String) {
        #expect(throws: VaultError.self) { try MasterKeyRing(parsing: text, source: "test") }
    }

    @Test func renderedRingIsRedacted() {
        let ring = MasterKeyRing.generate()
        #expect("\(ring.rendered)" == "<redacted>")
    }
}
