import ArgumentParser
import CWSP
import Glibc
import WSP

struct Listen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Accept connections, deciding on each request before it is accepted.",
        discussion: """
            Each request goes through the rules in this order: --deny, --allow, \
            --require-data, then the load (--max-pending, --defer-when-busy). A refused \
            client's connect fails with "connection refused" (connect-data protocol; on plain \
            TCP it is reset). Every accept, reject, defer and withdrawal is logged on stderr \
            with the caller's address and the reason. The first line is \
            "wspcat: listening on ADDRESS: …", with the port the system chose for port 0.

            By default the connection is piped to stdin and stdout, one connection, and \
            wspcat exits when it ends: when the client has closed its side and (unless \
            stdin is a terminal) stdin has ended; the sending side is shut down at the end \
            of stdin. --keep-open goes on accepting; --echo and --exec serve \
            each connection on its own and may serve several at once (--max-pending).

            Exit status: 0 when the connection (or, with --keep-open, the listener) ended; \
            1 when the listener could not be set up; 64 bad command line.
            """
    )

    @Argument(help: "Where to listen: HOST:PORT, such as 127.0.0.1:7000, [::1]:7000 or 127.0.0.1:0.")
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

    @Option(help: ArgumentHelp(
        "Serve at most N connections at once; a request arriving while N are in service is rejected as busy, or deferred with --defer-when-busy. Above 1 needs --echo or --exec.",
        valueName: "N"))
    var maxPending = 1

    @Flag(help: "While --max-pending connections are in service, defer new requests (the client waits, kept alive by the provider's pending notices) instead of rejecting them; they are accepted when a connection ends.")
    var deferWhenBusy = false

    @Option(help: ArgumentHelp(
        "Answer every accepted caller with STRING as callee data (connect-data protocol).",
        valueName: "STRING"))
    var calleeData: String?

    @Option(help: "The protocol: connect-data (caller and callee data; a refusal the client sees) or tcp (plain TCP, any client; a refusal is a reset).")
    var `protocol`: ProtocolName = .connectData

    @Option(help: "How many requests may wait to be decided (the provider clamps it to 1…4096).")
    var backlog: Int32 = 128

    @Flag(name: .shortAndLong, help: "Do not log accepts, rejects, defers and withdrawals.")
    var quiet = false

    @Option(help: "How log lines look: text (one line each) or json (one JSON object per line).")
    var logFormat: LogFormat = .text

    func validate() throws {
        if exec != nil && echo { throw ValidationError("--exec and --echo exclude each other") }
        if maxPending < 1 { throw ValidationError("--max-pending must be at least 1") }
        if maxPending > 1 && exec == nil && !echo {
            throw ValidationError("--max-pending above 1 needs --echo or --exec: stdin and stdout serve one connection at a time")
        }
        if `protocol` == .tcp && (requireData != nil || calleeData != nil) {
            throw ValidationError("--require-data and --callee-data need --protocol connect-data: plain TCP carries no connect data")
        }
        if let calleeData, calleeData.utf8.count > Int(WSP_MAX_CONNECT_DATA) {
            throw ValidationError("--callee-data is longer than \(WSP_MAX_CONNECT_DATA) bytes")
        }
        _ = try rules()
        _ = try Address.argument(address)
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
                              maxInService: maxPending,
                              deferWhenBusy: deferWhenBusy)
    }

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        let log = EventLog(format: logFormat, quiet: quiet)
        let service: Service = exec.map { .exec($0) } ?? (echo ? .echo : .stdio(StdinFeeder()))
        let server = Server(rules: try rules(), log: log, service: service, keepOpen: keepOpen)
        do {
            let provider = try Provider()
            let listener = try provider.listen(on: try Address.argument(address),
                                               protocol: `protocol`.transport, backlog: backlog)
            if let calleeData, calleeData.utf8.count > Int(WSP_DEFAULT_MAX_CALLEE_DATA) {
                try listener.setOption(level: SOL_WSP, name: WSP_MAX_CALLEE_DATA,
                                       value: UInt32(calleeData.utf8.count))
            }
            try server.run(listener, protocolName: `protocol`.rawValue)
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
/// decision, and one thread per connection in service.
final class Server: Sendable {
    let rules: AdmissionRules
    let log: EventLog
    let service: Service
    let keepOpen: Bool
    private let state = Locked((inService: 0, served: 0, stopping: false))

    init(rules: AdmissionRules, log: EventLog, service: Service, keepOpen: Bool) {
        self.rules = rules
        self.log = log
        self.service = service
        self.keepOpen = keepOpen
    }

    /// Ends `run` at its next turn (it polls every few milliseconds).
    func stop() { state.withLock { $0.stopping = true } }

    var inService: Int { state.withLock { $0.inService } }

    /// Accepts until stopped, or (without --keep-open) until the first connection has been
    /// served. The listener is made non-blocking: the loop polls so that it can notice a
    /// stop, the end of a connection (a deferred request may now be accepted) and a deferred
    /// client that gives up.
    func run(_ listener: borrowing Socket, protocolName: String) throws(WSPError) {
        try listener.setNonBlocking(true)
        let local = try listener.localAddress
        let backlog = try listener.listenerStatistics.backlog
        log.say("listening",
                message: "listening on \(local): protocol \(protocolName), backlog \(backlog)",
                always: true,
                fields: [("address", .text(local.description)), ("protocol", .text(protocolName)),
                         ("backlog", .number(Double(backlog)))])

        var book = Bookkeeping(log: log, withdrawnCounted: try listener.listenerStatistics.withdrawn)
        while true {
            let (stopping, served) = state.withLock { ($0.stopping, $0.served) }
            if stopping || (!keepOpen && served > 0 && inService == 0) { break }

            // Everything the condition function is shown in this one accept: more than one
            // request when a client left between the decision and the answer.
            var shown: [Shown] = []
            let rules = self.rules
            let condition = { (request: ConnectionRequest) -> Decision in
                // Without --keep-open the one connection keeps the server busy until it ends.
                let load = self.keepOpen ? self.inService : max(self.inService, served)
                let verdict = rules.decide(request, inService: load)
                shown.append(Shown(request: request, verdict: verdict))
                return verdict.decision
            }
            var pause = 0.0
            do throws(WSPError) {
                let accepted = try listener.accept(condition)
                book.leftWhileDeciding(shown.dropLast())
                let caller = accepted.peer.description
                log.event("accept", caller: caller,
                          reason: shown.last?.verdict.reason ?? "accepted",
                          fields: dataField(shown.last?.request) + book.settled(caller))
                start(Stream(.accepted(accepted), peer: caller))
            } catch .tryAgain {
                pause = 0.05 // look again soon: a connection may have ended, or the client left
                book.leftWhileDeciding(shown.dropLast())
                if let last = shown.last { book.deferred(last, fields: dataField(last.request)) }
            } catch .connectionRefused {
                book.leftWhileDeciding(shown.dropLast())
                if let last = shown.last {
                    let caller = last.request.callerAddress.description
                    log.event("reject", caller: caller, reason: last.verdict.reason,
                              fields: dataField(last.request) + book.settled(caller))
                }
            } catch .wouldBlock {
                pause = 0.01
                book.leftWhileDeciding(shown[...])
                if shown.isEmpty { book.deferredLeft() } // nothing waits: the deferred one left
            } catch .connectionReset, .connectionAborted, .tooManyOpenFiles {
                pause = 0.05 // recoverable: this request is gone, the listener is fine
                book.leftWhileDeciding(shown[...])
            }
            book.unseenWithdrawals(counted: try listener.listenerStatistics.withdrawn)
            if pause > 0 { sleep(seconds: pause) }
        }
        let waiting = (try? listener.listenerStatistics.queued) ?? 0
        if waiting > 0 {
            log.event("closing", caller: nil,
                      reason: "\(waiting) request\(waiting == 1 ? "" : "s") still waiting will be refused")
        }
    }

    /// One request as the condition function saw it, and the rules' answer.
    struct Shown {
        var request: ConnectionRequest
        var verdict: AdmissionRules.Verdict
    }

    /// The accept loop's memory of deferred and withdrawn requests, for the log.
    ///
    /// A deferred request stays first in line, so at most one is deferred at a time; when the
    /// condition function is shown another request, or the queue is empty, it has been
    /// withdrawn. The provider counts every withdrawal; those the loop could not attribute
    /// (clients that left while queued behind others) are logged without an address.
    private struct Bookkeeping {
        let log: EventLog
        var withdrawnCounted: UInt64
        var deferredCaller: String? = nil
        var deferredSince = 0.0
        var logged = 0

        /// The log fields for the final answer to `caller`: how long it was deferred.
        mutating func settled(_ caller: String) -> [(String, EventLog.Value)] {
            guard deferredCaller == caller else {
                deferredLeft() // a different request was shown: the deferred one is gone
                return []
            }
            deferredCaller = nil
            return [("waited", .seconds(now() - deferredSince))]
        }

        mutating func deferred(_ shown: Shown, fields: [(String, EventLog.Value)]) {
            let caller = shown.request.callerAddress.description
            if deferredCaller == caller { return } // shown again, deferred again: logged once
            deferredLeft()
            deferredCaller = caller
            deferredSince = now()
            log.event("defer", caller: caller, reason: shown.verdict.reason, fields: fields)
        }

        /// The deferred request, if any, is no longer there.
        mutating func deferredLeft() {
            guard let caller = deferredCaller else { return }
            deferredCaller = nil
            logged += 1
            log.event("withdrawn", caller: caller, reason: "the client gave up while deferred",
                      fields: [("waited", .seconds(now() - deferredSince))])
        }

        /// Requests shown whose answer never reached them: their clients left meanwhile.
        mutating func leftWhileDeciding(_ gone: ArraySlice<Shown>) {
            for item in gone {
                let caller = item.request.callerAddress.description
                var fields: [(String, EventLog.Value)] = []
                if deferredCaller == caller {
                    fields.append(("waited", .seconds(now() - deferredSince)))
                    deferredCaller = nil
                }
                logged += 1
                log.event("withdrawn", caller: caller,
                          reason: "the client gave up while its request was being decided",
                          fields: fields)
            }
        }

        /// Withdrawals the provider counted beyond those logged.
        mutating func unseenWithdrawals(counted: UInt64) {
            let unseen = Int(counted - withdrawnCounted) - logged
            withdrawnCounted = counted
            logged = 0
            for _ in 0..<max(unseen, 0) {
                log.event("withdrawn", caller: nil,
                          reason: "a client gave up while queued, before the rules saw its request")
            }
        }
    }

    private func dataField(_ request: ConnectionRequest?) -> [(String, EventLog.Value)] {
        guard let data = request?.callerData else { return [] }
        return [("data", .text(quoted(data)))]
    }

    /// Serves `stream` on a thread of its own.
    private func start(_ stream: Stream) {
        state.withLock { $0.inService += 1; $0.served += 1 }
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
            state.withLock { $0.inService -= 1 }
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
        stream.shutdown(Int32(SD_RECEIVE)) // wakes the input pump if the client still sends
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
        if eof { stream.shutdown(Int32(SD_SEND)) }
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
        current?.shutdown(Int32(SD_SEND))
    }
}
