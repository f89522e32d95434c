import ArgumentParser
import CWSP
import Glibc
import WSP

struct Listen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Accept connections, deciding on each request before it is accepted.",
        discussion: """
            Each request goes through the rules in this order: --deny, --allow, \
            --require-data, --check, then the load (--max-pending, --defer-when-busy). A \
            refused client's connect fails with "connection refused" (connect-data protocol; \
            on plain TCP it is reset). Every accept, reject, hold, check and withdrawal is \
            logged on stderr with the caller's address and the reason. The first line is \
            "wspcat: listening on ADDRESS: …", with the port the system chose for port 0.

            By default the connection is piped to stdin and stdout, one connection, and \
            wspcat exits when it ends: when the client has closed its side and (unless \
            stdin is a terminal) stdin has ended; the sending side is shut down at the end \
            of stdin. --keep-open goes on accepting; --echo and --exec serve \
            each connection on its own and may serve several at once (--max-pending).

            --check CMD holds each request that passes the rules (it leaves the queue; its \
            client keeps waiting) while /bin/sh -c CMD decides, other clients going on \
            meanwhile: at most --max-checks checks run at once (8 by default), and further \
            requests wait in the queue until one ends. Exit status 0 accepts, and what CMD \
            prints on stdout is the callee data; output longer than the client takes is \
            never cut short: the client is refused with the reason "callee data too long". \
            Any other status rejects. The request reaches CMD only through its environment, \
            never as shell text: WSP_CALLER_ADDRESS and WSP_CALLER_PORT (the client), \
            WSP_CALLER_DATA_HEX (its caller data in lowercase hex, empty when it sent none) \
            and WSP_CALLER_DATA_LENGTH, WSP_CALLER_QOS (1 when it asked for QoS, else 0), \
            WSP_CALLEE_CAPACITY (the most callee data it takes), WSP_LOCAL_ADDRESS and \
            WSP_LOCAL_PORT (the listener), WSP_PROTOCOL (connect-data or tcp; on tcp there is \
            no callee data and the output is ignored). CMD's stdin is /dev/null, its stderr \
            is wspcat's.

            --defer-when-busy holds a request that arrives while --max-pending connections \
            are in service, instead of refusing it, and accepts the held ones, oldest first, \
            as connections end. A request held longer than --hold-deadline (30 s by default) \
            is refused by the provider (reason: held past its hold deadline) and logged as a \
            timeout; a check still running for it — and whatever the check started, its \
            process group — is killed and reaped, as is the check of a client that gives up.

            Exit status: 0 when the connection (or, with --keep-open, the listener) ended; \
            1 when the listener could not be set up; 64 bad command line.
            """
    )

    @Argument(help: "Where to listen: HOST:PORT, such as 127.0.0.1:7000, [::1]:7000, localhost:7000 or 127.0.0.1:0 (port 0: the system chooses, and the first line says which).")
    var address: String

    @Flag(name: [.customShort("k"), .long], help: "Go on accepting after a connection ends.")
    var keepOpen = false

    @Option(name: [.customShort("e"), .long], help: ArgumentHelp(
        "Run CMD (with /bin/sh -c) for each connection, its stdin and stdout being the connection.",
        valueName: "CMD"))
    var exec: String?

    @Flag(help: "Send every byte received back to its sender.")
    var echo = false

    @Option(help: ArgumentHelp(
        "Admit only callers in this network (repeatable; IPv4 or IPv6, such as 10.0.0.0/8 or fd00::/8). With any --allow, other callers are rejected.",
        valueName: "CIDR"))
    var allow: [String] = []

    @Option(help: ArgumentHelp(
        "Reject callers in this network (repeatable). --deny wins over --allow.",
        valueName: "CIDR"))
    var deny: [String] = []

    @Option(help: ArgumentHelp(
        "Reject callers whose caller data is not exactly STRING (connect-data protocol).",
        valueName: "STRING"))
    var requireData: String?

    @Option(parsing: .unconditional, help: ArgumentHelp(
        "Serve at most N connections at once; a request arriving while N are in service is rejected as busy, or deferred with --defer-when-busy. Above 1 needs --echo or --exec.",
        valueName: "N"))
    var maxPending = "1"

    @Flag(help: "While --max-pending connections are in service, hold new requests (the client waits, kept alive by the provider's pending notices) instead of rejecting them; they are accepted, oldest first, as connections end.")
    var deferWhenBusy = false

    @Option(help: ArgumentHelp(
        "Hold each request that passes the rules while CMD (run with /bin/sh -c, the request's details in its environment) decides: exit status 0 accepts, with CMD's stdout as callee data; any other rejects.",
        valueName: "CMD"))
    var check: String?

    @Option(parsing: .unconditional, help: ArgumentHelp(
        "Run at most N checks at once, from 1 to 1024; while N run, further requests wait in the queue.",
        valueName: "N"))
    var maxChecks = "8"

    @Option(parsing: .unconditional, help: ArgumentHelp(
        "How long a request may be held (--check, --defer-when-busy) before its client is refused and its check killed; 0: no limit. The provider's default: 30.",
        valueName: "SECONDS"))
    var holdDeadline: String?

    @Option(help: ArgumentHelp(
        "Answer every accepted caller with STRING as callee data (connect-data protocol).",
        valueName: "STRING"))
    var calleeData: String?

    @Option(help: "The protocol: connect-data (caller and callee data; a refusal the client sees) or tcp (plain TCP, any client; a refusal is a reset).")
    var `protocol`: ProtocolName = .connectData

    @Option(parsing: .unconditional, help: "How many requests may wait to be decided, from 1 to 4096.")
    var backlog = "128"

    @Flag(name: .shortAndLong, help: "Do not log accepts, rejects, holds, checks and withdrawals.")
    var quiet = false

    @Option(help: "How log lines look: text (one line each) or json (one JSON object per line).")
    var logFormat: LogFormat = .text

    func validate() throws {
        if exec != nil && echo { throw ValidationError("--exec and --echo exclude each other") }
        let maxPending = try maxInService()
        _ = try backlogValue()
        if maxPending > 1 && exec == nil && !echo {
            throw ValidationError("--max-pending above 1 needs --echo or --exec: stdin and stdout serve one connection at a time")
        }
        if `protocol` == .tcp && (requireData != nil || calleeData != nil) {
            throw ValidationError("--require-data and --callee-data need --protocol connect-data: plain TCP carries no connect data")
        }
        if let calleeData, calleeData.utf8.count > Int(WSP_MAX_CONNECT_DATA) {
            throw ValidationError("--callee-data is longer than \(WSP_MAX_CONNECT_DATA) bytes")
        }
        if check != nil && calleeData != nil {
            throw ValidationError("--check and --callee-data exclude each other: the check's output is the callee data")
        }
        _ = try checksValue()
        _ = try holdDeadlineValue()
        _ = try rules()
        _ = try Endpoint(address, what: "the listening address")
    }

    func maxInService() throws -> Int {
        guard let n = Int(maxPending) else {
            throw ValidationError("--max-pending '\(maxPending)' is not a whole number")
        }
        guard n >= 1 else { throw ValidationError("--max-pending must be at least 1, not \(n)") }
        return n
    }

    func checksValue() throws -> Int {
        guard let n = Int(maxChecks) else {
            throw ValidationError("--max-checks '\(maxChecks)' is not a whole number")
        }
        guard (1...1024).contains(n) else {
            throw ValidationError("--max-checks must be from 1 to 1024, not \(n)")
        }
        return n
    }

    /// Seconds (0: none), or nil for the provider's default.
    func holdDeadlineValue() throws -> Double? {
        guard let holdDeadline else { return nil }
        guard let seconds = Double(holdDeadline), seconds.isFinite else {
            throw ValidationError("--hold-deadline '\(holdDeadline)' is not a number of seconds")
        }
        let limit = Double(UInt32.max / 1000)
        guard seconds >= 0, seconds <= limit else {
            throw ValidationError("--hold-deadline must be from 0 (no limit) to \(Int(limit)) seconds, not \(holdDeadline)")
        }
        return seconds
    }

    func backlogValue() throws -> Int32 {
        guard let n = Int(backlog) else {
            throw ValidationError("--backlog '\(backlog)' is not a whole number")
        }
        guard (1...Int(WSP_MAX_BACKLOG)).contains(n) else {
            throw ValidationError("--backlog must be from 1 to \(WSP_MAX_BACKLOG), not \(n)")
        }
        return Int32(n)
    }

    func rules() throws -> AdmissionRules {
        func networks(_ texts: [String], _ option: String) throws -> [CIDR] {
            try texts.map { text in
                guard let cidr = CIDR(text) else {
                    throw ValidationError("\(option) '\(text)' is not a network: give an address with an optional /prefix, such as 10.0.0.0/8 or ::1")
                }
                return cidr
            }
        }
        return AdmissionRules(allow: try networks(allow, "--allow"),
                              deny: try networks(deny, "--deny"),
                              requiredData: requireData.map { Array($0.utf8) },
                              calleeData: Array((calleeData ?? "").utf8),
                              maxInService: try maxInService(),
                              deferWhenBusy: deferWhenBusy)
    }

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        let log = EventLog(format: logFormat, quiet: quiet)
        let service: Service = exec.map { .exec($0) } ?? (echo ? .echo : .stdio(StdinFeeder()))
        let server = Server(rules: try rules(), log: log, service: service, keepOpen: keepOpen,
                            check: check, maxChecks: try checksValue(),
                            holdDeadline: try holdDeadlineValue())
        if check != nil {
            AdmissionCheck.endChecksOnTermination { server.state.withLock { $0.checks } }
        }
        let endpoint = try Endpoint(address, what: "the listening address")
        let proto = self.protocol, backlog = try backlogValue()
        // A check's output is capped by what the client takes, not by the listener's
        // default limit.
        let calleeCount = check != nil ? Int(WSP_MAX_CONNECT_DATA) : calleeData?.utf8.count ?? 0
        do {
            // A name listens on its first address.
            guard let local = try endpoint.addresses().first else { throw WSPError.hostNotFound }
            // On the loop executor: no thread of Swift's global pool ever runs.
            try runOnLoop { () async throws in
                let provider = try Provider()
                let listener = try provider.listen(on: local, protocol: proto.transport,
                                                   backlog: backlog)
                if calleeCount > Int(WSP_DEFAULT_MAX_CALLEE_DATA) {
                    try listener.set(.maxCalleeData, to: calleeCount)
                }
                try await server.run(listener, protocolName: proto.rawValue)
            }
        } catch {
            log.always("error", reason: "listening on \(address) failed: \(error)")
            throw ExitCode(ExitStatus.failed.rawValue)
        }
    }
}

/// What the server does with each accepted connection.
enum Service: Sendable {
    /// Pipe it to our stdin and stdout.
    case stdio(StdinFeeder)
    /// Send its bytes back.
    case echo
    /// Run a command on it.
    case exec(String)
}

/// The accept loop: the admission rules as the condition function, one line logged per
/// outcome, and one thread per connection in service. Without holds it is built on the
/// module's `connections` sequence; with --check or --defer-when-busy on held requests
/// (Holding.swift). Either way it waits for requests without polling, and nothing that
/// happens to one client (a rejection, a client that gives up, an accept that fails) ends it.
final class Server: Sendable {
    let rules: AdmissionRules
    let log: EventLog
    let service: Service
    let keepOpen: Bool
    /// Holding (Holding.swift): --check's command, how many checks run at once, the
    /// listener's hold deadline in seconds (0: none; nil: the provider's).
    let check: String?
    let maxChecks: Int
    let holdDeadline: Double?
    struct State {
        var inService = 0
        var served = 0
        var stopping = false
        var loop: Task<Void, any Error>? = nil
        /// The verdict of each request being decided, by caller, for its log line.
        var verdicts: [Address: AdmissionRules.Verdict] = [:]
        /// Holding: requests waiting for a connection to end, oldest first.
        var parked: [HeldSlot] = []
        /// Holding: the checks running, and the accept loop waiting for one to end.
        var checks: [AdmissionCheck] = []
        var roomWaiter: UnsafeContinuation<Void, Never>? = nil
    }
    let state = Locked(State())

    init(rules: AdmissionRules, log: EventLog, service: Service, keepOpen: Bool,
         check: String? = nil, maxChecks: Int = 8, holdDeadline: Double? = nil) {
        self.rules = rules
        self.log = log
        self.service = service
        self.keepOpen = keepOpen
        self.check = check
        self.maxChecks = maxChecks
        self.holdDeadline = holdDeadline
    }

    /// Whether requests are held (--check, --defer-when-busy) rather than decided by a
    /// condition function on the spot.
    var holds: Bool { check != nil || rules.deferWhenBusy }

    /// Ends `run`: its loop is cancelled, wherever it waits.
    func stop() {
        state.withLock { s in
            s.stopping = true
            return s.loop
        }?.cancel()
    }

    var inService: Int { state.withLock { $0.inService } }

    /// Accepts until stopped, or (without --keep-open) until the first connection has been
    /// served. Closes the listener at the end.
    func run(_ listener: consuming Socket, protocolName: String) async throws(WSPError) {
        let local = try listener.localAddress
        let backlog = try listener.listenerStatistics.backlog
        log.say("listening",
                message: "listening on \(local): protocol \(protocolName), backlog \(backlog)",
                always: true,
                fields: [("address", .text(local.description)), ("protocol", .text(protocolName)),
                         ("backlog", .number(Double(backlog)))])
        if holds {
            try await runHolding(listener, protocolName: protocolName)
        } else {
            try await runDeciding(listener)
        }
    }

    /// The accept loop without holds: the rules are the condition function.
    private func runDeciding(_ listener: borrowing Socket) async throws(WSPError) {
        let rules = self.rules
        // The sequence is a value apart from the listener, so a task of its own can run the
        // loop and `stop()` can cancel it; the listener stays open in this scope meanwhile.
        let connections = listener.connections(
            outcomes: { [self] outcome in self.report(outcome) },
            condition: { [self] request in
                state.withLock { s in
                    // Without --keep-open the one connection keeps the server busy until it
                    // ends.
                    let load = self.keepOpen ? s.inService : max(s.inService, s.served)
                    let verdict = rules.decide(request, inService: load)
                    s.verdicts[request.callerAddress] = verdict
                    return verdict.decision
                }
            })
        let loop = Task(executorPreference: LoopExecutor.shared) { [self] in
            for try await connection in connections {
                do throws(WSPError) {
                    let socket = try connection.takeSocket()
                    start(Stream(.connected(socket), peer: connection.peer.description))
                } catch {
                    log.event("error", caller: connection.peer.description,
                              reason: "cannot serve the connection: \(error)")
                }
            }
        }
        let result = await waitForLoop(loop)
        logClosing(waiting: (try? listener.listenerStatistics.queued) ?? 0)
        if case .failure(let error as WSPError) = result, error != .operationAborted { throw error }
    }

    /// Waits for the accept loop, which `stop()` cancels.
    func waitForLoop(_ loop: Task<Void, any Error>) async -> Result<Void, any Error> {
        let stopped = state.withLock { s in
            s.loop = loop
            return s.stopping
        }
        if stopped { loop.cancel() }
        return await loop.result
    }

    func logClosing(waiting: UInt32) {
        if waiting > 0 {
            log.event("closing", caller: nil,
                      reason: "\(waiting) request\(waiting == 1 ? "" : "s") still waiting will be refused")
        }
    }

    /// One log line per outcome.
    private func report(_ outcome: AcceptOutcome) {
        switch outcome {
        case .accepted(let request):
            let caller = request.callerAddress
            log.event("accept", caller: caller.description,
                      reason: settle(caller)?.reason ?? "accepted", fields: dataField(request))
        case .rejected(let request):
            let caller = request.callerAddress
            log.event("reject", caller: caller.description,
                      reason: settle(caller)?.reason ?? "rejected", fields: dataField(request))
        case .deferred(let request):
            // Not reached: without holds the rules never defer.
            log.event("defer", caller: request.callerAddress.description,
                      reason: settle(request.callerAddress)?.reason ?? "deferred")
        case .withdrawn(let caller):
            guard let caller else {
                log.event("withdrawn", caller: nil,
                          reason: "a client gave up while queued, before the rules saw its request")
                return
            }
            _ = settle(caller)
            log.event("withdrawn", caller: caller.description,
                      reason: "the client gave up while its request was being decided")
        case .failed(let request, let error):
            if let request { _ = settle(request.callerAddress) }
            log.event("error", caller: request?.callerAddress.description,
                      reason: "the accept failed for this client: \(error.name): \(error.detail ?? error.meaning)",
                      fields: [("code", .text(error.name))])
        case .dropped(let caller, let reason):
            logDrop(caller, reason)
        }
    }

    func logDrop(_ caller: Address, _ reason: RefusalReason) {
        log.event("drop", caller: caller.description, reason: reason.description,
                  fields: [("code", .text(reason.name))])
    }

    /// Forgets `caller`'s verdict; the verdict.
    private func settle(_ caller: Address) -> AdmissionRules.Verdict? {
        state.withLock { $0.verdicts.removeValue(forKey: caller) }
    }

    func dataField(_ request: ConnectionRequest?) -> [(String, EventLog.Value)] {
        guard let data = request?.callerData else { return [] }
        return [("data", .data(data))]
    }

    /// Serves `stream` on a thread of its own; `reserved`: its place in service was counted
    /// already (a held request, ``reserve()``).
    func start(_ stream: Stream, reserved: Bool = false) {
        if !reserved { state.withLock { $0.inService += 1; $0.served += 1 } }
        let service = self.service
        Thread.detach { [self] in
            let started = now()
            var outcome = "the connection ended"
            do throws(WSPError) {
                try stream.setBlocking()
                switch service {
                case .stdio(let feeder):
                    feeder.attach(stream)
                    defer { feeder.detach(stream) }
                    if let error = pump(from: stream, to: 1) { throw error }
                    if isatty(0) == 0 { feeder.waitUntilSent(to: stream) }
                case .echo:
                    while case let bytes = try stream.receive(), !bytes.isEmpty {
                        try stream.send(bytes)
                    }
                case .exec(let command):
                    outcome = Self.run(command, on: stream)
                }
            } catch {
                outcome = "the connection failed: \(error.name): \(error.meaning)"
            }
            log.event("closed", caller: stream.peer, reason: outcome,
                      fields: [("received", .number(Double(stream.received))),
                               ("sent", .number(Double(stream.sent))),
                               ("lasted", .seconds(now() - started))])
            let last = state.withLock { s in
                s.inService -= 1
                return !keepOpen && s.inService == 0
            }
            if last { stop() } // without --keep-open, one connection is the whole run
            serveParked()
        }
    }

    /// Runs `command` with the connection as its stdin and stdout; how it ended.
    private static func run(_ command: String, on stream: Stream) -> String {
        let child: Child
        do { child = try Child(command: command) } catch {
            return "could not run \(command): \(error)"
        }
        let input = Thread {
            pump(from: stream, to: child.stdinFD)
            close(child.stdinFD)
        }
        pump(from: child.stdoutFD, to: stream) // shuts down our sending side at the end
        close(child.stdoutFD)
        let status = child.wait()
        stream.shutdown(.receiving) // wakes the input pump if the client still sends
        input.join()
        return "\(command) exited with status \(status)"
    }
}

/// Our stdin, fed to whichever connection is in service (stdio mode serves one at a time).
/// One reader for the whole run: a read cannot be taken back, so bytes read while no
/// connection is in service wait for the next one. At end of input every connection, current
/// and later, has its sending side shut down.
final class StdinFeeder: Sendable {
    private let state = Locked((current: Stream?.none, eof: false, reading: false))

    func attach(_ stream: Stream) {
        let (eof, startReader) = state.withLock { s -> (Bool, Bool) in
            s.current = stream
            defer { s.reading = true }
            return (s.eof, !s.reading)
        }
        if eof { stream.shutdown(.sending) }
        if startReader { Thread.detach { self.read() } }
    }

    func detach(_ stream: Stream) {
        state.withLock { if $0.current === stream { $0.current = nil } }
    }

    /// Returns once stdin has ended (all of it sent) or sending to `stream` failed: a peer
    /// that has finished sending may still be reading.
    func waitUntilSent(to stream: Stream) {
        while state.withLock({ !$0.eof && $0.current === stream }) { sleep(seconds: 0.01) }
    }

    private func read() {
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { Glibc.read(0, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            let chunk = Array(buf[..<n])
            // Wait for a connection to give these bytes to.
            while true {
                if let stream = state.withLock({ $0.current }) {
                    do { try stream.send(chunk) } catch { detach(stream) } // the peer left
                    break
                }
                sleep(seconds: 0.01)
            }
        }
        let current = state.withLock { s -> Stream? in
            s.eof = true
            return s.current
        }
        current?.shutdown(.sending)
    }
}
