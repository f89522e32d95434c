import CWSP

/// What a condition function is shown about one connection request.
public struct ConnectionRequest: Sendable {
    /// The caller's address.
    public let callerAddress: Address
    /// The listener's local address.
    public let localAddress: Address
    /// The bytes the client sent with its connect, or nil when it sent none.
    public let callerData: [UInt8]?
}

/// A condition function's answer.
public enum Decision: Sendable, Equatable {
    /// Accept, answering with `calleeData` (connect-data protocol only; at most the
    /// listener's callee-data capacity, else the accept throws `.fault`).
    case accept(calleeData: [UInt8] = [])
    /// Refuse: the client's connect fails with `.connectionRefused`.
    case reject
    /// Decide later: the request stays first in the queue and the accept throws `.tryAgain`.
    case `defer`
}

/// A WSP socket. It owns its handle: the handle is closed exactly once, by `close()` or when
/// the socket goes out of scope. Being `~Copyable`, a socket cannot be used after it was
/// consumed by `close()`: the compiler refuses it.
public struct Socket: ~Copyable, @unchecked Sendable {
    // Held retained by hand (not as a strong reference) so that close() can `discard self`:
    // a consumed socket runs no deinit and so never closes its handle a second time.
    private let retainedProvider: Unmanaged<Provider>
    var provider: Provider { retainedProvider.takeUnretainedValue() }
    /// The provider handle (not a file descriptor).
    public let handle: SOCKET

    init(provider: Provider, handle: SOCKET) {
        self.retainedProvider = Unmanaged.passRetained(provider)
        self.handle = handle
    }

    deinit {
        var err: Int32 = 0
        _ = provider.table.lpWSPCloseSocket(handle, &err)
        retainedProvider.release()
    }

    /// Closes the socket now, reporting a failure the implicit close would swallow.
    public consuming func close() throws(WSPError) {
        let h = handle, p = retainedProvider
        discard self
        defer { p.release() }
        var err: Int32 = 0
        if p.takeUnretainedValue().table.lpWSPCloseSocket(h, &err) != 0 { throw WSPError(code: err) }
    }

    private func check(_ rc: Int32, _ err: Int32) throws(WSPError) {
        if rc != 0 { throw WSPError(code: err) }
    }

    public func bind(to address: Address) throws(WSPError) {
        var err: Int32 = 0
        let rc = address.withSockaddr { sa, len in provider.table.lpWSPBind(handle, sa, len, &err) }
        try check(rc, err)
    }

    public func listen(backlog: Int32) throws(WSPError) {
        var err: Int32 = 0
        try check(provider.table.lpWSPListen(handle, backlog, &err), err)
    }

    /// The socket's local address.
    public var localAddress: Address {
        get throws(WSPError) {
            var ss = sockaddr_storage()
            var len = Int32(MemoryLayout<sockaddr_storage>.size)
            var err: Int32 = 0
            let rc = withUnsafeMutablePointer(to: &ss) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    provider.table.lpWSPGetSockName(handle, $0, &len, &err)
                }
            }
            try check(rc, err)
            return Address(storage: ss)
        }
    }

    /// Sets a DWORD-valued option (`SOL_WSP` options, `SO_RCVTIMEO` in milliseconds, …).
    public func setOption(level: Int32, name: Int32, value: UInt32) throws(WSPError) {
        var v = value
        var err: Int32 = 0
        let rc = withUnsafeBytes(of: &v) { b in
            provider.table.lpWSPSetSockOpt(handle, level, name,
                                            b.baseAddress!.assumingMemoryBound(to: CChar.self),
                                            Int32(b.count), &err)
        }
        try check(rc, err)
    }

    /// Blocking or non-blocking mode (`FIONBIO`).
    public func setNonBlocking(_ on: Bool) throws(WSPError) {
        var v: UInt32 = on ? 1 : 0
        var err: Int32 = 0
        var returned: UInt32 = 0
        let rc = provider.table.lpWSPIoctl(handle, WSP_FIONBIO, &v, 4, nil, 0, &returned, nil,
                                           nil, nil, &err)
        try check(rc, err)
    }

    /// Accepts one connection, asking `condition` first (nil: accept every request). A
    /// `.defer` answer throws `.tryAgain` and leaves the request first in line; `.reject`
    /// throws `.connectionRefused`.
    public func accept(_ condition: ((ConnectionRequest) -> Decision)? = nil)
        throws(WSPError) -> Accepted
    {
        var ss = sockaddr_storage()
        var len = Int32(MemoryLayout<sockaddr_storage>.size)
        var err: Int32 = 0
        let s: SOCKET
        if let condition {
            let box = ConditionBox(condition)
            let ctx = UInt(bitPattern: Unmanaged.passUnretained(box).toOpaque())
            s = withUnsafeMutablePointer(to: &ss) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    provider.table.lpWSPAccept(handle, $0, &len, conditionTrampoline, ctx, &err)
                }
            }
            withExtendedLifetime(box) {}
        } else {
            s = withUnsafeMutablePointer(to: &ss) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    provider.table.lpWSPAccept(handle, $0, &len, nil, 0, &err)
                }
            }
        }
        if s == ~SOCKET(0) { throw WSPError(code: err) }
        return Accepted(socket: Socket(provider: provider, handle: s), peer: Address(storage: ss))
    }

    /// A blocking connect; returns the callee data the server answered with.
    public func connect(to address: Address, callerData: [UInt8]? = nil,
                        calleeCapacity: Int = Int(WSP_DEFAULT_MAX_CALLEE_DATA))
        throws(WSPError) -> [UInt8]
    {
        var callee = [UInt8](repeating: 0, count: max(calleeCapacity, 1))
        var err: Int32 = 0
        var data = callerData ?? []
        let rc: Int32 = callee.withUnsafeMutableBufferPointer { cb in
            data.withUnsafeMutableBufferPointer { db in
                var calleeBuf = WSABUF(len: UInt32(calleeCapacity),
                                       buf: UnsafeMutableRawPointer(cb.baseAddress!).assumingMemoryBound(to: CChar.self))
                var callerBuf = WSABUF(len: UInt32(db.count),
                                       buf: db.baseAddress.map { UnsafeMutableRawPointer($0).assumingMemoryBound(to: CChar.self) })
                let rc = address.withSockaddr { sa, len in
                    withUnsafeMutablePointer(to: &callerBuf) { caller in
                        provider.table.lpWSPConnect(handle, sa, len,
                                                    callerData == nil ? nil : caller,
                                                    &calleeBuf, nil, nil, &err)
                    }
                }
                if rc == 0 { err = Int32(calleeBuf.len) }
                return rc
            }
        }
        if rc != 0 { throw WSPError(code: err) }
        return Array(callee.prefix(Int(err)))
    }

    /// Sends bytes; returns how many were sent.
    @discardableResult
    public func send(_ bytes: [UInt8]) throws(WSPError) -> Int {
        var copy = bytes
        var sent: UInt32 = 0
        var err: Int32 = 0
        let rc = copy.withUnsafeMutableBufferPointer { b in
            var buf = WSABUF(len: UInt32(b.count),
                             buf: b.baseAddress.map { UnsafeMutableRawPointer($0).assumingMemoryBound(to: CChar.self) })
            return provider.table.lpWSPSend(handle, &buf, 1, &sent, 0, nil, nil, nil, &err)
        }
        try check(rc, err)
        return Int(sent)
    }

    /// Receives at most `maxCount` bytes; an empty result means the peer closed.
    public func receive(maxCount: Int) throws(WSPError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: max(maxCount, 1))
        var got: UInt32 = 0
        var flags: UInt32 = 0
        var err: Int32 = 0
        let rc = out.withUnsafeMutableBufferPointer { b in
            var buf = WSABUF(len: UInt32(maxCount),
                             buf: UnsafeMutableRawPointer(b.baseAddress!).assumingMemoryBound(to: CChar.self))
            return provider.table.lpWSPRecv(handle, &buf, 1, &got, &flags, nil, nil, nil, &err)
        }
        try check(rc, err)
        return Array(out.prefix(Int(got)))
    }
}

/// An accepted socket and its peer's address.
public struct Accepted: ~Copyable, Sendable {
    public var socket: Socket
    public let peer: Address
}

/// Carries the Swift condition closure through `dwCallbackData`.
private final class ConditionBox {
    let body: (ConnectionRequest) -> Decision
    init(_ body: @escaping (ConnectionRequest) -> Decision) { self.body = body }
}

private func bytes(_ b: UnsafeMutablePointer<WSABUF>?) -> [UInt8]? {
    guard let b, let p = b.pointee.buf else { return b == nil ? nil : [] }
    return Array(UnsafeRawBufferPointer(start: p, count: Int(b.pointee.len)))
}

private func address(_ b: UnsafeMutablePointer<WSABUF>?) -> Address {
    var ss = sockaddr_storage()
    if let b, let p = b.pointee.buf {
        withUnsafeMutableBytes(of: &ss) { dst in
            dst.copyMemory(from: UnsafeRawBufferPointer(start: p, count: min(Int(b.pointee.len), dst.count)))
        }
    }
    return Address(storage: ss)
}

/// The C condition function: a capture-free closure, so it converts to LPCONDITIONPROC.
private let conditionTrampoline: LPCONDITIONPROC = {
    callerId, callerData, _, _, calleeId, calleeData, _, ctx in
    let box = Unmanaged<ConditionBox>.fromOpaque(UnsafeRawPointer(bitPattern: ctx)!)
        .takeUnretainedValue()
    let request = ConnectionRequest(callerAddress: address(callerId),
                                    localAddress: address(calleeId),
                                    callerData: bytes(callerData))
    switch box.body(request) {
    case .reject:
        return CF_REJECT
    case .defer:
        return CF_DEFER
    case .accept(let data):
        guard let calleeData else { return CF_ACCEPT }
        if data.count > Int(calleeData.pointee.len) {
            // Report more than the capacity: the provider refuses with WSAEFAULT and
            // keeps the request, rather than silently truncating.
            calleeData.pointee.len = UInt32(data.count)
            return CF_ACCEPT
        }
        if let dst = calleeData.pointee.buf, !data.isEmpty {
            data.withUnsafeBytes { UnsafeMutableRawPointer(dst).copyMemory(from: $0.baseAddress!, byteCount: data.count) }
        }
        calleeData.pointee.len = UInt32(data.count)
        return CF_ACCEPT
    }
}
