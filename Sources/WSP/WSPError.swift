import CWSP

/// A failure reported by the provider: a Winsock error code with its name and meaning.
///
/// Compare with the static members, which name the C constants:
/// `error == .connectionRefused` means `WSAECONNREFUSED`.
public struct WSPError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The Winsock code (`WSAE…`, `WSATRY_AGAIN`, `WSA_…`).
    public let code: Int32

    public init(code: Int32) { self.code = code }

    /// The C constant's name, such as `"WSAECONNREFUSED"`.
    public var name: String { String(cString: WSPErrorName(code)) }
    /// What the code means, in one line.
    public var meaning: String { String(cString: WSPErrorString(code)) }
    public var description: String { "\(name) (\(code)): \(meaning)" }

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
    /// `WSANOTINITIALISED`: the provider is not started.
    public static let notInitialised = WSPError(code: WSANOTINITIALISED)
}
