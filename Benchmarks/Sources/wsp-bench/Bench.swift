// Connections per second for the same accept + connect + 16-byte handshake, side by side in
// one run: the C provider through its table, the Swift synchronous API, and SwiftNIO doing
// the handshake by hand over plain TCP. Pin it (`taskset -c 0`): the machines are shared.
import CWSP
import Foundation
import NIOCore
import NIOPosix
import WSP

let connections = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 3000 : 3000
/// `wsp-bench N name`: only the connection variant whose name starts with `name`, once (for
/// strace and perf); no ratios.
let only = CommandLine.arguments.count > 2 ? CommandLine.arguments[2] : nil
let rounds = 3
let message: [UInt8] = Array("0123456789abcdef".utf8)

func seconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

func fail(_ what: String) -> Never {
    FileHandle.standardError.write("wsp-bench: \(what)\n".data(using: .utf8)!)
    exit(1)
}

/// Runs `body` on a thread of its own; `join()` waits for it.
final class Worker: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    init(_ body: @escaping @Sendable () -> Void) {
        Thread { body(); self.done.signal() }.start()
    }
    func join() { done.wait() }
}

// ---- the C provider, through its table ----------------------------------------------------

/// The condition function: answers with the caller's own bytes.
let echoCondition: LPCONDITIONPROC = { _, callerData, _, _, _, calleeData, _, _ in
    if let callerData, let calleeData, callerData.pointee.len <= calleeData.pointee.len {
        memcpy(calleeData.pointee.buf, callerData.pointee.buf, Int(callerData.pointee.len))
        calleeData.pointee.len = callerData.pointee.len
    }
    return CF_ACCEPT
}

/// The catalog entry every C-table variant uses: TCP with connect data over IPv4.
func connectDataInfo() -> WSAPROTOCOL_INFO {
    var info = WSAPROTOCOL_INFO()
    info.dwCatalogEntryId = DWORD(WSP_CATALOG_CDATA_IPV4)
    return info
}

/// A connect-data listener on 127.0.0.1 with a kernel-chosen port, and its address.
func cListener(_ table: WSPPROC_TABLE) -> (SOCKET, sockaddr_in) {
    var info = connectDataInfo()
    var err: Int32 = 0
    let l = table.lpWSPSocket(0, 0, 0, &info, 0, 0, &err)
    var sin = sockaddr_in()
    sin.sin_family = sa_family_t(AF_INET)
    sin.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    var len = Int32(MemoryLayout<sockaddr_in>.size)
    let rc = withUnsafeMutablePointer(to: &sin) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
            table.lpWSPBind(l, sa, len, &err) | table.lpWSPListen(l, 128, &err)
                | table.lpWSPGetSockName(l, sa, &len, &err)
        }
    }
    if rc != 0 { fail("listen \(err)") }
    return (l, sin)
}

func cProvider() -> Double {
    var data = WSPDATA()
    var t = WSPPROC_TABLE()
    guard WSPStartup(0x0202, &data, nil, WSPUPCALLTABLE(), &t) == 0 else { fail("WSPStartup") }
    let table = t
    var info = connectDataInfo()
    var err: Int32 = 0
    let (l, address) = cListener(table)
    let server = Worker {
        var err: Int32 = 0
        for _ in 0..<connections {
            let a = table.lpWSPAccept(l, nil, nil, echoCondition, 0, &err)
            if a == ~SOCKET(0) { fail("WSPAccept \(err)") }
            _ = table.lpWSPCloseSocket(a, &err)
        }
    }
    let t0 = seconds()
    var request = message, answer = [UInt8](repeating: 0, count: 16)
    for _ in 0..<connections {
        let c = table.lpWSPSocket(0, 0, 0, &info, 0, 0, &err)
        let rc = request.withUnsafeMutableBytes { rq in
            answer.withUnsafeMutableBytes { an in
                var caller = WSABUF(len: 16, buf: rq.baseAddress!.assumingMemoryBound(to: CChar.self))
                var callee = WSABUF(len: 16, buf: an.baseAddress!.assumingMemoryBound(to: CChar.self))
                var a = address
                return withUnsafePointer(to: &a) { p in
                    p.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        table.lpWSPConnect(c, $0, Int32(MemoryLayout<sockaddr_in>.size), &caller,
                                           &callee, nil, nil, &err)
                    }
                }
            }
        }
        if rc != 0 || answer != request { fail("WSPConnect \(err)") }
        _ = table.lpWSPCloseSocket(c, &err)
    }
    server.join()
    let dt = seconds() - t0
    _ = table.lpWSPCloseSocket(l, &err)
    _ = table.lpWSPCleanup(&err)
    return Double(connections) / dt
}

// ---- the Swift synchronous API ------------------------------------------------------------

func swiftSync() -> Double {
    do throws(WSPError) {
        let provider = try Provider()
        let listener = try provider.listen(on: .loopback(port: 0), protocol: .tcpWithConnectData)
        let address = try listener.localAddress
        let handle = ListenerBox(listener)
        let server = Worker {
            for _ in 0..<connections {
                do throws(WSPError) {
                    let accepted = try handle.socket.accept { request in
                        .accept(calleeData: request.callerData ?? [])
                    }
                    _ = accepted
                } catch { fail("accept: \(error)") }
            }
        }
        let t0 = seconds()
        for _ in 0..<connections {
            let c = try provider.connect(to: address, protocol: .tcpWithConnectData,
                                         callerData: message)
            if c.calleeData != message { fail("callee data") }
        }
        server.join()
        return Double(connections) / (seconds() - t0)
    } catch {
        fail("swift sync: \(error)")
    }
}

/// Lends a listening socket to the server thread for the length of a run.
final class ListenerBox: @unchecked Sendable {
    let socket: Socket
    init(_ s: consuming Socket) { socket = s }
}


// ---- the Swift async API -------------------------------------------------------------------

/// Runs an async body to completion from synchronous code (the benchmark's main thread).
func blocking<T: Sendable>(on executor: (any TaskExecutor)? = nil,
                           _ body: @escaping @Sendable () async -> T) -> T {
    let done = DispatchSemaphore(value: 0)
    nonisolated(unsafe) var result: T? = nil
    Task(executorPreference: executor) {
        result = await body()
        done.signal()
    }
    done.wait()
    return result!
}

func swiftAsync() -> Double { swiftAsync(on: nil) }

/// The same, every task on the provider's event thread (`EventThreadExecutor`).
func swiftAsyncOnEventThread() -> Double { swiftAsync(on: EventThreadExecutor.shared) }

func swiftAsync(on executor: EventThreadExecutor?) -> Double {
    blocking(on: executor) {
        do {
            let provider = try Provider()
            let listener = try provider.listen(on: .loopback(port: 0), protocol: .tcpWithConnectData)
            let address = try listener.localAddress
            let t0 = seconds()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask(executorPreference: executor) {
                    for _ in 0..<connections {
                        let c = try await provider.connect(to: address, protocol: .tcpWithConnectData,
                                                           callerData: message)
                        if c.calleeData != message { fail("async callee data") }
                    }
                }
                for _ in 0..<connections {
                    _ = try await listener.accept { request in .accept(calleeData: request.callerData ?? []) }
                }
                try await group.waitForAll()
            }
            return Double(connections) / (seconds() - t0)
        } catch {
            fail("swift async: \(error)")
        }
    }
}

func swiftAsyncBulk() -> Double {
    blocking {
        do {
            let provider = try Provider()
            let listener = try provider.listen(on: .loopback(port: 0), protocol: .tcpWithConnectData)
            let address = try listener.localAddress
            return try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    let c = try await provider.connect(to: address, protocol: .tcpWithConnectData)
                    let payload = [UInt8](repeating: 7, count: chunk)
                    var sent = 0
                    while sent < bulkTotal { sent += try await c.socket.send(payload) }
                }
                let accepted = try await listener.accept()
                let t0 = seconds()
                var got = 0
                while got < bulkTotal {
                    let bytes = try await accepted.socket.receive(maxCount: chunk)
                    if bytes.isEmpty { fail("async bulk: early end") }
                    got += bytes.count
                }
                try await group.waitForAll()
                return Double(bulkTotal) / (seconds() - t0) / 1e6
            }
        } catch {
            fail("swift async bulk: \(error)")
        }
    }
}

// ---- SwiftNIO, the same handshake by hand ------------------------------------------------

/// Server side: read 16 bytes, answer with them, close.
final class EchoOnce: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private var got = ByteBuffer()
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var b = unwrapInboundIn(data)
        got.writeBuffer(&b)
        if got.readableBytes >= 16 {
            context.writeAndFlush(wrapOutboundOut(got), promise: nil)
            context.close(promise: nil)
        }
    }
}

/// Client side: send 16 bytes on connect, complete when 16 come back.
final class AskOnce: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let done: EventLoopPromise<Void>
    private var got = 0
    init(done: EventLoopPromise<Void>) { self.done = done }
    func channelActive(context: ChannelHandlerContext) {
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: message)), promise: nil)
    }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        got += unwrapInboundIn(data).readableBytes
        if got >= 16 { done.succeed(()) }
    }
}

func swiftNIO() -> Double {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    defer { try? group.syncShutdownGracefully() }
    do {
        let server = try ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 128)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { $0.pipeline.addHandler(EchoOnce()) }
            .bind(host: "127.0.0.1", port: 0).wait()
        let port = server.localAddress!.port!
        let t0 = seconds()
        for _ in 0..<connections {
            let done = group.next().makePromise(of: Void.self)
            let channel = try ClientBootstrap(group: group)
                .channelInitializer { $0.pipeline.addHandler(AskOnce(done: done)) }
                .connect(host: "127.0.0.1", port: port).wait()
            try done.futureResult.wait()
            try? channel.close().wait() // the server closes first: "already closed" is fine
        }
        let dt = seconds() - t0
        try server.close().wait()
        return Double(connections) / dt
    } catch {
        fail("swift-nio: \(error)")
    }
}


// ---- bulk throughput: one connection, 64 KiB writes, the receiver counts to the total -----

nonisolated(unsafe) var bulkTotal = 64 << 20 // set once, before any run (bulk mode below)
let chunk = 64 << 10

/// A connected pair of WSP sockets (connect-data), made with the C table.
func cPair(_ table: WSPPROC_TABLE) -> (SOCKET, SOCKET, SOCKET) {
    var info = connectDataInfo()
    var err: Int32 = 0
    let (l, address) = cListener(table)
    let c = table.lpWSPSocket(0, 0, 0, &info, 0, 0, &err)
    let client = Worker {
        var err: Int32 = 0
        var a = address
        let rc = withUnsafePointer(to: &a) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                table.lpWSPConnect(c, $0, Int32(MemoryLayout<sockaddr_in>.size), nil, nil, nil,
                                   nil, &err)
            }
        }
        if rc != 0 { fail("bulk connect \(err)") }
    }
    let a = table.lpWSPAccept(l, nil, nil, nil, 0, &err)
    client.join()
    return (l, c, a)
}

func cBulk() -> Double {
    var data = WSPDATA()
    var t = WSPPROC_TABLE()
    guard WSPStartup(0x0202, &data, nil, WSPUPCALLTABLE(), &t) == 0 else { fail("WSPStartup") }
    let table = t
    let (l, c, a) = cPair(table)
    let t0 = seconds()
    let sender = Worker {
        var buf = [UInt8](repeating: 7, count: chunk)
        var err: Int32 = 0
        var sent = 0
        while sent < bulkTotal {
            var n: DWORD = 0
            let rc = buf.withUnsafeMutableBytes { b in
                var wb = WSABUF(len: UInt32(chunk), buf: b.baseAddress!.assumingMemoryBound(to: CChar.self))
                return table.lpWSPSend(c, &wb, 1, &n, 0, nil, nil, nil, &err)
            }
            if rc != 0 { fail("bulk send \(err)") }
            sent += Int(n)
        }
    }
    var buf = [UInt8](repeating: 0, count: chunk)
    var got = 0
    var err: Int32 = 0
    while got < bulkTotal {
        var n: DWORD = 0
        var flags: DWORD = 0
        let rc = buf.withUnsafeMutableBytes { b in
            var wb = WSABUF(len: UInt32(chunk), buf: b.baseAddress!.assumingMemoryBound(to: CChar.self))
            return table.lpWSPRecv(a, &wb, 1, &n, &flags, nil, nil, nil, &err)
        }
        if rc != 0 || n == 0 { fail("bulk recv \(err)") }
        got += Int(n)
    }
    sender.join()
    let dt = seconds() - t0
    for s in [c, a, l] { _ = table.lpWSPCloseSocket(s, &err) }
    _ = table.lpWSPCleanup(&err)
    return Double(bulkTotal) / dt / 1e6
}

func swiftSyncBulk() -> Double {
    do throws(WSPError) {
        let provider = try Provider()
        let listener = try provider.listen(on: .loopback(port: 0), protocol: .tcpWithConnectData)
        let address = try listener.localAddress
        let connector = Worker {
            do throws(WSPError) {
                let c = try provider.connect(to: address, protocol: .tcpWithConnectData)
                let payload = [UInt8](repeating: 7, count: chunk)
                var sent = 0
                while sent < bulkTotal { sent += try c.socket.send(payload) }
            } catch { fail("swift bulk send: \(error)") }
        }
        let accepted = try listener.accept()
        let t0 = seconds()
        var got = 0
        while got < bulkTotal {
            let bytes = try accepted.socket.receive(maxCount: chunk)
            if bytes.isEmpty { fail("swift bulk: early end") }
            got += bytes.count
        }
        connector.join()
        return Double(bulkTotal) / (seconds() - t0) / 1e6
    } catch {
        fail("swift sync bulk: \(error)")
    }
}

/// Server side of the NIO bulk run: counts bytes, completes at the total.
final class CountTo: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    let done: EventLoopPromise<Void>
    private var got = 0
    init(done: EventLoopPromise<Void>) { self.done = done }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        got += unwrapInboundIn(data).readableBytes
        if got >= bulkTotal { done.succeed(()) }
    }
}

func swiftNIOBulk() -> Double {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    defer { try? group.syncShutdownGracefully() }
    do {
        let done = group.next().makePromise(of: Void.self)
        let server = try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { $0.pipeline.addHandler(CountTo(done: done)) }
            .bind(host: "127.0.0.1", port: 0).wait()
        let channel = try ClientBootstrap(group: group)
            .connect(host: "127.0.0.1", port: server.localAddress!.port!).wait()
        let t0 = seconds()
        let payload = ByteBuffer(repeating: 7, count: chunk)
        var last: EventLoopFuture<Void>? = nil
        for i in 0..<(bulkTotal / chunk) {
            let f = channel.writeAndFlush(payload)
            if i % 64 == 63 { try f.wait() } /* keep the outbound queue bounded */
            last = f
        }
        try last?.wait()
        try done.futureResult.wait()
        let dt = seconds() - t0
        try? channel.close().wait()
        try server.close().wait()
        return Double(bulkTotal) / dt / 1e6
    } catch {
        fail("swift-nio bulk: \(error)")
    }
}

// ---- the run -------------------------------------------------------------------------------

@main
struct Main {
    static func main() {

        var best: [String: Double] = [:]
        let variants: [(String, () -> Double)] = [
            ("C provider (WSP connect-data, table calls)", cProvider),
            ("Swift sync API (WSP connect-data)", swiftSync),
            ("SwiftNIO, the same handshake by hand", swiftNIO),
            ("Swift async API (WSP connect-data)", swiftAsync),
            ("Swift async API, on the event thread", swiftAsyncOnEventThread),
        ]
        let bulkVariants: [(String, () -> Double)] = [
            ("C provider", cBulk), ("Swift sync API", swiftSyncBulk), ("SwiftNIO", swiftNIOBulk),
            ("Swift async API", swiftAsyncBulk),
        ]
        if let only {
            for (name, run) in variants where name.hasPrefix(only) {
                print("\(name): \(String(format: "%.0f", run())) connections/s")
            }
            // `wsp-bench N "bulk NAME"`: one bulk run of N MiB (system calls per MiB).
            if only.hasPrefix("bulk ") {
                bulkTotal = connections << 20
                for (name, run) in bulkVariants where name.hasPrefix(only.dropFirst(5)) {
                    print("bulk \(name): \(String(format: "%.0f", run())) MB/s")
                }
            }
            return
        }
        for _ in 0..<rounds {
            for (name, run) in variants { best[name] = max(best[name] ?? 0, run()) }
        }
        let c = best[variants[0].0]!
        print("connections per second (\(connections) per round, best of \(rounds), 16-byte request and answer)")
        for (name, _) in variants {
            let v = best[name]!
            print("  \(name.padding(toLength: 46, withPad: " ", startingAt: 0)) \(String(format: "%9.0f", v))   \(String(format: "%.2f", v / c))x of C")
        }
        let nio = best[variants[2].0]!
        var bulk: [String: Double] = [:]
        for _ in 0..<rounds {
            for (name, run) in bulkVariants { bulk[name] = max(bulk[name] ?? 0, run()) }
        }
        print("  Swift sync / C: \(String(format: "%.2f", best[variants[1].0]! / c))x (target >= 0.95x)")
        // The async target is judged on the event thread, the executor the async API offers
        // for tasks that only wait on sockets (as SwiftNIO's are measured on its event loop);
        // on Swift's executor each connection pays two hand-offs to the pool, which the
        // second line shows (docs/PERFORMANCE.md, "Swift async on Swift's executor").
        let asyncRate = best[variants[3].0]!, onEventThread = best[variants[4].0]!
        print("  Swift async / C, on the event thread: \(String(format: "%.2f", onEventThread / c))x (target >= 0.90x)")
        print("  Swift async / C, on Swift's executor: \(String(format: "%.2f", asyncRate / c))x (two pool hand-offs per connection)")
        print("  Swift async / SwiftNIO, on Swift's executor: \(String(format: "%.2f", asyncRate / nio))x (target >= 1.50x)")
        let cb = bulk["C provider"]!
        print("bulk throughput, MB/s (\(bulkTotal >> 20) MiB in \(chunk >> 10) KiB writes, best of \(rounds))")
        for (name, _) in bulkVariants {
            let v = bulk[name]!
            print("  \(name.padding(toLength: 46, withPad: " ", startingAt: 0)) \(String(format: "%9.0f", v))   \(String(format: "%.2f", v / cb))x of C")
        }
        print("  Swift async bulk / C: \(String(format: "%.2f", bulk["Swift async API"]! / cb))x (target >= 0.90x)")
    }
}
