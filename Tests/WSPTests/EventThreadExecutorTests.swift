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

/// The calling thread's directory in /proc ("/proc/PID/task/TID").
private func threadPath() -> String {
    (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/thread-self"))
        .map { "/proc/" + $0 } ?? ""
}

/// The epoll descriptors this process has open (the provider's reactor has one).
private func epollDescriptorCount() -> Int {
    let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
    return fds.filter { fd in
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)"))
            == "anon_inode:[eventpoll]"
    }.count
}

/// The provider's event threads alive now.
private func eventThreads() -> Int {
    let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
    return tasks.filter { task in
        let name = try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8)
        return name == "wsp-reactor\n"
    }.count
}

extension AllTests {
@Suite(.timeLimit(.minutes(1))) struct EventThreadExecutorTests {
    /// Tasks preferring the executor connect and accept with connect data, and every part of
    /// them that runs after the provider started runs on the provider's event thread.
    @Test func asyncConnectAndAcceptRunOnTheEventThread() async throws {
        let executor = EventThreadExecutor.shared
        let provider = try Provider() // started before the task: its first job is taken
        let names = try await Task(executorPreference: executor) { () async throws -> [String] in
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

    /// An accept-and-connect loop on the executor with both outcomes: the server accepts the
    /// even requests (answering with callee data) and rejects the odd ones; each side sees
    /// exactly its outcome, and the loop ends.
    @Test func asyncAcceptAndConnectLoopGetsEachOutcome() async throws {
        let executor = EventThreadExecutor.shared
        let count = 30
        let (clientSaw, serverSaw) = try await Task(executorPreference: executor) {
            () async throws -> ([String], [String]) in
            let provider = try Provider()
            let listener = try provider.listen(on: .loopback(port: 0), protocol: .tcpWithConnectData)
            let address = try listener.localAddress
            async let client: [String] = {
                var saw: [String] = []
                for i in 0..<count {
                    do {
                        let c = try await provider.connect(to: address, callerData: [UInt8(i)])
                        saw.append("\(i) accepted \(c.calleeData)")
                    } catch let error as WSPError {
                        let reason = error.refusal == .rejected ? "rejected" : "-"
                        saw.append("\(i) \(error.name) \(reason)")
                    }
                }
                return saw
            }()
            var saw: [String] = []
            for _ in 0..<count {
                do {
                    _ = try await listener.accept { request in
                        let i = request.callerData?.first ?? 255
                        return i % 2 == 0 ? .accept(calleeData: [i, 1]) : .reject
                    }
                    saw.append("accepted")
                } catch let error as WSPError {
                    saw.append(error.name)
                }
            }
            return (try await client, saw)
        }.value
        let expectedClient = (0..<count).map { i in
            i % 2 == 0 ? "\(i) accepted \([UInt8(i), 1])" : "\(i) WSAECONNREFUSED rejected"
        }
        #expect(clientSaw == expectedClient)
        #expect(serverSaw == (0..<count).map { $0 % 2 == 0 ? "accepted" : "WSAECONNREFUSED" })
    }

    /// On the executor a call that would block throws `.wouldBlock` at once instead of holding
    /// up every socket: here a synchronous accept on a listener nobody connects to.
    @Test func blockingCallOnTheExecutorThrowsWouldBlock() async throws {
        let provider = try Provider() // started before the task: its first job is taken
        let listener = try provider.listen(on: .loopback(port: 0)) // a blocking socket
        let (name, result) = await Task(executorPreference: EventThreadExecutor.shared) {
            () async -> (String, Result<Void, WSPError>?) in
            let name = threadName()
            guard name == "wsp-reactor" else { return (name, nil) } // would block for ever
            return (name, Result { () throws(WSPError) in _ = try listener.accept() })
        }.value
        #expect(name == "wsp-reactor")
        #expect(throws: WSPError.wouldBlock) { try result?.get() }
    }

    /// Releasing the last `Provider` inside a task on the executor ends the provider on its
    /// own event thread: no crash (the thread cannot join itself, so it exits once the job
    /// returns), the task carries on (on the global executor: the provider refuses jobs now),
    /// and the thread and its descriptors are gone.
    @Test func releasingTheLastProviderOnTheExecutorEndsTheProvider() async throws {
        _ = try Provider() // the module's notifier queue exists from here on: not counted
        #expect(await eventually { eventThreads() == 0 })
        let before = epollDescriptorCount()
        // Started before the task (its first job is then taken), then handed over whole.
        let box = ProviderBox(try Provider())
        let executor = EventThreadExecutor.shared
        let (unique, releasedOn, thread, refused) = try await Task(executorPreference: executor) {
            () async throws -> (Bool, String, String, Int32) in
            try await oneConnection(box.provider!)
            // Sockets hold their provider too, and a child task's may go a moment after it
            // returned: wait until this is the last reference, so that the release is here.
            for _ in 0..<100_000 where !isKnownUniquelyReferenced(&box.provider!) {
                await Task.yield()
            }
            let unique = isKnownUniquelyReferenced(&box.provider!)
            let releasedOn = threadName()
            let thread = threadPath()
            box.provider = nil // lpWSPCleanup, the last: on the event thread
            let refused = WSPRunOnEventThread({ _ in }, nil) // the stop has begun
            await Task.yield() // the task goes on (on the global executor)
            return (unique, releasedOn, thread, refused)
        }.value
        #expect(unique)
        #expect(releasedOn == "wsp-reactor")
        #expect(refused == WSANOTINITIALISED)
        // The event thread exits (a thread it made, such as a worker of the global executor,
        // may carry its name, so it is looked for by its id) and closes its epoll descriptor.
        // (The process's other descriptors come and go with Swift's runtime; the C tests count
        // the provider's own exactly.)
        #expect(await eventually {
            !thread.isEmpty && !FileManager.default.fileExists(atPath: thread)
                && epollDescriptorCount() == before
        })
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

/// One connect-data connection, accepted and connected on the calling task's executor.
private func oneConnection(_ provider: Provider) async throws {
    let listener = try provider.listen(on: .loopback(port: 0), protocol: .tcpWithConnectData)
    let address = try listener.localAddress
    async let served: Void = { _ = try await listener.accept() }()
    let c = try await provider.connect(to: address, callerData: [1])
    try await served
    #expect(c.calleeData == [])
}

/// A provider handed to one task, which alone uses and releases it.
private final class ProviderBox: @unchecked Sendable {
    var provider: Provider?
    init(_ provider: Provider) { self.provider = provider }
}
