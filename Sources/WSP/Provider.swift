import CWSP

/// The started provider: `WSPStartup` on creation, `lpWSPCleanup` when the last reference
/// goes away. Sockets keep their provider alive.
///
/// `Provider` is an immutable class holding the provider's function table, so it is
/// `Sendable` and may be shared by every task.
///
/// The start-up passes an upcall table of this module's: the built-in upcalls, except that
/// the network events of async sockets are handed straight to the waiting tasks. It behaves
/// as the built-in table for everything else, so C code in the same process is unaffected;
/// and if C code starts the provider later with a table of its own, async calls keep working
/// (one thread hop slower) until the next `Provider` is created.
public final class Provider: Sendable {
    let table: WSPPROC_TABLE

    /// Starts the provider, asking for Winsock 2.2.
    public init() throws(WSPError) {
        var data = WSPDATA()
        var table = WSPPROC_TABLE()
        let rc = WSPStartup(0x0202, &data, nil, Notifier.upcalls, &table)
        if rc != 0 { throw WSPError(code: rc) }
        self.table = table
    }

    deinit {
        table.cleanup()
    }

    /// The protocols a socket can speak.
    public enum TransportProtocol: Sendable {
        /// Plain TCP: talks to any TCP peer; the condition function sees addresses only.
        case tcp
        /// WSP's connect-data protocol: caller and callee data, QoS, and a decision the
        /// client sees (`docs/PROTOCOL.md`). Both ends must be WSP.
        case tcpWithConnectData

        func catalogEntry(family: Address.Family) -> DWORD {
            switch (self, family == .ipv6) {
            case (.tcp, false): DWORD(WSP_CATALOG_TCP_IPV4)
            case (.tcp, true): DWORD(WSP_CATALOG_TCP_IPV6)
            case (.tcpWithConnectData, false): DWORD(WSP_CATALOG_CDATA_IPV4)
            case (.tcpWithConnectData, true): DWORD(WSP_CATALOG_CDATA_IPV6)
            }
        }
    }

    /// Creates a socket of `proto` for `family`.
    public func socket(family: Address.Family, protocol proto: TransportProtocol) throws(WSPError)
        -> Socket
    {
        Socket(provider: self, handle: try table.socket(catalogEntry: proto.catalogEntry(family: family)))
    }

    /// The protocol a connect uses: the one asked for, else connect data when the call
    /// carries any (caller data, QoS) and plain TCP otherwise. Connect data asked of plain TCP
    /// is refused with a message that says so.
    static func transport(_ proto: TransportProtocol?, callerData: [UInt8]?, qos: QoS?)
        throws(WSPError) -> TransportProtocol
    {
        let carriesData = callerData != nil || qos != nil
        guard let proto else { return carriesData ? .tcpWithConnectData : .tcp }
        if proto == .tcp && carriesData {
            throw WSPError(code: WSPError.protocolNotSupported.code,
                           detail: "caller data and QoS travel only on the connect-data protocol: pass protocol: .tcpWithConnectData (or leave it out)")
        }
        return proto
    }

    /// A listening socket bound to `address`.
    public func listen(on address: Address, protocol proto: TransportProtocol = .tcp,
                       backlog: Int32 = 128) throws(WSPError) -> Socket {
        let s = try socket(family: address.family, protocol: proto)
        try s.bind(to: address)
        try s.listen(backlog: backlog)
        return s
    }

    /// A blocking connect to `address`, sending `callerData` on the connect-data protocol
    /// (the default protocol when there is caller data; plain TCP otherwise). Returns once
    /// the server has decided; a rejection throws `.connectionRefused` with the server's
    /// ``WSPError/refusal`` reason.
    public func connect(to address: Address, protocol proto: TransportProtocol? = nil,
                        callerData: [UInt8]? = nil,
                        calleeCapacity: Int = Int(WSP_DEFAULT_MAX_CALLEE_DATA))
        throws(WSPError) -> Connection
    {
        let proto = try Self.transport(proto, callerData: callerData, qos: nil)
        let s = try socket(family: address.family, protocol: proto)
        let callee = try s.connect(to: address, callerData: callerData,
                                   calleeCapacity: calleeCapacity)
        return Connection(socket: s, calleeData: callee, negotiatedQoS: nil)
    }
}

/// A connected client socket and what the server answered with.
///
/// `@frozen` so that a program can move the socket out (`let socket = connection.socket`):
/// Swift allows taking a field out of a `~Copyable` value of another module only then.
@frozen public struct Connection: ~Copyable, Sendable {
    public var socket: Socket
    /// The callee data (empty when the server sent none, or on plain TCP).
    public let calleeData: [UInt8]
    /// The QoS both ends agreed on, when the connect asked for one (async connect only).
    public let negotiatedQoS: QoS?
}

/// The library's release (`WSP_VERSION_STRING` of `wsp/version.h`), such as `"0.2.0"`.
public let version: String = WSP_VERSION_STRING
