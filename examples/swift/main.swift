// An async admission server and its clients, in one process: the Swift counterpart of
// examples/demo.c. Run it with `make example-swift` (or `swift run wsp-admission-example`).
//
// The server admits callers that send "let-me-in" and answers them "welcome"; while it is
// serving its one slot it defers newcomers, who wait (kept alive by the provider) until the
// slot frees. Every outcome is printed as the server's loop reports it; the loop itself goes
// on through all of them.
import Synchronization
import WSP

@main
struct AdmissionExample {
    static func main() async throws {
        let provider = try Provider()
        let listener = try provider.listen(on: .loopback(port: 0), protocol: .tcpWithConnectData)
        try listener.set(.pendingInterval, to: .milliseconds(100))
        let address = try listener.localAddress
        print("server: listening on \(address)")

        let slot = Slot()
        let connections = listener.connections(
            retryDeferredAfter: .milliseconds(50),
            outcomes: { outcome in print("server: \(describe(outcome))") },
            condition: { request in
                guard request.callerData == Array("let-me-in".utf8) else { return .reject }
                return slot.take() ? .accept(calleeData: Array("welcome".utf8)) : .defer
            })
        let server = Task {
            for try await connection in connections {
                Task {
                    // Echo one message, then free the slot.
                    let bytes = try await connection.receive(maxCount: 100)
                    try await connection.send(bytes)
                    try connection.close()
                    slot.free()
                }
            }
        }

        // alice gets in and holds the slot for a moment; mallory is rejected; bob is
        // deferred until alice leaves; carol gives up while deferred.
        let alice = try await provider.connect(to: address, callerData: Array("let-me-in".utf8))
        print("alice: connected, the server answered \(text(alice.calleeData))")
        do throws(WSPError) {
            let mallory = try await provider.connect(to: address, callerData: Array("guess".utf8))
            print("mallory: connected?! \(text(mallory.calleeData))")
        } catch {
            print("mallory: refused (\(error.refusal.map { "\($0)" } ?? error.name))")
        }
        do throws(WSPError) {
            let carol = try await provider.connect(to: address, callerData: Array("let-me-in".utf8),
                                                   timeout: .milliseconds(300))
            print("carol: connected?! \(text(carol.calleeData))")
        } catch {
            print("carol: gave up waiting (\(error.name))")
        }
        async let bob = connectAndEcho(provider, address, name: "bob")
        try await Task.sleep(for: .milliseconds(300))
        print("alice: says hello and leaves")
        try await alice.socket.send(Array("hello".utf8))
        print("alice: the server echoed \(text(try await alice.socket.receive(maxCount: 100)))")
        try alice.socket.close()
        print(try await bob)

        server.cancel()
        let stats = try listener.listenerStatistics
        print("server: accepted \(stats.accepted), rejected \(stats.rejected), "
              + "gave up \(stats.withdrawn + stats.expired)")
        // CI runs this example: a story that did not happen fails it.
        guard stats.accepted == 2, stats.rejected == 1, stats.withdrawn + stats.expired == 1 else {
            throw WSPError(code: WSPError.invalidArgument.code, detail: "the story did not happen")
        }
    }

    static func connectAndEcho(_ provider: Provider, _ address: Address, name: String)
        async throws -> String
    {
        let conn = try await provider.connect(to: address, callerData: Array("let-me-in".utf8))
        try await conn.socket.send(Array("was it worth the wait?".utf8))
        let echoed = try await conn.socket.receive(maxCount: 100)
        return "\(name): connected after a deferral, the server echoed \(text(echoed))"
    }
}

/// One connection in service at a time.
final class Slot: Sendable {
    private let taken = Mutex(false)
    func take() -> Bool { taken.withLock { t in defer { t = true }; return !t } }
    func free() { taken.withLock { $0 = false } }
}

func text(_ bytes: [UInt8]) -> String { "\"" + String(decoding: bytes, as: UTF8.self) + "\"" }

func describe(_ outcome: AcceptOutcome) -> String {
    switch outcome {
    case .accepted(let r): "accepted \(r.callerAddress) (\(text(r.callerData ?? [])))"
    case .rejected(let r): "rejected \(r.callerAddress) (\(text(r.callerData ?? [])))"
    case .deferred(let r): "deferred \(r.callerAddress): the slot is taken"
    case .withdrawn(let caller): "withdrawn \(caller.map { "\($0)" } ?? "a queued client")"
    case .failed(let r, let error): "failed \(r.map { "\($0.callerAddress)" } ?? "-"): \(error)"
    case .dropped(let caller, let reason): "dropped \(caller): \(reason)"
    }
}
