import CWSP
import Dispatch
import Foundation
import Testing
import WSP

/// Every suite runs inside this one, one test at a time: several tests block Dispatch
/// threads, and the stress test counts the process's open descriptors, which a test running
/// beside it would change.
@Suite(.serialized) enum AllTests {}

/// Runs a blocking `body` on a Dispatch thread, off Swift's cooperative pool, and awaits its
/// result without blocking the awaiting task's thread.
func offPool<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { c in
        DispatchQueue.global().async { c.resume(returning: body()) }
    }
}

/// The raw C table, as a C program gets it (each start-up is paired with `rawCleanup`).
func rawTable() -> WSPPROC_TABLE {
    var data = WSPDATA()
    var table = WSPPROC_TABLE()
    let rc = WSPStartup(0x0202, &data, nil, WSPUPCALLTABLE(), &table)
    precondition(rc == 0)
    return table
}

func rawCleanup(_ table: WSPPROC_TABLE) {
    var err: Int32 = 0
    _ = table.lpWSPCleanup(&err)
}

/// The number of descriptors this process has open.
func openDescriptorCount() -> Int {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
}

/// Polls `condition` every 10 ms until it holds or `seconds` pass; whether it held.
func eventually(within seconds: Double = 3, _ condition: () throws -> Bool) async rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return try condition()
}

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }
func text(_ b: [UInt8]?) -> String? { b.map { String(decoding: $0, as: UTF8.self) } }

/// A connected listener on loopback for the connect-data protocol, registered for async use.
func asyncListener(_ provider: Provider, ipv6: Bool = false, backlog: Int32 = 128)
    throws(WSPError) -> Socket
{
    try provider.listen(on: ipv6 ? .loopbackIPv6(port: 0) : .loopback(port: 0),
                        protocol: .tcpWithConnectData, backlog: backlog)
}

/// A variable a `@Sendable` condition closure may set (the closure runs inside the accept;
/// the lock only makes that visible to the compiler).
final class Captured<T: Sendable>: Sendable {
    private let box: Locked<T>
    init(_ value: T) { box = Locked(value) }
    var value: T {
        get { box.withLock { $0 } }
        set { box.withLock { $0 = newValue } }
    }
}
