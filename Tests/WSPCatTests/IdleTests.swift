import Foundation
import Testing

/// Whether this process runs under ThreadSanitizer, whose runtime has a thread of its own
/// that wakes periodically in every instrumented process (wspcat's too).
let underThreadSanitizer = dlsym(nil, "__tsan_init") != nil // nil: RTLD_DEFAULT

extension WSPCatEndToEnd {
    /// An idle `wspcat listen` never wakes: it waits for requests through the provider's
    /// event notification, on a thread of its own, and Swift's global pool (whose
    /// libdispatch manager ticks every second once used) is never started. Counted, not
    /// timed: every thread's voluntary context switches over an idle second, after serving
    /// a client, must not change.
    @Test(.enabled(if: !underThreadSanitizer, "the sanitizer's own thread wakes"))
    func anIdleListenerHasNoWakeUps() throws {
        let server = try Run(["listen", "127.0.0.1:0", "-k", "--echo"])
        defer { server.stop() }
        let port = try server.port()
        let idleThreads = server.voluntarySwitches().count
        let client = try connect(port, ["--data", "x"], stdin: "one\n")
        #expect(client.exitStatus() == 0, "\(client.stderr)")
        #expect(server.logs("closed 127.0.0.1:"), "\(server.stderr)")
        // The connection's thread has gone: the process is back to its idle threads.
        #expect(server.wait(10) { server.voluntarySwitches().count == idleThreads },
                "threads: \(server.voluntarySwitches())")
        // The connection's last events (its close reaching the reactor, the listener's short
        // timers after it) settle first: three looks 300 ms apart that agree. (Two looks
        // 200 ms apart once let a late wake-up into the measured second under check-repeat's
        // load, session 9.) A periodic wake-up of a second or less still falls into it.
        var last = server.voluntarySwitches()
        var quiet = 0
        #expect(server.wait(20) {
            usleep(300_000)
            let now = server.voluntarySwitches()
            quiet = now == last ? quiet + 1 : 0
            last = now
            return quiet == 2
        })
        let before = server.voluntarySwitches()
        usleep(1_000_000) // the interval measured, not a wait for anything
        let after = server.voluntarySwitches()
        let woken = before.compactMap { tid, n in after[tid].map { $0 - n } }.reduce(0, +)
        #expect(woken == 0, "before \(before), after \(after), threads \(server.threadNames())")
        #expect(Set(before.keys) == Set(after.keys))
    }
}
