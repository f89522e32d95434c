import ArgumentParser
import CWSP
import Glibc
import WSP

struct Connect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Connect with caller data, print the callee data, then pipe stdin and stdout.",
        discussion: """
            The connect returns once the server has decided. The callee data it answered with \
            goes to stderr (wspcat: connected to ADDRESS: callee data "…"), so stdout \
            carries only the stream. Input ends with stdin: the sending side is then shut \
            down. wspcat exits when the server has closed the connection and (unless stdin \
            is a terminal) all of stdin has been sent.

            Exit status: \(ExitStatus.table)
            """
    )

    @Argument(help: "The server: HOST:PORT, such as 127.0.0.1:7000 or [::1]:7000.")
    var address: String

    @Option(help: ArgumentHelp("Send STRING as caller data (connect-data protocol).",
                               valueName: "STRING"))
    var data: String?

    @Option(help: ArgumentHelp(
        "Give up after SECONDS without a decision, deferrals included (exit status 3). Without it the provider's limits apply: 30 s of silence from the server, no overall limit.",
        valueName: "SECONDS"))
    var timeout: Double?

    @Option(help: "The protocol: connect-data (the server's decision reaches the client) or tcp (plain TCP).")
    var `protocol`: ProtocolName = .connectData

    @Flag(name: .shortAndLong, help: "Say nothing on stderr but errors.")
    var quiet = false

    @Option(help: "How the messages on stderr look: text or json.")
    var logFormat: LogFormat = .text

    func validate() throws {
        _ = try Address.argument(address)
        if let timeout, !(timeout > 0 && timeout <= 4_000_000) {
            throw ValidationError("--timeout must be a positive number of seconds")
        }
        if `protocol` == .tcp && data != nil {
            throw ValidationError("--data needs --protocol connect-data: plain TCP carries no connect data")
        }
        if let data, data.utf8.count > Int(WSP_MAX_CONNECT_DATA) {
            throw ValidationError("--data is longer than \(WSP_MAX_CONNECT_DATA) bytes")
        }
    }

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        let log = EventLog(format: logFormat, quiet: quiet)
        let server = try Address.argument(address)
        let stream: Stream
        let callee: [UInt8]
        do {
            let provider = try Provider()
            let socket = try provider.socket(family: server.family, protocol: `protocol`.transport)
            let callerData = data.map { Array($0.utf8) }
            if let callerData, callerData.count > Int(WSP_DEFAULT_MAX_CALLER_DATA) {
                try socket.setOption(level: SOL_WSP, name: WSP_MAX_CALLER_DATA,
                                     value: UInt32(callerData.count))
            }
            if let timeout {
                // Both limits: silence from the server, and the whole wait with deferrals.
                let ms = UInt32(max(1, (timeout * 1000).rounded()))
                try socket.setOption(level: SOL_WSP, name: WSP_CONNECT_TIMEOUT, value: ms)
                try socket.setOption(level: SOL_WSP, name: WSP_CONNECT_LIMIT, value: ms)
            }
            callee = try socket.connect(to: server, callerData: callerData,
                                        calleeCapacity: Int(WSP_MAX_CONNECT_DATA))
            stream = Stream(.connected(socket), peer: server.description)
        } catch {
            let (status, message) = Self.explain(error, server: server.description, timeout: timeout)
            log.say(status == .refused ? "refused" : status == .timedOut ? "timed out" : "error",
                    message: message, always: true,
                    fields: [("server", .text(server.description)), ("code", .text(error.name))]
                        + (error.refusal.map { [("reason", .text($0.name))] } ?? []))
            throw ExitCode(status.rawValue)
        }
        let answer = `protocol` == .tcp ? "plain TCP, the server decides after the connect"
            : callee.isEmpty ? "accepted, no callee data" : "callee data \(quoted(callee))"
        log.say("connected",
                message: "connected to \(server): \(answer)",
                fields: [("server", .text(server.description))]
                    + (`protocol` == .tcp ? [] : [("calleeData", .text(String(decoding: callee, as: UTF8.self)))]))

        let input = Thread { pump(from: 0, to: stream) }
        if let error = pump(from: stream, to: 1) {
            let why = error == .connectionReset && `protocol` == .tcp
                ? " (on plain TCP a rejected request is reset after the connect)" : ""
            log.say("error",
                    message: "the connection to \(server) failed: \(error.name): \(error.meaning)\(why)",
                    always: true, fields: [("server", .text(server.description)), ("code", .text(error.name))])
            throw ExitCode(ExitStatus.failed.rawValue)
        }
        // The server has finished sending; let the rest of a file or pipe on stdin reach it
        // (a send fails if it has gone). A terminal is not waited for.
        if isatty(0) == 0 { input.join() }
    }

    /// The exit status for a failed connect and the line that says what happened.
    static func explain(_ error: WSPError, server: String, timeout: Double?) -> (ExitStatus, String) {
        switch error {
        case .connectionRefused:
            if let reason = error.refusal {
                return (.refused, "refused by \(server): \(reason)")
            }
            return (.refused, "refused by \(server) (the server's condition function rejected the request, its backlog was full, or nothing listens there)")
        case .fault where error.refusal == .calleeDataTooLong:
            return (.refused, "refused by \(server): \(RefusalReason.calleeDataTooLong)")
        case .timedOut:
            let after = timeout.map { " after \(String(format3: $0)) s" } ?? ""
            return (.timedOut, "timed out\(after) waiting for \(server) to decide (it kept deferring the request, or did not answer)")
        default:
            return (.failed, "cannot connect to \(server): \(error.name): \(error.meaning)")
        }
    }
}
