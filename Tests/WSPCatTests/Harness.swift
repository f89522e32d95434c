import Foundation
import Testing

/// Runs the built `wspcat` binary in its own processes. Each process's stdin, stdout and
/// stderr are files in a temporary folder (the shell redirects them, so this process holds
/// no pipes to it), and every wait has a deadline: a hung process is killed and the test
/// fails instead of hanging.
enum WSPCat {
    /// `$WSPCAT`, else `wspcat` next to the test binary (SwiftPM's bin folder, which
    /// `swift build --build-tests` fills), else what `swift build --show-bin-path` names.
    static let binary: String = {
        if let path = ProcessInfo.processInfo.environment["WSPCAT"] { return path }
        let me = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var dir = me.deletingLastPathComponent()
        if dir.lastPathComponent.hasSuffix(".xctest") { dir = dir.deletingLastPathComponent() }
        return dir.appendingPathComponent("wspcat").path
    }()

    static func quote(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }
}

/// One `wspcat` process, started with `posix_spawn` rather than Foundation's `Process`: the
/// parent keeps no descriptor for it (other suites in this process count descriptors), and
/// the child starts with default signal handling and an empty signal mask.
final class Run: @unchecked Sendable {
    let pid: pid_t
    let dir: URL
    let arguments: [String]
    private var status: Int32? = nil

    /// Starts `wspcat arguments…` with `stdin` as its whole input.
    init(_ arguments: [String], stdin: String = "") throws {
        self.arguments = arguments
        dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("wspcat-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try stdin.write(to: dir.appendingPathComponent("in"), atomically: true, encoding: .utf8)
        let command = ([WSPCat.binary] + arguments).map(WSPCat.quote).joined(separator: " ")
        // exec: the process is wspcat itself, so killing it kills wspcat.
        let script = "cd \(WSPCat.quote(dir.path)) && exec \(command) <in >out 2>err"
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let words: [String] = ["/bin/sh", "-c", script]
        let argv = words.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid = pid_t()
        let rc = posix_spawn(&pid, "/bin/sh", nil, &attributes, argv, environ)
        guard rc == 0 else { throw HarnessError("posix_spawn: \(rc)") }
        self.pid = pid
    }

    deinit {
        if isRunning { kill(pid, SIGKILL); reap(blocking: true) }
        try? FileManager.default.removeItem(at: dir)
    }

    var isRunning: Bool {
        reap(blocking: false)
        return status == nil
    }

    private func reap(blocking: Bool) {
        guard status == nil else { return }
        var raw: Int32 = 0
        let r = waitpid(pid, &raw, blocking ? 0 : WNOHANG)
        if r == pid {
            let signal = raw & 0x7f
            status = signal == 0 ? (raw >> 8) & 0xff : 128 + signal
        } else if r < 0 && errno != EINTR {
            status = -1
        }
    }

    var stdout: String { read("out") }
    var stderr: String { read("err") }
    var stderrLines: [String] { stderr.split(separator: "\n").map(String.init) }

    private func read(_ name: String) -> String {
        (try? String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8)) ?? ""
    }

    /// The exit status (128 + signal if killed by one), or nil (and the process killed) if
    /// it has not ended in `seconds`.
    func exitStatus(within seconds: Double = 10) -> Int32? {
        if !wait(seconds, until: { !self.isRunning }) {
            kill(pid, SIGKILL)
            reap(blocking: true)
            return nil
        }
        return status
    }

    /// Whether some stderr line contains every one of `parts` within `seconds`.
    func logs(_ parts: String..., within seconds: Double = 5) -> Bool {
        wait(seconds) { self.stderrLines.contains { line in parts.allSatisfy(line.contains) } }
    }

    /// Whether a line containing all of one of `alternatives`' parts is logged in time.
    func logsAny(_ alternatives: [[String]], within seconds: Double = 5) -> Bool {
        wait(seconds) {
            self.stderrLines.contains { line in alternatives.contains { $0.allSatisfy(line.contains) } }
        }
    }

    /// The port from the first line, "wspcat: listening on 127.0.0.1:NNNNN: …" (text) or
    /// {"event":"listening","address":"127.0.0.1:NNNNN",…} (JSON).
    func port(within seconds: Double = 10) throws -> Int {
        var port: Int? = nil
        _ = wait(seconds) {
            guard let line = self.stderrLines.first(where: { $0.contains("listening") }) else {
                return false
            }
            let address = line.contains("{")
                ? (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["address"] as? String
                : line.components(separatedBy: "listening on ").last?.components(separatedBy: ": ").first
            port = address?.split(separator: ":").last.flatMap { Int($0) }
            return port != nil
        }
        guard let port else {
            throw HarnessError("no 'listening on' line within \(seconds) s; stderr: \(stderr)")
        }
        return port
    }

    /// Ends a server.
    func stop() {
        if isRunning { kill(pid, SIGTERM) }
        _ = exitStatus(within: 5)
    }

    /// Each thread's voluntary context switches (`/proc/PID/task/TID/status`): how often it
    /// blocked, which for an idle thread means how often it was woken.
    func voluntarySwitches() -> [Int: Int] {
        let tasks = "/proc/\(pid)/task"
        var counts: [Int: Int] = [:]
        for tid in (try? FileManager.default.contentsOfDirectory(atPath: tasks)) ?? [] {
            guard let status = try? String(contentsOfFile: "\(tasks)/\(tid)/status", encoding: .utf8),
                  let line = status.split(separator: "\n").first(where: { $0.hasPrefix("voluntary_ctxt_switches:") }),
                  let n = Int(line.split(separator: "\t").last?.trimmingCharacters(in: .whitespaces) ?? ""),
                  let id = Int(tid)
            else { continue }
            counts[id] = n
        }
        return counts
    }

    /// Each thread's name (`/proc/PID/task/TID/comm`), for a failure's message.
    func threadNames() -> [Int: String] {
        let tasks = "/proc/\(pid)/task"
        var names: [Int: String] = [:]
        for tid in (try? FileManager.default.contentsOfDirectory(atPath: tasks)) ?? [] {
            if let id = Int(tid),
               let name = try? String(contentsOfFile: "\(tasks)/\(tid)/comm", encoding: .utf8) {
                names[id] = name.trimmingCharacters(in: .whitespacesAndNewlines)
            }
        }
        return names
    }

    /// Waits until `condition` holds or `seconds` pass; whether it held.
    func wait(_ seconds: Double, until condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            usleep(10_000)
        }
        return condition()
    }
}

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Runs `wspcat connect 127.0.0.1:port arguments…` to the end.
func connect(_ port: Int, _ arguments: [String] = [], stdin: String = "",
             host: String = "127.0.0.1") throws -> Run {
    let address = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    return try Run(["connect", address] + arguments, stdin: stdin)
}
