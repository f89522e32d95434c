import CWSP

/// A failure reported by the provider: a Winsock error code with its name and meaning.
///
/// Compare with the static members, which name the C constants:
/// `error == .connectionRefused` means `WSAECONNREFUSED`. Equality and hashing look at the
/// code alone, so an error that carries a ``refusal`` reason or a ``detail`` still matches
/// `catch .connectionRefused`.
public struct WSPError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The Winsock code (`WSAE…`, `WSATRY_AGAIN`, `WSA_…`).
    public let code: Int32
    /// Why a connect-data server refused the connect, when it said (`WSP_REFUSE_REASON`).
    public let refusal: RefusalReason?
    /// What was wrong, in words, when the Swift layer found the mistake itself (a bad
    /// option value, an address that does not parse).
    public let detail: String?

    public init(code: Int32) { self.init(code: code, refusal: nil, detail: nil) }

    public init(code: Int32, refusal: RefusalReason? = nil, detail: String? = nil) {
        self.code = code
        self.refusal = refusal
        self.detail = detail
    }

    /// `.invalidArgument` saying what is wrong.
    static func invalid(_ detail: String) -> WSPError {
        WSPError(code: WSAEINVAL, detail: detail)
    }

    public static func == (a: WSPError, b: WSPError) -> Bool { a.code == b.code }
    public func hash(into h: inout Hasher) { h.combine(code) }

    /// The C constant's name, such as `"WSAECONNREFUSED"`.
    public var name: String {
        code == WSPError.hostNotFound.code ? "WSAHOST_NOT_FOUND" : String(cString: WSPErrorName(code))
    }
    /// What the code means, in one line.
    public var meaning: String {
        code == WSPError.hostNotFound.code ? "The host name is not known."
            : String(cString: WSPErrorString(code))
    }
    public var description: String {
        var text = "\(name) (\(code)): \(detail ?? meaning)"
        if let refusal { text += " (\(refusal))" }
        return text
    }

    /// `WSAECONNREFUSED`: the condition function rejected the request, the backlog was
    /// full, or nothing listens there.
    public static let connectionRefused = WSPError(code: WSAECONNREFUSED)
    /// `WSATRY_AGAIN`: the condition function deferred the request; it stays first in line.
    public static let tryAgain = WSPError(code: WSATRY_AGAIN)
    /// `WSAEWOULDBLOCK`: a non-blocking call cannot complete now.
    public static let wouldBlock = WSPError(code: WSAEWOULDBLOCK)
    /// `WSAETIMEDOUT`: the operation timed out.
    public static let timedOut = WSPError(code: WSAETIMEDOUT)
    /// `WSAECONNRESET`: the peer reset the connection.
    public static let connectionReset = WSPError(code: WSAECONNRESET)
    /// `WSAECONNABORTED`: the connection was aborted, or the peer does not speak WSP.
    public static let connectionAborted = WSPError(code: WSAECONNABORTED)
    /// `WSAEFAULT`: a buffer is too small or data too long (e.g. callee data over capacity).
    public static let fault = WSPError(code: WSAEFAULT)
    /// `WSAEINVAL`: an argument or the socket's state does not fit the call.
    public static let invalidArgument = WSPError(code: WSAEINVAL)
    /// `WSAENOTSOCK`: the handle is unknown or closed.
    public static let notSocket = WSPError(code: WSAENOTSOCK)
    /// `WSAEINTR`: the socket was closed while the call waited.
    public static let interrupted = WSPError(code: WSAEINTR)
    /// `WSAEISCONN`: the socket is already connected.
    public static let alreadyConnected = WSPError(code: WSAEISCONN)
    /// `WSAEADDRINUSE`: the address is in use.
    public static let addressInUse = WSPError(code: WSAEADDRINUSE)
    /// `WSA_OPERATION_ABORTED`: the task waiting for the operation was cancelled.
    public static let operationAborted = WSPError(code: WSA_OPERATION_ABORTED)
    /// `WSAEMFILE`: the process is out of file descriptors.
    public static let tooManyOpenFiles = WSPError(code: WSAEMFILE)
    /// `WSAEADDRNOTAVAIL`: the address is not valid here (for example all zeros).
    public static let addressNotAvailable = WSPError(code: WSAEADDRNOTAVAIL)
    /// `WSAENOTCONN`: the socket is not connected.
    public static let notConnected = WSPError(code: WSAENOTCONN)
    /// `WSAHOST_NOT_FOUND` (11001): a host name did not resolve (``Address/resolve(_:port:)``).
    public static let hostNotFound = WSPError(code: 11001)
    /// `WSAENOPROTOOPT`: the option is unknown at that level or does not apply to the socket.
    public static let optionNotSupported = WSPError(code: WSAENOPROTOOPT)
    /// `WSAEPROTONOSUPPORT`: the protocol cannot do what was asked (for example connect data
    /// on plain TCP).
    public static let protocolNotSupported = WSPError(code: WSAEPROTONOSUPPORT)
    /// `WSANOTINITIALISED`: the provider is not started.
    public static let notInitialised = WSPError(code: WSANOTINITIALISED)
}

/// Why a connect-data request was refused or dropped (`WSP_REASON_…`): what the client reads
/// after a refused connect (``WSPError/refusal``) and what a listener reports of the requests
/// it ended on its own (``AcceptOutcome/dropped(caller:reason:)``).
public enum RefusalReason: Hashable, Sendable, CustomStringConvertible {
    /// The server's condition function rejected the request.
    case rejected
    /// The listener's backlog was full.
    case backlogFull
    /// The listener closed before it decided.
    case closing
    /// The caller data or QoS was longer than the listener takes (`WSP_MAX_CALLER_DATA`).
    case dataTooLong
    /// The request broke the protocol (`docs/PROTOCOL.md`).
    case malformed
    /// The request was not whole within the listener's handshake deadline.
    case handshakeTimeout
    /// The server's callee data did not fit the client's callee buffer.
    case calleeDataTooLong
    /// The client's overall connect limit passed before the server decided.
    case expired
    /// The server held the request past its hold deadline (`WSP_HOLD_DEADLINE`) unanswered.
    case holdTimeout
    /// A reason this module does not know (a newer provider).
    case other(UInt32)

    init?(code: UInt32) {
        switch Int32(bitPattern: code) {
        case WSP_REASON_NONE: return nil
        case WSP_REASON_REJECTED: self = .rejected
        case WSP_REASON_BACKLOG_FULL: self = .backlogFull
        case WSP_REASON_CLOSING: self = .closing
        case WSP_REASON_DATA_TOO_LONG: self = .dataTooLong
        case WSP_REASON_MALFORMED: self = .malformed
        case WSP_REASON_HANDSHAKE_TIMEOUT: self = .handshakeTimeout
        case WSP_REASON_CALLEE_DATA_TOO_LONG: self = .calleeDataTooLong
        case WSP_REASON_EXPIRED: self = .expired
        case WSP_REASON_HOLD_TIMEOUT: self = .holdTimeout
        default: self = .other(code)
        }
    }

    /// The C constant's name, such as `"WSP_REASON_BACKLOG_FULL"`.
    public var name: String {
        switch self {
        case .rejected: "WSP_REASON_REJECTED"
        case .backlogFull: "WSP_REASON_BACKLOG_FULL"
        case .closing: "WSP_REASON_CLOSING"
        case .dataTooLong: "WSP_REASON_DATA_TOO_LONG"
        case .malformed: "WSP_REASON_MALFORMED"
        case .handshakeTimeout: "WSP_REASON_HANDSHAKE_TIMEOUT"
        case .calleeDataTooLong: "WSP_REASON_CALLEE_DATA_TOO_LONG"
        case .expired: "WSP_REASON_EXPIRED"
        case .holdTimeout: "WSP_REASON_HOLD_TIMEOUT"
        case .other(let code): "WSP_REASON_\(code)"
        }
    }

    public var description: String {
        switch self {
        case .rejected: "rejected by the server's condition function"
        case .backlogFull: "the server's backlog was full"
        case .closing: "the listener closed before deciding"
        case .dataTooLong: "the caller data or QoS was longer than the server takes"
        case .malformed: "the request broke the protocol"
        case .handshakeTimeout: "the request was not complete within the server's handshake deadline"
        case .calleeDataTooLong: "the server's callee data did not fit the client's callee buffer"
        case .expired: "the client's connect limit passed before the server decided"
        case .holdTimeout: "the server held the request past its hold deadline"
        case .other(let code): "reason \(code)"
        }
    }
}
