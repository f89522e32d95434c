import CWSP
import Glibc

/// The network events one socket has reported and not yet handed to a waiter.
struct NetworkEvents: Sendable {
    /// `FD_…` bits.
    var events: Int32 = 0
    /// `iErrorCode`, indexed by `FD_…_BIT`; an entry is meaningful while its bit is set.
    var errors = [Int32](repeating: 0, count: Int(FD_MAX_EVENTS))

    /// The events a later provider call raises again (SEMANTICS §5). A waiter consumes these;
    /// `FD_CONNECT` and `FD_CLOSE` happen once, so they stay set for every later waiter.
    static let reenabled = Int32(FD_READ | FD_WRITE | FD_OOB | FD_ACCEPT | FD_QOS)
}

/// One socket's registration with the provider's event notification: an event object
/// (`WSACreateEvent`) selected for the socket's events with `lpWSPEventSelect`, whose pollable
/// descriptor (`WSAEventFd`) the poller watches.
///
/// Tasks wait here for events; the poller thread learns what fired with
/// `lpWSPEnumNetworkEvents` (which also resets the event object) and resumes them.
final class EventRegistration: Sendable {
    let provider: Provider
    let socket: SOCKET
    /// The event object, kept as its bit pattern: a C `HANDLE` is a raw pointer, which is not
    /// `Sendable`, but the handle is only a name (the provider checks it on every use).
    private let eventBits: UInt
    var event: WSAEVENT { UnsafeMutableRawPointer(bitPattern: eventBits)! }
    let fd: Int32
    let token: UInt64

    private struct Waiter {
        let mask: Int32
        let continuation: UnsafeContinuation<Result<NetworkEvents, WSPError>, Never>
    }
    private struct State {
        var fired = NetworkEvents()
        var waiters: [UInt64: Waiter] = [:]
        var nextWaiter: UInt64 = 0
        var closed = false
    }
    private let state = Locked(State())

    init(provider: Provider, socket: SOCKET, event: WSAEVENT, fd: Int32, token: UInt64) {
        self.provider = provider
        self.socket = socket
        self.eventBits = UInt(bitPattern: event)
        self.fd = fd
        self.token = token
    }

    /// Suspends until one of `mask`'s events has been reported (at once when one already
    /// was). Fails with `.operationAborted` when the task is cancelled and `.interrupted` when
    /// the socket is closed.
    func wait(for mask: Int32) async -> Result<NetworkEvents, WSPError> {
        let id = state.withLock { s in
            s.nextWaiter += 1
            return s.nextWaiter
        }
        return await withTaskCancellationHandler {
            await withUnsafeContinuation { continuation in
                let now: Result<NetworkEvents, WSPError>? = state.withLock { s in
                    if s.closed { return .failure(.interrupted) }
                    // Checked under the lock the cancellation handler takes: a cancellation
                    // either happened before (seen here) or finds the waiter in the table.
                    if Task.isCancelled { return .failure(.operationAborted) }
                    if s.fired.events & mask != 0 {
                        let fired = s.fired
                        s.fired.events &= ~(mask & NetworkEvents.reenabled)
                        return .success(fired)
                    }
                    s.waiters[id] = Waiter(mask: mask, continuation: continuation)
                    return nil
                }
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.continuation.resume(returning: .failure(.operationAborted))
        }
    }

    /// Called on the poller thread when the event object is signalled.
    func fire() {
        var ne = WSANETWORKEVENTS()
        var err: Int32 = 0
        let rc = provider.table.lpWSPEnumNetworkEvents(socket, event, &ne, &err)
        let errors = withUnsafeBytes(of: ne.iErrorCode) { Array($0.bindMemory(to: Int32.self)) }
        var ready: [(Waiter, Result<NetworkEvents, WSPError>)] = []
        state.withLock { s in
            guard !s.closed else { return }
            if rc != 0 {
                // The socket is gone under a live registration: nothing will fire again.
                for w in s.waiters.values { ready.append((w, .failure(WSPError(code: err)))) }
                s.waiters = [:]
                return
            }
            s.fired.events |= ne.lNetworkEvents
            for bit in 0..<Int(FD_MAX_EVENTS) where ne.lNetworkEvents & (1 << bit) != 0 {
                s.fired.errors[bit] = errors[bit]
            }
            var consumed: Int32 = 0
            for (id, w) in s.waiters where w.mask & s.fired.events != 0 {
                ready.append((w, .success(s.fired)))
                consumed |= w.mask
                s.waiters[id] = nil
            }
            s.fired.events &= ~(consumed & NetworkEvents.reenabled)
        }
        if rc != 0 { _ = WSAResetEvent(event) } // level-triggered: do not spin on it
        for (w, result) in ready { w.continuation.resume(returning: result) }
    }

    /// Ends every wait with `.interrupted`; later waits fail at once.
    func close() {
        let waiters = state.withLock { s in
            s.closed = true
            defer { s.waiters = [:] }
            return Array(s.waiters.values)
        }
        for w in waiters { w.continuation.resume(returning: .failure(.interrupted)) }
    }
}

/// The one thread that waits for network events on behalf of every async WSP call.
///
/// A detached pthread (not a Swift task, so it never occupies the cooperative pool) blocks
/// in `epoll_wait` over the pollable descriptors of the registered sockets' event objects,
/// level-triggered. When one is readable it asks the provider what fired
/// (`lpWSPEnumNetworkEvents`, which never blocks and resets the event object) and resumes
/// the tasks waiting for those events. Started on first use and never stopped: it holds one
/// descriptor (the epoll instance) for the life of the process.
final class Poller: Sendable {
    static let shared = Poller()

    /// Every event a registered socket is selected for.
    static let mask = Int32(FD_READ | FD_WRITE | FD_ACCEPT | FD_CONNECT | FD_CLOSE)

    private let epoll = Epoll()
    private let epfd: Int32
    private let registrations = Locked((next: UInt64(0), byToken: [UInt64: EventRegistration]()))

    private init() {
        epfd = epoll.create()
        precondition(epfd >= 0, "WSP: epoll_create1 failed (errno \(errno))")
        var thread = pthread_t()
        let me = Unmanaged.passRetained(self).toOpaque() // the thread's reference, never released
        let rc = pthread_create(&thread, nil, { arg in
            Unmanaged<Poller>.fromOpaque(arg!).takeUnretainedValue().run()
        }, me)
        precondition(rc == 0, "WSP: cannot start the poller thread (\(rc))")
        pthread_detach(thread)
    }

    private func run() -> Never {
        let buffer = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: 64)
        while true {
            for token in epoll.wait(epfd, into: buffer) {
                // A token whose registration is gone was removed while this batch was
                // collected: skip it.
                registrations.withLock { $0.byToken[token] }?.fire()
            }
        }
    }

    /// Creates an event object, selects `socket`'s events into it and starts watching it.
    func register(provider: Provider, socket: SOCKET) throws(WSPError) -> EventRegistration {
        guard let event = WSACreateEvent() else { throw WSPError(code: WSAGetLastError()) }
        let fd = WSAEventFd(event)
        let token = registrations.withLock { r in
            r.next += 1
            return r.next
        }
        let reg = EventRegistration(provider: provider, socket: socket, event: event, fd: fd,
                                    token: token)
        registrations.withLock { $0.byToken[token] = reg }
        let e = epoll.add(epfd, fd: fd, token: token)
        if e != 0 {
            registrations.withLock { $0.byToken[token] = nil }
            _ = WSACloseEvent(event)
            throw e == EMFILE || e == ENFILE ? WSPError(code: WSAEMFILE) : WSPError(code: WSAENOBUFS)
        }
        var err: Int32 = 0
        if provider.table.lpWSPEventSelect(socket, event, Poller.mask, &err) != 0 {
            unregister(reg)
            _ = WSACloseEvent(event)
            throw WSPError(code: err)
        }
        return reg
    }

    /// Stops watching `reg` and ends its waits. The caller closes the socket and then the
    /// event object (its descriptor must leave the epoll set before it is closed).
    func unregister(_ reg: EventRegistration) {
        registrations.withLock { $0.byToken[reg.token] = nil }
        epoll.remove(epfd, fd: reg.fd)
        reg.close()
    }
}
