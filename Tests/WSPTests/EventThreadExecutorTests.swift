import CWSP
import Foundation
import Glibc
import Testing
import WSP

/// The calling thread's name (the provider names its event thread "wsp-reactor").
private func threadName() -> String {
    let fd = open("/proc/thread-self/comm", O_RDONLY)
    guard fd >= 0 else { return "" }
    defer { close(fd) }
    var buf = [UInt8](repeating: 0, count: 32)
    let n = read(fd, &buf, buf.count)
    guard n > 0 else { return "" }
    return String(decoding: buf[..<n], as: UTF8.self).trimmingCharacters(in: .newlines)
}

extension AllTests {
@Suite(.timeLimit(.minutes(1))) struct EventThreadExecutorTests {
    /// Tasks preferring the executor connect and accept with connect data, and every part of
    /// them that runs after the provider started runs on the provider's event thread.
    @Test func asyncConnectAndAcceptRunOnTheEventThread() async throws {
        let executor = EventThreadExecutor.shared
        let names = try await Task(executorPreference: executor) { () async throws -> [String] in
            let provider = try Provider()
            let listener = try provider.listen(on: .loopback(port: 0), protocol: .tcpWithConnectData)
            let address = try listener.localAddress
            return try await withThrowingTaskGroup(of: Set<String>.self) { group in
                group.addTask(executorPreference: executor) {
                    var names: Set<String> = []
                    for i in 0..<20 {
                        let c = try await provider.connect(to: address, protocol: .tcpWithConnectData,
                                                           callerData: [UInt8(i)])
                        names.insert(threadName())
                        #expect(c.calleeData == [UInt8(i), 1])
                    }
                    return names
                }
                var names: Set<String> = []
                for _ in 0..<20 {
                    _ = try await listener.accept { request in
                        .accept(calleeData: (request.callerData ?? []) + [1])
                    }
                    names.insert(threadName())
                }
                for try await more in group { names.formUnion(more) }
                return names.sorted()
            }
        }.value
        #expect(names == ["wsp-reactor"])
    }

    /// Without a started provider the jobs run on Swift's own pool: nothing is lost.
    @Test func withoutAProviderJobsRunOnThePool() async {
        let name = await Task(executorPreference: EventThreadExecutor.shared) {
            threadName()
        }.value
        #expect(!name.isEmpty)
    }
}
}
