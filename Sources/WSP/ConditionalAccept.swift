import CWSP

/// What a condition function is shown about one connection request.
public struct ConnectionRequest: Sendable, Hashable {
    /// The caller's address.
    public let callerAddress: Address
    /// The listener's local address.
    public let localAddress: Address
    /// The bytes the client sent with its connect, or nil when it sent none.
    public let callerData: [UInt8]?
    /// The QoS the client asked for, or nil when it asked for none.
    public let callerQoS: QoS?
    /// The most callee data an accept can answer this client with: the smaller of the
    /// client's callee buffer and the listener's `maxCalleeData` (0 on plain TCP). Callee
    /// data longer than this fails the accept with ``WSPError/fault``.
    public let calleeCapacity: Int

    public init(callerAddress: Address, localAddress: Address, callerData: [UInt8]? = nil,
                callerQoS: QoS? = nil, calleeCapacity: Int = 0) {
        self.callerAddress = callerAddress
        self.localAddress = localAddress
        self.callerData = callerData
        self.callerQoS = callerQoS
        self.calleeCapacity = calleeCapacity
    }
}

/// A condition function's answer.
public enum Decision: Sendable, Equatable {
    /// Accept, answering with `calleeData` (connect-data protocol only; at most the request's
    /// ``ConnectionRequest/calleeCapacity``, else the accept throws `.fault`: the provider
    /// ends that request and the client's connect fails with ``RefusalReason/calleeDataTooLong``)
    /// and, when the caller asked for QoS, the QoS agreed (nil: the caller's request
    /// unchanged). The agreed QoS may not carry more provider-specific bytes than the
    /// request did, else the accept throws `.invalidArgument` and the request stays.
    case accept(calleeData: [UInt8] = [], qos: QoS? = nil)
    /// Refuse: the client's connect fails with `.connectionRefused`.
    case reject
    /// Decide later: the request stays first in the queue and the accept throws `.tryAgain`.
    case `defer`
}

func bytes(_ b: UnsafeMutablePointer<WSABUF>?) -> [UInt8]? {
    guard let b else { return nil }
    guard let p = b.pointee.buf, b.pointee.len > 0 else { return [] }
    return Array(UnsafeRawBufferPointer(start: p, count: Int(b.pointee.len)))
}

func address(_ b: UnsafeMutablePointer<WSABUF>?) -> Address {
    var ss = sockaddr_storage()
    if let b, let p = b.pointee.buf {
        withUnsafeMutableBytes(of: &ss) { dst in
            dst.copyMemory(from: UnsafeRawBufferPointer(start: p, count: min(Int(b.pointee.len), dst.count)))
        }
    }
    return Address(storage: ss)
}

/// Not one of CF_ACCEPT, CF_REJECT, CF_DEFER: the provider answers `WSAEINVAL` and keeps the
/// request.
private let invalidAnswer: Int32 = 0x7fff

/// What `dwCallbackData` points to: a Swift condition closure on the stack of
/// `SocketCore.acceptOnce`, alive for the length of the synchronous `lpWSPAccept` call on
/// the calling thread. In a struct, so that the closure is stored as it is (a bare function
/// value behind a generic pointer would need a reabstraction thunk: an allocation per
/// accept). Internal callers may pass closures that are not `@Sendable`: the call is
/// synchronous.
struct ConditionFunction {
    let body: (ConnectionRequest) -> Decision
}

/// The C condition function: a capture-free closure, so it converts to `LPCONDITIONPROC`.
let conditionTrampoline: LPCONDITIONPROC = {
    callerId, callerData, sqos, _, calleeId, calleeData, _, ctx in
    let body = UnsafePointer<ConditionFunction>(bitPattern: ctx)!.pointee.body
    let request = ConnectionRequest(callerAddress: address(callerId),
                                    localAddress: address(calleeId),
                                    callerData: bytes(callerData),
                                    callerQoS: sqos.map { QoS($0.pointee) },
                                    calleeCapacity: Int(calleeData?.pointee.len ?? 0))
    switch body(request) {
    case .reject:
        return CF_REJECT
    case .defer:
        return CF_DEFER
    case .accept(let data, let qos):
        if let qos, let sqos {
            if qos.providerSpecific.count > Int(sqos.pointee.ProviderSpecific.len) {
                return invalidAnswer
            }
            qos.write(to: sqos)
        }
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
