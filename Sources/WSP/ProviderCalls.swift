import CWSP

// The one place this module calls the provider's function table. Each member is wrapped
// once, in the provider's own terms (handles, sockaddr pointers, WSABUFs), and turns the
// `lpErrno` convention into a typed throw or a `Result`; everything above it speaks Swift.
// A new provider call belongs here, not at its first user.

/// `INVALID_SOCKET`.
let invalidSocket = ~SOCKET(0)

extension WSPPROC_TABLE {
    func socket(catalogEntry: DWORD) throws(WSPError) -> SOCKET {
        var info = WSAPROTOCOL_INFO()
        info.dwCatalogEntryId = catalogEntry
        var err: Int32 = 0
        let s = lpWSPSocket(0, 0, 0, &info, 0, 0, &err)
        if s == invalidSocket { throw WSPError(code: err) }
        return s
    }

    func close(_ s: SOCKET) -> WSPError? {
        var err: Int32 = 0
        return lpWSPCloseSocket(s, &err) == 0 ? nil : WSPError(code: err)
    }

    func cleanup() {
        var err: Int32 = 0
        _ = lpWSPCleanup(&err)
    }

    func bind(_ s: SOCKET, to address: Address) throws(WSPError) {
        var err: Int32 = 0
        let rc = address.withSockaddr { sa, len in lpWSPBind(s, sa, len, &err) }
        try check(rc, err)
    }

    func listen(_ s: SOCKET, backlog: Int32) throws(WSPError) {
        var err: Int32 = 0
        try check(lpWSPListen(s, backlog, &err), err)
    }

    func localAddress(_ s: SOCKET) throws(WSPError) -> Address {
        var err: Int32 = 0
        var rc: Int32 = 0
        let address = Address.filling { sa, len in rc = lpWSPGetSockName(s, sa, len, &err) }
        try check(rc, err)
        return address
    }

    func shutdown(_ s: SOCKET, how: Int32) throws(WSPError) {
        var err: Int32 = 0
        try check(lpWSPShutdown(s, how, &err), err)
    }

    /// `lpWSPSetSockOpt` with the option's bytes.
    func setOption(_ s: SOCKET, level: Int32, name: Int32, bytes: UnsafeRawBufferPointer)
        throws(WSPError)
    {
        var err: Int32 = 0
        let rc = lpWSPSetSockOpt(s, level, name, bytes.baseAddress?.assumingMemoryBound(to: CChar.self),
                                 Int32(bytes.count), &err)
        try check(rc, err)
    }

    /// `lpWSPGetSockOpt` into `bytes`; how many the provider wrote.
    func option(_ s: SOCKET, level: Int32, name: Int32, into bytes: UnsafeMutableRawBufferPointer)
        throws(WSPError) -> Int
    {
        var err: Int32 = 0
        var len = Int32(bytes.count)
        let rc = lpWSPGetSockOpt(s, level, name, bytes.baseAddress?.assumingMemoryBound(to: CChar.self),
                                 &len, &err)
        try check(rc, err)
        return Int(len)
    }

    func ioctl(_ s: SOCKET, _ code: UInt32, input: UnsafeMutableRawBufferPointer?,
               output: UnsafeMutableRawBufferPointer) throws(WSPError)
    {
        var returned: UInt32 = 0
        var err: Int32 = 0
        let rc = lpWSPIoctl(s, code, input?.baseAddress, UInt32(input?.count ?? 0),
                            output.baseAddress, UInt32(output.count), &returned, nil, nil, nil, &err)
        try check(rc, err)
    }

    func asyncSelect(_ s: SOCKET, window: HWND, message: UInt32, events: Int32) throws(WSPError) {
        var err: Int32 = 0
        try check(lpWSPAsyncSelect(s, window, message, events, &err), err)
    }

    /// `lpWSPAccept` with a condition function and its context (0 and nil: none).
    func accept(_ s: SOCKET, condition: LPCONDITIONPROC?, context: DWORD_PTR)
        -> Result<(SOCKET, Address), WSPError>
    {
        var err: Int32 = 0
        var accepted = invalidSocket
        let peer = Address.filling { sa, len in
            accepted = lpWSPAccept(s, sa, len, condition, context, &err)
        }
        return accepted == invalidSocket ? .failure(WSPError(code: err)) : .success((accepted, peer))
    }

    func send(_ s: SOCKET, _ buffer: UnsafeRawBufferPointer) -> Result<Int, WSPError> {
        var sent: UInt32 = 0
        var err: Int32 = 0
        // WSABUF's pointer is mutable for both directions; a send only reads through it.
        var buf = WSABUF(len: UInt32(buffer.count),
                         buf: buffer.baseAddress.map { UnsafeMutablePointer(mutating: $0.assumingMemoryBound(to: CChar.self)) })
        let rc = lpWSPSend(s, &buf, 1, &sent, 0, nil, nil, nil, &err)
        return rc == 0 ? .success(Int(sent)) : .failure(WSPError(code: err))
    }

    func receive(_ s: SOCKET, into buffer: UnsafeMutableRawBufferPointer) -> Result<Int, WSPError> {
        var got: UInt32 = 0
        var flags: UInt32 = 0
        var err: Int32 = 0
        var buf = WSABUF(len: UInt32(buffer.count),
                         buf: buffer.baseAddress?.assumingMemoryBound(to: CChar.self))
        let rc = lpWSPRecv(s, &buf, 1, &got, &flags, nil, nil, nil, &err)
        return rc == 0 ? .success(Int(got)) : .failure(WSPError(code: err))
    }

    func connect(_ s: SOCKET, to address: Address, caller: UnsafeMutablePointer<WSABUF>?,
                 callee: UnsafeMutablePointer<WSABUF>?, qos: UnsafeMutablePointer<QOS>?)
        throws(WSPError)
    {
        var err: Int32 = 0
        let rc = address.withSockaddr { sa, len in
            lpWSPConnect(s, sa, len, caller, callee, qos, nil, &err)
        }
        try check(rc, err)
    }

    private func check(_ rc: Int32, _ err: Int32) throws(WSPError) {
        if rc != 0 { throw WSPError(code: err) }
    }
}
