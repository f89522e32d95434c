import Glibc
import WSP

/// `listen --check CMD`: the admission command run for one held request.
///
/// `/bin/sh -c CMD`, with wspcat's environment plus the request's details (below): the
/// request's bytes reach the command only as environment values, never as shell text. Its
/// stdin is `/dev/null`, its stdout is read (it becomes the callee data), its stderr is
/// wspcat's. It runs in a process group of its own, so that ending it (``kill()``) ends what
/// it started too.
final class AdmissionCheck: Sendable {
    let pid: pid_t
    /// The read end of the command's stdout; closed by ``finish(keeping:)``.
    private let output: Int32
    /// Whether the command has exited (it may not be reaped yet) and whether we killed it.
    /// A kill is sent only before the exit is seen: the process id stays ours until the
    /// reap, which follows.
    private let state = Locked((exited: false, killed: false))

    /// The variables set for the command, documented in `listen --help`.
    static func environment(for request: ConnectionRequest, protocolName: String)
        -> [(String, String)]
    {
        let data = request.callerData ?? []
        return [
            ("WSP_CALLER_ADDRESS", host(of: request.callerAddress)),
            ("WSP_CALLER_PORT", String(request.callerAddress.port)),
            ("WSP_CALLER_DATA_HEX", data.map { String($0, radix: 16).leftPad(2) }.joined()),
            ("WSP_CALLER_DATA_LENGTH", String(data.count)),
            ("WSP_CALLER_QOS", request.callerQoS == nil ? "0" : "1"),
            ("WSP_CALLEE_CAPACITY", String(request.calleeCapacity)),
            ("WSP_LOCAL_ADDRESS", host(of: request.localAddress)),
            ("WSP_LOCAL_PORT", String(request.localAddress.port)),
            ("WSP_PROTOCOL", protocolName),
        ]
    }

    /// `1.2.3.4` or `::1`: the address without its port or brackets.
    static func host(of address: Address) -> String {
        let text = address.description
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            return String(text[text.index(after: text.startIndex)..<close])
        }
        guard let colon = text.lastIndex(of: ":") else { return text }
        return String(text[..<colon])
    }

    /// Starts the command. Throws when it cannot be started (no descriptors, no process).
    init(command: String, environment: [(String, String)]) throws(WSPError) {
        var fds: [Int32] = [-1, -1]
        // Close-on-exec from the start: another thread may start a process at any moment,
        // and a copy of the write end in it would keep our read from ever ending. (A socket
        // pair rather than a pipe: Swift's Glibc has no pipe2.)
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0,
                         &fds) == 0 else {
            throw WSPError(code: WSPError.tooManyOpenFiles.code,
                           detail: "cannot make a channel for the check's output: \(String(cString: strerror(errno)))")
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1) // dup2 clears close-on-exec
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // A group of its own (to end it with what it started); default signals and an empty
        // mask (wspcat ignores SIGPIPE, which a command should not inherit).
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes,
                                 Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let names = Set(environment.map(\.0))
        var words = [String]()
        var p = environ
        while let entry = p.pointee {
            let text = String(cString: entry)
            let name = text.split(separator: "=", maxSplits: 1).first.map(String.init) ?? text
            if !names.contains(name) { words.append(text) } // ours win over inherited ones
            p += 1
        }
        words += environment.map { "\($0.0)=\($0.1)" }
        let env = words.map { strdup($0) } + [nil]
        let args: [String] = ["/bin/sh", "-c", command]
        let argv = args.map { strdup($0) } + [nil]
        defer {
            env.forEach { free($0) }
            argv.forEach { free($0) }
        }
        var pid = pid_t()
        let rc = posix_spawn(&pid, "/bin/sh", &actions, &attributes, argv, env)
        close(fds[1])
        guard rc == 0 else {
            close(fds[0])
            throw WSPError(code: WSPError.invalidArgument.code,
                           detail: "cannot start /bin/sh for the check: \(String(cString: strerror(rc)))")
        }
        self.pid = pid
        output = fds[0]
    }

    /// Reads the command's stdout to its end, keeping the first `limit + 1` bytes (one more
    /// than the callee data may have, to tell output that is too long), then waits for the
    /// command and reaps it. Blocks: call it on a thread of its own, once.
    func finish(keeping limit: Int) -> (status: Int32, output: [UInt8], length: Int) {
        var kept: [UInt8] = []
        var length = 0
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buf.withUnsafeMutableBytes { read(output, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            length += n
            // All of it is read, even past the limit: a command blocked on a full pipe
            // would otherwise hang until the hold deadline.
            kept += buf[..<min(n, max(0, limit + 1 - kept.count))]
        }
        close(output)
        // Seen exited but not yet reaped: kill() stops sending from here on.
        var info = siginfo_t()
        while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) < 0 && errno == EINTR {}
        state.withLock { $0.exited = true }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let signal = status & 0x7f
        return (signal == 0 ? (status >> 8) & 0xff : 128 + signal, kept, length)
    }

    /// Ends the command and everything in its process group (`SIGKILL`), unless it has
    /// exited already. Any thread, any number of times.
    func kill() {
        state.withLock { s in
            guard !s.exited else { return }
            s.killed = true
            _ = Glibc.kill(-pid, SIGKILL)
        }
    }

    /// Whether ``kill()`` ended it.
    var wasKilled: Bool { state.withLock { $0.killed } }
}

extension AdmissionCheck {
    /// A check runs in a process group of its own, which a terminal's Ctrl-C or a `kill` of
    /// wspcat does not reach. So with --check, SIGINT, SIGTERM and SIGHUP are taken by a
    /// thread of their own, which kills the running checks (`running()`) and then ends
    /// wspcat by the same signal, as it would have ended without this. Call it before any
    /// other thread starts: threads inherit the signals blocked here.
    static func endChecksOnTermination(_ running: @escaping @Sendable () -> [AdmissionCheck]) {
        var signals = sigset_t()
        sigemptyset(&signals)
        for s in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&signals, s) }
        pthread_sigmask(SIG_BLOCK, &signals, nil)
        let taken = signals
        Thread.detach {
            var set = taken
            var received: Int32 = 0
            while sigwait(&set, &received) != 0 {}
            for check in running() { check.kill() }
            signal(received, SIG_DFL)
            pthread_sigmask(SIG_UNBLOCK, &set, nil)
            raise(received)
        }
    }
}
