import ArgumentParser
import CWSP
import Dispatch
import Glibc
import WSP

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "A server and four clients in one process: accept, reject, hold-then-accept, and a client that gives up.",
        discussion: """
            The server is `wspcat listen 127.0.0.1:0 --keep-open --echo --require-data \
            let-me-in --callee-data welcome --defer-when-busy`, run in this process; its log \
            lines are the ones `listen` prints. Takes about three seconds.
            """
    )

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        let log = EventLog(format: .text, quiet: false, fd: 1)
        var rules = AdmissionRules()
        rules.requiredData = Array("let-me-in".utf8)
        rules.calleeData = Array("welcome".utf8)
        rules.deferWhenBusy = true
        let server = Server(rules: rules, log: log, service: .echo, keepOpen: true)

        let provider = try Provider()
        // The server runs on the loop executor and owns the listener; this thread plays the
        // clients, which block, once it knows the address.
        let ready = DispatchSemaphore(value: 0), finished = DispatchSemaphore(value: 0)
        let listening = Locked<Result<Address, WSPError>?>(nil)
        Task(executorPreference: LoopExecutor.shared) {
            do throws(WSPError) {
                let listener = try provider.listen(on: .loopback(port: 0),
                                                   protocol: .tcpWithConnectData, backlog: 8)
                // Pending notices every 100 ms, so that a client that gives up is noticed
                // quickly.
                try listener.set(.pendingInterval, to: .milliseconds(100))
                let address = try listener.localAddress
                listening.withLock { $0 = .success(address) }
                ready.signal()
                try await server.run(listener, protocolName: "connect-data")
            } catch {
                let first = listening.withLock { l in
                    defer { if l == nil { l = .failure(error) } }
                    return l == nil
                }
                if first { ready.signal() }
                say("  [server] stopped: \(error)")
            }
            finished.signal()
        }
        ready.wait()
        let address = try listening.withLock { $0! }.get()
        say("""
            wspcat demo: a connect-data listener on \(address) admits callers that send \
            "let-me-in", answers them "welcome", echoes what they send, and serves one at a \
            time: while busy it holds new requests instead of refusing them.
            The server's lines start with "wspcat:", the clients' with their names.
            """)

        let clients = Clients(provider: provider, server: address)
        step("1. Accept: alice sends the right caller data and gets in; she stays connected.")
        let alice = clients.connect("alice", data: "let-me-in")
        if let alice { clients.exchange("alice", on: alice, "hello") }

        step("2. Reject: mallory sends the wrong data. Her connect fails; she never had a connection.")
        _ = clients.connect("mallory", data: "guess")

        step("3. Give up: carol asks while alice is served, is held, and gives up after 0.5 s (her request says so: the server refuses her then).")
        _ = clients.connect("carol", data: "let-me-in", limit: 0.5)
        sleep(seconds: 0.2) // the server notices at its next look

        step("4. Hold, then accept: bob asks while alice is served; he waits until she leaves.")
        let bob = Thread {
            if let bob = clients.connect("bob", data: "let-me-in") {
                clients.exchange("bob", on: bob, "was it worth the wait?")
            }
        }
        sleep(seconds: 0.8)
        say("  [alice] leaves")
        alice?.shutdown(.both)
        _ = consume alice
        bob.join()

        sleep(seconds: 0.2)
        server.stop()
        finished.wait()
        say("\nDone: accept, reject, a client that gave up, hold then accept. Try it by hand with `wspcat listen` and `wspcat connect` (see --help).")
    }

    private func step(_ text: String) { say("\n" + text) }
}

private func say(_ text: String) {
    _ = writeAll(1, Array((text + "\n").utf8))
}

/// The demo's clients, each on the calling thread, saying what happened in one line.
private struct Clients: Sendable {
    let provider: Provider
    let server: Address

    func connect(_ name: String, data: String, limit: Double? = nil) -> Stream? {
        do {
            let socket = try provider.socket(family: server.family, protocol: .tcpWithConnectData)
            if let limit {
                try socket.set(.connectLimit, to: .milliseconds(Int(limit * 1000)))
            }
            let callee = try socket.connect(to: server, callerData: Array(data.utf8))
            say("  [\(name)] sent \(quoted(Array(data.utf8))): connected; the server answered \(quoted(callee))")
            return Stream(.connected(socket), peer: server.description)
        } catch {
            let what = error == .connectionRefused ? "refused"
                : error == .timedOut ? "gave up waiting (timed out)" : "failed"
            say("  [\(name)] sent \(quoted(Array(data.utf8))): connect \(what): \(error.name)")
            return nil
        }
    }

    func exchange(_ name: String, on stream: Stream, _ text: String) {
        do {
            try stream.send(Array(text.utf8))
            let back = try stream.receive()
            say("  [\(name)] sent \(quoted(Array(text.utf8))), the server echoed \(quoted(back))")
        } catch {
            say("  [\(name)] exchange failed: \(error.name)")
        }
    }
}
