import CWSP
import Glibc
import WSP

/// A connected socket shared by the threads that pump its two directions. A WSP socket is a
/// provider handle, not a file descriptor, so it cannot be handed to a child process or to
/// `poll`: bytes are copied by one thread per direction. The socket closes when the last
/// thread lets go of the stream.
final class Stream: Sendable {
    /// What owns the socket: an accepted connection, or a socket we connected.
    enum Owner: ~Copyable, Sendable {
        case accepted(Accepted)
        case connected(Socket)
    }

    private let owner: Owner
    let peer: String
    private let counts = Locked((received: 0, sent: 0))

    init(_ owner: consuming Owner, peer: String) {
        self.owner = owner
        self.peer = peer
    }

    private func withSocket<R, E: Error>(_ body: (borrowing Socket) throws(E) -> R) throws(E) -> R {
        switch owner {
        case .accepted(let accepted): try body(accepted.socket)
        case .connected(let socket): try body(socket)
        }
    }

    var received: Int { counts.withLock { $0.received } }
    var sent: Int { counts.withLock { $0.sent } }

    /// Blocking mode: an accepted socket inherits the listener's non-blocking mode, and the
    /// pumps want to wait.
    func setBlocking() throws(WSPError) {
        try withSocket { s throws(WSPError) in try s.setNonBlocking(false) }
    }

    /// Sends all of `bytes`.
    func send(_ bytes: [UInt8]) throws(WSPError) {
        var done = 0
        while done < bytes.count {
            let rest = done == 0 ? bytes : Array(bytes[done...])
            done += try withSocket { s throws(WSPError) in try s.send(rest) }
        }
        counts.withLock { $0.sent += bytes.count }
    }

    /// At most 64 KiB; empty when the peer has closed its side.
    func receive() throws(WSPError) -> [UInt8] {
        let bytes = try withSocket { s throws(WSPError) in try s.receive(maxCount: 65536) }
        counts.withLock { $0.received += bytes.count }
        return bytes
    }

    /// Ends one direction (`.sending`: tell the peer we are done; `.receiving`/`.both`
    /// also wake a thread blocked in `receive`). A failure (the peer has gone) changes
    /// nothing for the caller.
    func shutdown(_ direction: Socket.ShutdownDirection) {
        withSocket { s in try? s.shutdown(direction) }
    }
}

// ---- byte pumps ----------------------------------------------------------------------------

/// Copies `fd` into `stream` until end of file, then shuts down the stream's sending side so
/// the peer sees the end too.
func pump(from fd: Int32, to stream: Stream) {
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        do { try stream.send(Array(buf[..<n])) } catch { break }
    }
    stream.shutdown(.sending)
}

/// Copies `stream` into `fd` until the peer closes; the error that ended it, if any.
@discardableResult
func pump(from stream: Stream, to fd: Int32) -> WSPError? {
    while true {
        let bytes: [UInt8]
        do { bytes = try stream.receive() } catch { return error }
        if bytes.isEmpty { return nil }
        if !writeAll(fd, bytes) { return nil } // the reader went away: stop copying
    }
}

func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return false }
        done += n
    }
    return true
}

// ---- threads ---------------------------------------------------------------------------------

/// A joinable thread of its own: the pumps block in system calls, which must never happen on
/// Swift's cooperative pool.
struct Thread {
    private let id: pthread_t

    init(_ body: @escaping @Sendable () -> Void) {
        final class Box { let body: @Sendable () -> Void; init(_ b: @escaping @Sendable () -> Void) { body = b } }
        let arg = Unmanaged.passRetained(Box(body)).toOpaque()
        var id = pthread_t()
        let rc = pthread_create(&id, nil, { arg in
            let box = Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue()
            box.body()
            return nil
        }, arg)
        precondition(rc == 0, "pthread_create failed: \(rc)")
        self.id = id
    }

    func join() { pthread_join(id, nil) }

    /// Starts `body` and forgets it.
    static func detach(_ body: @escaping @Sendable () -> Void) {
        pthread_detach(Thread(body).id)
    }
}

// ---- child processes ---------------------------------------------------------------------------

/// `/bin/sh -c command` with its stdin and stdout connected to us (stderr is ours).
struct Child {
    let pid: pid_t
    let stdinFD: Int32   // we write the connection's bytes here
    let stdoutFD: Int32  // and send what the command prints

    init(command: String) throws(WSPError) {
        // Close-on-exec from the start: a command started at the same moment for another
        // connection must not inherit these ends (it would hold the connection open). Socket
        // pairs rather than pipes, one per direction: Swift's Glibc has no pipe2.
        var toChild: [Int32] = [-1, -1], fromChild: [Int32] = [-1, -1]
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        guard socketpair(AF_UNIX, type, 0, &toChild) == 0 else { throw WSPError(code: WSAEMFILE) }
        guard socketpair(AF_UNIX, type, 0, &fromChild) == 0 else {
            close(toChild[0]); close(toChild[1])
            throw WSPError(code: WSAEMFILE)
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // dup2 clears close-on-exec on the new descriptors; the pairs' own ends close at exec.
        posix_spawn_file_actions_adddup2(&actions, toChild[0], 0)
        posix_spawn_file_actions_adddup2(&actions, fromChild[1], 1)
        // Default signals and an empty mask: wspcat ignores SIGPIPE (an ignored signal stays
        // ignored across exec) and, with --check, blocks the terminating ones
        // (AdmissionCheck.endChecksOnTermination); the command should have neither.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let args: [String] = ["/bin/sh", "-c", command]
        let argv = args.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid = pid_t()
        let rc = posix_spawn(&pid, "/bin/sh", &actions, &attributes, argv, environ)
        close(toChild[0])
        close(fromChild[1])
        guard rc == 0 else {
            close(toChild[1]); close(fromChild[0])
            throw WSPError(code: WSAEINVAL)
        }
        self.pid = pid
        stdinFD = toChild[1]
        stdoutFD = fromChild[0]
    }

    /// Waits for the command to end; its exit status (128 + signal when killed).
    func wait() -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }
}
