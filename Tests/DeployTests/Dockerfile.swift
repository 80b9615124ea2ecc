import Foundation

/// A Dockerfile read into stages and instructions the way BuildKit's parser reads it: comment lines dropped (also
/// inside continued lines), lines ending in a backslash joined, the first word the instruction, exec-form
/// arguments decoded as JSON, `--flag=value` options split off.
struct Dockerfile {
    /// One instruction: `COPY --from=build /a /b` is keyword COPY, flags [from: build], words [/a, /b].
    struct Instruction {
        let keyword: String
        /// Everything after the keyword and the flags, as written.
        let arguments: String
        let flags: [String: String]
        /// The exec form's strings when the arguments are a JSON array, else the arguments split on whitespace.
        let words: [String]
        /// Whether the arguments were a JSON array (exec form).
        let isExecForm: Bool
    }

    /// A build stage: its `FROM` image (global `ARG` defaults substituted) and instructions.
    struct Stage {
        let image: String
        let name: String?
        var instructions: [Instruction]

        func all(_ keyword: String) -> [Instruction] { instructions.filter { $0.keyword == keyword } }
    }

    /// `ARG`s declared before the first `FROM`, with their defaults.
    private(set) var globalArguments: [String: String] = [:]
    private(set) var stages: [Stage] = []

    init(text: String) throws {
        var logical: [String] = []
        var pending = ""
        for rawLine in text.components(separatedBy: "\n") {
            let trimmed = rawLine.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("#") { continue }
            if trimmed.hasSuffix("\\") {
                pending += String(trimmed.dropLast()) + " "
                continue
            }
            pending += trimmed
            if !pending.trimmingCharacters(in: .whitespaces).isEmpty { logical.append(pending) }
            pending = ""
        }
        guard pending.trimmingCharacters(in: .whitespaces).isEmpty else { throw DeployFileError("the Dockerfile ends inside a continued line") }

        for line in logical {
            let instruction = try Self.instruction(line)
            if instruction.keyword == "FROM" {
                let image = instruction.words.first.map(substituteGlobals) ?? ""
                let name = instruction.words.count == 3 && instruction.words[1].uppercased() == "AS" ? instruction.words[2] : nil
                stages.append(Stage(image: image, name: name, instructions: []))
            } else if stages.isEmpty {
                guard instruction.keyword == "ARG" else { throw DeployFileError("\(instruction.keyword) before the first FROM") }
                let parts = instruction.arguments.split(separator: "=", maxSplits: 1).map(String.init)
                globalArguments[parts[0]] = parts.count == 2 ? parts[1] : ""
            } else {
                stages[stages.count - 1].instructions.append(instruction)
            }
        }
    }

    /// The last stage: what the image is.
    var runtime: Stage? { stages.last }

    private func substituteGlobals(_ text: String) -> String {
        var result = text
        for (name, value) in globalArguments {
            result = result.replacingOccurrences(of: "${\(name)}", with: value).replacingOccurrences(of: "$\(name)", with: value)
        }
        return result
    }

    private static func instruction(_ line: String) throws -> Instruction {
        let trimmed = line.trimmingCharacters(in: .whitespaces)
        let keywordEnd = trimmed.firstIndex(where: \.isWhitespace) ?? trimmed.endIndex
        let keyword = trimmed[..<keywordEnd].uppercased()
        guard keyword.allSatisfy(\.isLetter) else { throw DeployFileError("not an instruction: \(line)") }
        var rest = trimmed[keywordEnd...].trimmingCharacters(in: .whitespaces)
        var flags: [String: String] = [:]
        while rest.hasPrefix("--") {
            let end = rest.firstIndex(where: \.isWhitespace) ?? rest.endIndex
            let flag = rest[rest.index(rest.startIndex, offsetBy: 2)..<end]
            let parts = flag.split(separator: "=", maxSplits: 1).map(String.init)
            flags[parts[0]] = parts.count == 2 ? parts[1] : ""
            rest = rest[end...].trimmingCharacters(in: .whitespaces)
        }
        if keyword == "HEALTHCHECK", rest.uppercased().hasPrefix("CMD") {
            // HEALTHCHECK [flags] CMD <command>: the command has its own exec or shell form.
            let command = rest.dropFirst(3).trimmingCharacters(in: .whitespaces)
            let (words, exec) = try split(command)
            return Instruction(keyword: keyword, arguments: rest, flags: flags, words: ["CMD"] + words, isExecForm: exec)
        }
        let (words, exec) = try split(rest)
        return Instruction(keyword: keyword, arguments: rest, flags: flags, words: words, isExecForm: exec)
    }

    private static func split(_ arguments: String) throws -> ([String], Bool) {
        if arguments.hasPrefix("["), let data = arguments.data(using: .utf8),
           let array = try? JSONSerialization.jsonObject(with: data) as? [String] {
            return (array, true)
        }
        return (arguments.split(whereSeparator: \.isWhitespace).map(String.init), false)
    }
}
