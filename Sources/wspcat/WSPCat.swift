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

extension Address {
    /// Parses `HOST:PORT` for the command line, with a usage error naming the argument.
    static func argument(_ text: String) throws -> Address {
        do {
            return try Address(text)
        } catch {
            throw ValidationError("'\(text)' is not an address: give HOST:PORT, such as 127.0.0.1:7000 or [::1]:7000")
        }
    }
}
