import CWSP
import Foundation
import Testing
import WSP

extension AllTests {
@Suite(.timeLimit(.minutes(2))) struct StressTests {
    enum Outcome: Equatable, Sendable {
        case accepted(String)
        case failed(WSPError)
    }

    static func kind(_ i: Int) -> String { ["A", "R", "D"][i % 3] }

    static func client(_ i: Int, _ provider: Provider, _ address: Address) async -> Outcome {
        do throws(WSPError) {
            let conn = try await provider.connect(to: address, protocol: .tcpWithConnectData,
                                                  callerData: bytes("\(kind(i)):\(i)"),
                                                  timeout: .seconds(60))
            let callee = text(conn.calleeData) ?? ""
            try conn.socket.close()
            return .accepted(callee)
        } catch {
            return .failed(error)
        }
    }

    /// Accepts until `count` requests are decided: "A…" accepted with callee data "ok:…",
    /// "R…" rejected, "D…" deferred the first time it is seen and accepted the second.
    static func serve(_ listener: borrowing Socket, count: Int) async throws(WSPError)
        -> (accepted: Int, rejected: Int, deferred: Int)
    {
        var accepted = 0, rejected = 0, deferred = 0
        let deferredOnce = Captured(Set<String>())
        @Sendable func decide(_ request: ConnectionRequest) -> Decision {
            let data = text(request.callerData) ?? ""
            switch data.first {
            case "A": return .accept(calleeData: bytes("ok:" + data))
            case "R": return .reject
            default:
                if deferredOnce.value.insert(data).inserted { return .defer }
                return .accept(calleeData: bytes("late:" + data))
            }
        }
        while accepted + rejected < count {
            let outcome: Result<Accepted, WSPError>
            do throws(WSPError) {
                outcome = .success(try await listener.accept(condition: decide))
            } catch {
                outcome = .failure(error)
            }
            switch outcome {
            case .success: accepted += 1
            case .failure(.connectionRefused): rejected += 1
            case .failure(.tryAgain): deferred += 1
            case .failure(let error): throw error
            }
        }
        return (accepted, rejected, deferred)
    }

    /// 200 concurrent async clients against one async listener. The caller data says what
    /// the condition function does — "A" accept, "R" reject, "D" defer once then accept — and
    /// every client must see exactly that; afterwards no descriptor is left behind.
    @Test func twoHundredConcurrentClientsGetTheirDecisions() async throws {
        let provider = try Provider()
        let listener = try asyncListener(provider, backlog: 512)
        let address = try listener.localAddress

        // Warm up: starts the poller (its epoll descriptor stays for the process's life) and
        // registers the listener, so the count below sees only what the clients add.
        async let warm = provider.connect(to: address, protocol: .tcpWithConnectData,
                                          callerData: bytes("warm-up")).calleeData
        _ = try await listener.accept()
        _ = try await warm
        #expect(try await eventually { try listener.listenerStatistics.queued == 0 })
        try await Task.sleep(for: .milliseconds(100))
        let before = openDescriptorCount()

        let count = 200
        // Clients first (in their own task), then the server loop in this one.
        let clients = Task { () -> [Int: Outcome] in
            await withTaskGroup(of: (Int, Outcome).self) { group in
                for i in 0..<count {
                    group.addTask { (i, await Self.client(i, provider, address)) }
                }
                var all = [Int: Outcome]()
                for await (i, outcome) in group { all[i] = outcome }
                return all
            }
        }

        let server = try await Self.serve(listener, count: count)
        let outcomes = await clients.value

        let perKind = (0..<count).map(Self.kind)
        #expect(server.accepted == perKind.filter { $0 != "R" }.count)
        #expect(server.rejected == perKind.filter { $0 == "R" }.count)
        #expect(server.deferred == perKind.filter { $0 == "D" }.count)
        for i in 0..<count {
            let expected: Outcome = switch Self.kind(i) {
            case "A": .accepted("ok:A:\(i)")
            case "R": .failed(.connectionRefused)
            default: .accepted("late:D:\(i)")
            }
            #expect(outcomes[i] == expected, "client \(i)")
        }
        let stats = try listener.listenerStatistics
        #expect(stats.accepted == UInt64(server.accepted + 1)) // + the warm-up
        #expect(stats.rejected == UInt64(server.rejected))
        #expect(stats.withdrawn == 0)

        // Every socket and event object is closed; the provider frees some descriptors on its
        // reactor thread, so give it a moment.
        let settled = await eventually(within: 5) { openDescriptorCount() <= before }
        #expect(settled, "descriptors: \(before) before, \(openDescriptorCount()) after")
    }
}
}
