import CWSP
import Glibc

/// A socket option with a Swift value: `try socket.set(.connectTimeout, to: .seconds(5))`,
/// `try socket.option(.maxCallerData)`.
///
/// Values are checked before they reach the provider: a negative or zero duration where the
/// option needs a positive one, a duration past the option's limit or a byte count above
/// `maxConnectData` throws ``WSPError/invalidArgument`` with a ``WSPError/detail`` that
/// names the option and the allowed range. Nothing is rounded into range silently; a
/// duration is kept to whole milliseconds, rounding a fraction up.
public struct SocketOption<Value: Sendable>: Sendable {
    let level: Int32
    let name: Int32
    let label: String
    let encode: @Sendable (Value) throws(WSPError) -> UInt32
    let decode: @Sendable (UInt32) -> Value
}

extension SocketOption where Value == Duration {
    /// How long a connect waits for the server's answer while the server is silent
    /// (`WSP_CONNECT_TIMEOUT`; default 30 s). A server that is deferring keeps it alive.
    public static var connectTimeout: Self { milliseconds(WSP_CONNECT_TIMEOUT, "connectTimeout") }
    /// How long a listener waits for a whole request (`WSP_HANDSHAKE_DEADLINE`; default 5 s).
    public static var handshakeDeadline: Self {
        milliseconds(WSP_HANDSHAKE_DEADLINE, "handshakeDeadline")
    }
    /// How often a listener tells a deferred client "still pending" (`WSP_PENDING_INTERVAL`;
    /// default 1 s).
    public static var pendingInterval: Self { milliseconds(WSP_PENDING_INTERVAL, "pendingInterval") }

    static func milliseconds(_ name: Int32, _ label: String) -> Self {
        SocketOption(level: SOL_WSP, name: name, label: label,
                     encode: { value throws(WSPError) in try millisecondsValue(value, label) },
                     decode: { .milliseconds($0) })
    }
}

extension SocketOption where Value == Duration? {
    /// The overall limit on a connect-data connect, deferrals included (`WSP_CONNECT_LIMIT`;
    /// nil, the default: none).
    public static var connectLimit: Self {
        SocketOption(level: SOL_WSP, name: WSP_CONNECT_LIMIT, label: "connectLimit",
                     encode: { value throws(WSPError) in
                         try value.map { d throws(WSPError) in try millisecondsValue(d, "connectLimit") } ?? 0
                     },
                     decode: { $0 == 0 ? nil : .milliseconds($0) })
    }

    /// How long a listener may hold a request (``HeldRequest``) before the provider refuses
    /// its client (``RefusalReason/holdTimeout``) and ends it (``HeldEnd/timedOut``)
    /// (`WSP_HOLD_DEADLINE`; default 30 s; nil: none, the client's own limits still apply).
    /// Applies to requests held from then on.
    public static var holdDeadline: Self {
        SocketOption(level: SOL_WSP, name: WSP_HOLD_DEADLINE, label: "holdDeadline",
                     encode: { value throws(WSPError) in
                         try value.map { d throws(WSPError) in try millisecondsValue(d, "holdDeadline") } ?? 0
                     },
                     decode: { $0 == 0 ? nil : .milliseconds($0) })
    }
}

extension SocketOption where Value == Int {
    /// The most caller data this socket sends (client) or takes (listener)
    /// (`WSP_MAX_CALLER_DATA`; default 1024, at most ``maxConnectData``).
    public static var maxCallerData: Self { byteCount(WSP_MAX_CALLER_DATA, "maxCallerData") }
    /// The most callee data a listener's condition function may answer with
    /// (`WSP_MAX_CALLEE_DATA`; default 1024, at most ``maxConnectData``).
    public static var maxCalleeData: Self { byteCount(WSP_MAX_CALLEE_DATA, "maxCalleeData") }
    /// The kernel's receive buffer (`SO_RCVBUF`), in bytes.
    public static var receiveBufferSize: Self { size(SO_RCVBUF, "receiveBufferSize") }
    /// The kernel's send buffer (`SO_SNDBUF`), in bytes.
    public static var sendBufferSize: Self { size(SO_SNDBUF, "sendBufferSize") }

    static func byteCount(_ name: Int32, _ label: String) -> Self {
        SocketOption(level: SOL_WSP, name: name, label: label,
                     encode: { value throws(WSPError) in
                         guard (0...maxConnectData).contains(value) else {
                             throw .invalid("\(label) must be from 0 to \(maxConnectData) bytes, not \(value)")
                         }
                         return UInt32(value)
                     },
                     decode: { Int($0) })
    }

    static func size(_ name: Int32, _ label: String) -> Self {
        SocketOption(level: SOL_SOCKET, name: name, label: label,
                     encode: { value throws(WSPError) in
                         guard value > 0, value <= Int(Int32.max) else {
                             throw .invalid("\(label) must be a positive number of bytes, not \(value)")
                         }
                         return UInt32(value)
                     },
                     decode: { Int($0) })
    }

    /// The largest caller or callee data the protocol carries (`WSP_MAX_CONNECT_DATA`).
    public static var maxConnectData: Int { Int(WSP_MAX_CONNECT_DATA) }
}

extension SocketOption where Value == Bool {
    /// Send small segments at once (`TCP_NODELAY`).
    public static var noDelay: Self { flag(IPPROTO_TCP_LEVEL, TCP_NODELAY_NAME, "noDelay") }
    /// Bind to an address still in use by a closed connection (`SO_REUSEADDR`).
    public static var reuseAddress: Self { flag(SOL_SOCKET, SO_REUSEADDR, "reuseAddress") }
    /// TCP keep-alive probes on an idle connection (`SO_KEEPALIVE`).
    public static var keepAlive: Self { flag(SOL_SOCKET, SO_KEEPALIVE, "keepAlive") }

    static func flag(_ level: Int32, _ name: Int32, _ label: String) -> Self {
        SocketOption(level: level, name: name, label: label,
                     encode: { $0 ? 1 : 0 }, decode: { $0 != 0 })
    }
}

// <netinet/tcp.h> is not part of the module map; these are Linux's values.
private let IPPROTO_TCP_LEVEL = Int32(6)
private let TCP_NODELAY_NAME = Int32(1)

/// A duration as the provider's DWORD milliseconds: positive, at most `UInt32.max` ms, a
/// fraction of a millisecond rounded up (never down to 0).
func millisecondsValue(_ d: Duration, _ label: String) throws(WSPError) -> UInt32 {
    let (seconds, attoseconds) = d.components
    guard d > .zero else {
        throw .invalid("\(label) must be a positive duration, not \(d)")
    }
    let limit = Int64(UInt32.max) / 1000
    guard seconds < limit else {
        throw .invalid("\(label) must be at most \(limit) seconds (\(UInt32.max) ms), not \(d)")
    }
    let ms = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
    return UInt32(ms)
}

extension Socket {
    /// Sets a typed option; a bad value throws ``WSPError/invalidArgument`` saying why.
    public func set<Value>(_ option: SocketOption<Value>, to value: Value) throws(WSPError) {
        let raw = try option.encode(value)
        do throws(WSPError) {
            try core.setOption(level: option.level, name: option.name, raw)
        } catch {
            throw WSPError(code: error.code, detail: "setting \(option.label): \(error.meaning)")
        }
    }

    /// Reads a typed option.
    public func option<Value>(_ option: SocketOption<Value>) throws(WSPError) -> Value {
        option.decode(try core.option(level: option.level, name: option.name))
    }
}
