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

    @Argument(help: "The server: HOST:PORT, such as 127.0.0.1:7000, [::1]:7000 or localhost:7000 (a name is looked up; its addresses are tried in turn).")
    var address: String

    @Option(help: ArgumentHelp("Send STRING as caller data (connect-data protocol).",
                               valueName: "STRING"))
    var data: String?

    @Option(parsing: .unconditional, help: ArgumentHelp(
        "Give up after SECONDS without a decision, deferrals included (exit status 3); more than 0, at most 4294967. Without it the provider's limits apply: 30 s of silence from the server, no overall limit.",
        valueName: "SECONDS"))
    var timeout: String?

    @Option(name: [.customShort("s"), .long], help: ArgumentHelp(
        "Connect from this local address: HOST or HOST:PORT (numeric), such as 127.0.0.2 or [::1]:5000.",
        valueName: "ADDR"))
    var source: String?

    @Option(help: "The protocol: connect-data (the server's decision reaches the client) or tcp (plain TCP).")
    var `protocol`: ProtocolName = .connectData

    @Flag(name: .shortAndLong, help: "Say nothing on stderr but errors.")
    var quiet = false

    @Flag(name: .shortAndLong, help: "Say more: each address tried, and a line while the server has not decided yet.")
    var verbose = false

    @Option(help: "How the messages on stderr look: text or json.")
    var logFormat: LogFormat = .text

    /// The largest --timeout: the provider counts milliseconds in 32 bits.
    static let maxTimeout = Double(UInt32.max / 1000)

    func validate() throws {
        _ = try Endpoint(address, what: "the server address")
        _ = try timeoutSeconds()
        _ = try sourceAddress()
        if `protocol` == .tcp && data != nil {
            throw ValidationError("--data needs --protocol connect-data: plain TCP carries no connect data")
        }
        if let data, data.utf8.count > Int(WSP_MAX_CONNECT_DATA) {
            throw ValidationError("--data is \(data.utf8.count) bytes, longer than the protocol's \(WSP_MAX_CONNECT_DATA)")
        }
    }

    func timeoutSeconds() throws -> Double? {
        guard let timeout else { return nil }
        guard let seconds = Double(timeout), seconds.isFinite else {
            throw ValidationError("--timeout '\(timeout)' is not a number of seconds")
        }
        guard seconds > 0 else {
            throw ValidationError("--timeout must be more than 0 seconds, not \(timeout)")
        }
        guard seconds <= Self.maxTimeout else {
            throw ValidationError("--timeout \(timeout) is too long: at most \(Int(Self.maxTimeout)) seconds (the provider counts milliseconds in 32 bits)")
        }
        return seconds
    }

    func sourceAddress() throws -> Address? {
        guard let source else { return nil }
        let text = source.contains(":") && !source.hasPrefix("[") && source.filter({ $0 == ":" }).count > 1
            ? "[\(source)]" : source
        do {
            return try Address(text)
        } catch {
            throw ValidationError("--source '\(source)' is not a numeric address: \(error.detail ?? error.meaning)")
        }
    }

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        let log = EventLog(format: logFormat, quiet: quiet)
        let endpoint = try Endpoint(address, what: "the server address")
        let timeout = try timeoutSeconds()
        let source = try sourceAddress()
        let stream: Stream
        let callee: [UInt8]
        var server = endpoint.description
        do throws(WSPError) {
            let provider = try Provider()
            let candidates = try endpoint.addresses()
            var connected: (Stream, [UInt8])? = nil
            var failure = WSPError.hostNotFound
            for (i, candidate) in candidates.enumerated() {
                server = candidate.description
                if verbose {
                    log.say("connecting", message: "connecting to \(candidate)"
                            + (endpoint.host != candidate.description && candidates.count > 0 ? " (\(endpoint.host))" : ""),
                            fields: [("server", .text(server))])
                }
                do throws(WSPError) {
                    connected = try attempt(provider, candidate, source: source, timeout: timeout, log: log)
                    break
                } catch {
                    failure = error
                    // A server's decision is final; other failures try the next address.
                    if error == .connectionRefused && error.refusal != nil || i == candidates.count - 1 { break }
                }
            }
            guard let (s, c) = connected else { throw failure }
            stream = s
            callee = c
        } catch {
            let (status, message) = Self.explain(error, server: server, timeout: timeout)
            log.say(status == .refused ? "refused" : status == .timedOut ? "timed out" : "error",
                    message: message, always: true,
                    fields: [("server", .text(server)), ("code", .text(error.name))]
                        + (error.refusal.map { [("reason", .text($0.name))] } ?? []))
            throw ExitCode(status.rawValue)
        }
        let answer = `protocol` == .tcp ? "plain TCP, the server decides after the connect"
            : callee.isEmpty ? "accepted, no callee data" : "callee data \(quoted(callee))"
        log.say("connected",
                message: "connected to \(server): \(answer)",
                fields: [("server", .text(server))]
                    + (`protocol` == .tcp ? [] : [("calleeData", .data(callee))]))

        let input = Thread { pump(from: 0, to: stream) }
        if let error = pump(from: stream, to: 1) {
            let why = error == .connectionReset && `protocol` == .tcp
                ? " (on plain TCP a rejected request is reset after the connect)" : ""
            log.say("error",
                    message: "the connection to \(server) failed: \(error.name): \(error.meaning)\(why)",
                    always: true, fields: [("server", .text(server)), ("code", .text(error.name))])
            throw ExitCode(ExitStatus.failed.rawValue)
        }
        // The server has finished sending; let the rest of a file or pipe on stdin reach it
        // (a send fails if it has gone). A terminal is not waited for.
        if isatty(0) == 0 { input.join() }
    }

    /// One connect to `server`. While the server has not decided after a second, one line
    /// says so (the server is deferring the request, or slow).
    func attempt(_ provider: Provider, _ server: Address, source: Address?, timeout: Double?,
                 log: EventLog) throws(WSPError) -> (Stream, [UInt8]) {
        let socket = try provider.socket(family: server.family, protocol: `protocol`.transport)
        let callerData = data.map { Array($0.utf8) }
        if let callerData, callerData.count > Int(WSP_DEFAULT_MAX_CALLER_DATA) {
            try socket.set(.maxCallerData, to: callerData.count)
        }
        if let source { try socket.bind(to: source) }
        if let timeout {
            // Both limits: silence from the server, and the whole wait with deferrals.
            let limit = Duration.milliseconds(Int64((timeout * 1000).rounded(.up)))
            try socket.set(.connectTimeout, to: limit)
            try socket.set(.connectLimit, to: limit)
        }
        let decided = Locked(false)
        if !quiet && `protocol` == .connectData {
            Thread.detach {
                sleep(seconds: 1)
                if !decided.withLock({ $0 }) {
                    log.say("waiting", message: "waiting for \(server) to decide (it is deferring the request, or slow)",
                            fields: [("server", .text(server.description))])
                }
            }
        }
        defer { decided.withLock { $0 = true } }
        let callee = try socket.connect(to: server, callerData: callerData,
                                        calleeCapacity: Int(WSP_MAX_CONNECT_DATA))
        return (Stream(.connected(socket), peer: server.description), callee)
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
            return (.failed, "cannot connect to \(server): \(error.name): \(error.detail ?? error.meaning)")
        }
    }
}
