import ArgumentParser
import WSP

/// `wspcat`: netcat with conditional accept. The listener's admission rules become its
/// condition function, so a refused client sees a refusal (`WSAECONNREFUSED`), not a
/// connection that is then closed.
@main
struct WSPCat: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wspcat",
        abstract: "netcat with admission control, over the WSP provider.",
        discussion: """
            `listen` decides on each connection request before it is accepted (--allow, \
            --deny, --require-data, --max-pending, --defer-when-busy) and logs every \
            decision on stderr; `connect` sends caller data and prints the callee data it \
            gets back. Both then pipe the connection to stdin and stdout.

            Exit status of `connect`: \(ExitStatus.table)
            """,
        version: versionLine,
        subcommands: [Listen.self, Connect.self, Demo.self]
    )
}

/// What `wspcat connect` (and `listen`, for its own failures) exits with.
enum ExitStatus: Int32 {
    case ok = 0
    case failed = 1
    case refused = 2
    case timedOut = 3

    static let table = """
        0 connected and the stream ended; 1 any other error; \
        2 refused (the server's condition function rejected the request, its backlog was \
        full, or nothing listens there); 3 timed out (no answer, or still deferred, when \
        --timeout ran out); 64 bad command line.
        """
}

/// The two catalog protocols, as the command line names them.
enum ProtocolName: String, ExpressibleByArgument, CaseIterable {
    case tcp
    case connectData = "connect-data"

    var transport: Provider.TransportProtocol {
        self == .tcp ? .tcp : .tcpWithConnectData
    }
}

/// `HOST:PORT` from the command line: a numeric address or a host name, looked up when used.
struct Endpoint: Sendable, CustomStringConvertible {
    let host: String
    let port: UInt16
    let description: String

    /// Parses `text` for `what` (the argument's name in messages), saying what is wrong.
    init(_ text: String, what: String) throws {
        description = text
        let example = "give HOST:PORT, such as 127.0.0.1:7000, [::1]:7000 or localhost:7000"
        var hostPart: Substring
        var portPart: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else {
                throw ValidationError("\(what) '\(text)': '[' without ']'; \(example)")
            }
            hostPart = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.first == ":" else {
                throw ValidationError("\(what) '\(text)' has no port; \(example)")
            }
            portPart = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":"), text.filter({ $0 == ":" }).count == 1 else {
                throw ValidationError(text.filter({ $0 == ":" }).count > 1
                    ? "\(what) '\(text)': an IPv6 address with a port is written [ADDRESS]:PORT, such as [::1]:7000"
                    : "\(what) '\(text)' has no port; \(example)")
            }
            hostPart = text[..<colon]
            portPart = text[text.index(after: colon)...]
        }
        guard !hostPart.isEmpty else { throw ValidationError("\(what) '\(text)' has no host; \(example)") }
        guard !portPart.isEmpty, portPart.allSatisfy({ $0.isASCII && $0.isNumber }),
              let port = UInt16(portPart)
        else {
            throw ValidationError("\(what) '\(text)': the port '\(portPart)' is not a number from 0 to 65535")
        }
        host = String(hostPart)
        self.port = port
    }

    /// The addresses to try: the numeric address itself, or what the name resolves to.
    func addresses() throws(WSPError) -> [Address] {
        let bracketed = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        if let address = try? Address(bracketed) { return [address] }
        let host = self.host, port = self.port
        do {
            // The look-up runs on a thread of its own; this (main) thread waits for it.
            return try runOnLoop { try await Address.resolve(host, port: port) }
        } catch let error as WSPError {
            throw error
        } catch {
            throw WSPError(code: WSPError.hostNotFound.code, detail: "\(error)")
        }
    }
}

/// The version `--version` prints: the library's (`WSP_VERSION_STRING`).
let versionLine = "wspcat \(WSP.version)"
