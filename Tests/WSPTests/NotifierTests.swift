import CWSP
import Foundation
import Testing
import WSP

/// A socket that several tasks borrow at once (a class's `let` can be shared; the socket
/// closes when the last task lets go of it).
private final class Shared: Sendable {
    let socket: Socket
    init(_ socket: consuming Socket) { self.socket = socket }
}

/// A connected plain-TCP pair made through the async API: (client side, server side).
private func asyncPair(_ provider: Provider, _ listener: borrowing Socket)
    async throws -> (Shared, Shared)
{
    let address = try listener.localAddress
    let client = connectTask(provider, address, .tcp, nil)
    let accepted = try await listener.accept()
    let serverSide = accepted.socket
    return (try await client.value.socket, Shared(serverSide))
}

/// An async connect in a task of its own: the socket and the callee data.
private func connectTask(_ provider: Provider, _ address: Address,
                         _ proto: Provider.TransportProtocol, _ callerData: [UInt8]?)
    -> Task<(socket: Shared, calleeData: [UInt8]), any Error>
{
    Task {
        let connection = try await provider.connect(to: address, protocol: proto,
                                                    callerData: callerData)
        let callee = connection.calleeData
        let socket = connection.socket
        return (Shared(socket), callee)
    }
}

/// How the provider's network events reach waiting tasks (`Notifier`): its upcall resumes
/// them directly; the listener is selected only while accepts wait; a start-up with another
/// upcall table does not lose them.
extension AllTests {
@Suite(.timeLimit(.minutes(1))) struct NotifierTests {
    /// Many receives wait on many sockets at once, several accepts wait on one listener at
    /// once, and every one of them is woken exactly for its own event.
    @Test func manyConcurrentWaiters() async throws {
        let provider = try Provider()
        let listener = try provider.listen(on: .loopback(port: 0))
        var pairs: [(Shared, Shared)] = []
        for _ in 0..<64 { pairs.append(try await asyncPair(provider, listener)) }
        try await withThrowingTaskGroup(of: (Int, [UInt8]).self) { group in
            for (i, pair) in pairs.enumerated() {
                group.addTask { (i, try await pair.1.socket.receive(maxCount: 16)) }
            }
            try await Task.sleep(for: .milliseconds(20)) // let most of them wait
            for (i, pair) in pairs.enumerated().reversed() {
                try await pair.0.socket.send([UInt8(i)])
            }
            for try await (i, got) in group { #expect(got == [UInt8(i)]) }
        }

        // Eight accepts waiting on one listener, one client for each.
        let address = try listener.localAddress
        let shared = Shared(try provider.listen(on: .loopback(port: 0)))
        let sharedAddress = try shared.socket.localAddress
        #expect(address != sharedAddress)
        try await withThrowingTaskGroup(of: Address.self) { group in
            for _ in 0..<8 { group.addTask { try await shared.socket.accept().peer } }
            try await Task.sleep(for: .milliseconds(20))
            var clients: [Shared] = []
            for _ in 0..<8 {
                let connection = try await provider.connect(to: sharedAddress)
                let socket = connection.socket
                clients.append(Shared(socket))
            }
            var peers = Set<String>()
            for try await peer in group { peers.insert(peer.description) }
            #expect(peers.count == 8)
            #expect(clients.count == 8)
        }
    }

    /// A receive is cancelled just as its data arrives: it either gets the byte or throws
    /// `operationAborted`, and then the byte is still there. Never a hang, never a lost byte.
    @Test func cancellationRacingAWake() async throws {
        let provider = try Provider()
        let listener = try provider.listen(on: .loopback(port: 0))
        let (client, server) = try await asyncPair(provider, listener)
        var aborted = 0
        for i in 0..<300 {
            let byte = UInt8(truncatingIfNeeded: i)
            let receiver = Task { () async -> Result<[UInt8], WSPError> in
                do throws(WSPError) {
                    return .success(try await server.socket.receive(maxCount: 1))
                } catch { return .failure(error) }
            }
            if i % 3 != 0 { await Task.yield() } // vary who goes first
            async let sent = client.socket.send([byte])
            receiver.cancel()
            _ = try await sent
            switch await receiver.value {
            case .success(let got):
                #expect(got == [byte])
            case .failure(let error):
                #expect(error == .operationAborted)
                aborted += 1
                #expect(try await server.socket.receive(maxCount: 1) == [byte])
            }
        }
        #expect(aborted > 0) // the race was run, not just the easy side of it
    }

    /// Accepts that start and stop waiting (cancelled) while clients arrive: the listener's
    /// selection follows the waiters, so the accepts that remain are still woken.
    @Test func cancelledAcceptWaitersDoNotDeselectTheOthers() async throws {
        let provider = try Provider()
        let listener = Shared(try provider.listen(on: .loopback(port: 0)))
        let address = try listener.socket.localAddress
        for round in 0..<20 {
            let waiters = (0..<4).map { _ in
                Task { () async -> Result<Address, WSPError> in
                    do throws(WSPError) {
                        return .success(try await listener.socket.accept().peer)
                    } catch { return .failure(error) }
                }
            }
            if round % 2 == 0 { try await Task.sleep(for: .milliseconds(2)) }
            waiters[0].cancel()
            waiters[1].cancel()
            let c1 = try await provider.connect(to: address)
            let c2 = try await provider.connect(to: address)
            var peers = Set<String>()
            for w in waiters {
                switch await w.value {
                case .success(let peer): peers.insert(peer.description)
                case .failure(let error): #expect(error == .operationAborted)
                }
            }
            // Cancelled waiters may have taken a connection before seeing the cancellation;
            // whatever the remaining waiters did not take is still there.
            while peers.count < 2 {
                peers.insert(try await listener.socket.accept().peer.description)
            }
            #expect(peers.count == 2)
            _ = consume c1
            _ = consume c2
        }
    }

    /// A listener is selected only while an accept waits, yet once used asynchronously it
    /// stays non-blocking: a synchronous accept with nothing queued throws instead of
    /// waiting, blocking mode is refused, and accepted sockets start non-blocking.
    @Test func aListenerUsedAsynchronouslyStaysNonBlocking() async throws {
        let provider = try Provider()
        let listener = try provider.listen(on: .loopback(port: 0))
        let address = try listener.localAddress
        let client = connectTask(provider, address, .tcp, nil)
        let accepted = try await listener.accept()
        _ = try await client.value
        #expect(throws: WSPError.wouldBlock) { _ = try listener.accept() }
        #expect(throws: WSPError.invalidArgument) { try listener.setNonBlocking(false) }
        #expect(throws: WSPError.wouldBlock) { _ = try accepted.socket.receive(maxCount: 1) }
    }

    /// The listener closes while requests arrive and its `requests` sequence waits: the
    /// sequence ends, and nothing hangs.
    @Test func closeRacingAWake() async throws {
        let provider = try Provider()
        for i in 0..<40 {
            let listener = try asyncListener(provider)
            let address = try listener.localAddress
            let requests = listener.requests
            let iteration = Task { () async -> Int in
                var n = 0
                do throws(WSPError) {
                    for try await request in requests {
                        n += 1
                        try? request.reject()
                    }
                } catch {}
                return n
            }
            let client = Task { () async -> WSPError? in
                do throws(WSPError) {
                    _ = try await provider.connect(to: address, protocol: .tcpWithConnectData,
                                                   callerData: [1], timeout: .seconds(5))
                    return nil
                } catch { return error }
            }
            if i % 2 == 0 { try await Task.sleep(for: .microseconds(200 * (i % 5))) }
            try listener.close()
            _ = await iteration.value
            // Whether the close comes before the request or while it waits, a listener that
            // goes away refuses its clients.
            #expect(await client.value == .connectionRefused)
        }
    }

    /// C code starting the provider with the built-in upcalls replaces this module's table:
    /// the events then travel through the message queue and the notifier's thread, and
    /// async calls still complete. A later `Provider` puts the module's table back.
    @Test func anotherStartupsTableLosesNoEvents() async throws {
        let provider = try Provider()
        let table = rawTable() // a zeroed upcall table: the built-in ones are in force now
        defer { rawCleanup(table) }
        let listener = try asyncListener(provider)
        let address = try listener.localAddress
        for round in 0..<2 {
            if round == 1 { _ = try Provider() } // ours again
            let client = connectTask(provider, address, .tcpWithConnectData, [UInt8(round)])
            let accepted = try await listener.accept { request in
                .accept(calleeData: request.callerData ?? [])
            }
            let conn = try await client.value
            #expect(conn.calleeData == [UInt8(round)])
            async let reply = conn.socket.socket.receive(maxCount: 4)
            try await accepted.socket.send([9, UInt8(round)])
            #expect(try await reply == [9, UInt8(round)])
        }
    }

    /// With this module's table in force, a C program's own message queue still gets its
    /// sockets' messages (the upcall passes other windows to the built-in `WSPPostMessage`).
    @Test func otherWindowsStillGetTheirMessages() async throws {
        let table = rawTable()
        defer { rawCleanup(table) }
        let provider = try Provider() // started last: its table is in force
        let listener = try provider.listen(on: .loopback(port: 0))
        let (client, server) = try await asyncPair(provider, listener)
        let queue = try #require(WSPCreateMessageQueue())
        defer { _ = WSPDestroyMessageQueue(queue) }
        let probe = try provider.listen(on: .loopback(port: 0))
        var err: Int32 = 0
        #expect(table.lpWSPAsyncSelect(probe.handle, queue, 0x1234, Int32(FD_ACCEPT), &err) == 0)
        let conn = try await provider.connect(to: try probe.localAddress)
        let queueBits = UInt(bitPattern: queue) // a raw pointer is not Sendable
        let got = await offPool {
            var m = WSPMSG()
            let rc = WSPGetMessage(HWND(bitPattern: queueBits), &m, 5000)
            return (rc, m.wParam, m.message, m.lParam)
        }
        #expect(got.0 == 1)
        #expect(got.1 == probe.handle && got.2 == 0x1234)
        #expect(Int32(got.3 & 0xFFFF) == Int32(FD_ACCEPT))
        // And the async sockets were not disturbed.
        async let r = server.socket.receive(maxCount: 1)
        try await client.socket.send([5])
        #expect(try await r == [5])
        _ = consume conn
    }
}
}
