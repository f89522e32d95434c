import CWSP

/// An IPv4 or IPv6 socket address, parsed and printed by the provider
/// (`WSPStringToAddress` / `WSPAddressToString`): `"127.0.0.1:7000"`, `"[::1]:7000"`.
public struct Address: Hashable, Sendable, CustomStringConvertible {
    var storage: sockaddr_storage
    /// `AF_INET` or `AF_INET6`.
    public var family: Int32 { Int32(storage.ss_family) }
    var length: Int32 {
        family == AF_INET6 ? Int32(MemoryLayout<sockaddr_in6>.size)
            : Int32(MemoryLayout<sockaddr_in>.size)
    }

    init(storage: sockaddr_storage) { self.storage = storage }

    /// Parses `"1.2.3.4"`, `"1.2.3.4:80"`, `"::1"`, `"[::1]:80"`.
    public init(_ text: String) throws(WSPError) {
        let family = text.contains("[") || text.filter({ $0 == ":" }).count > 1 ? AF_INET6 : AF_INET
        var ss = sockaddr_storage()
        var len = Int32(MemoryLayout<sockaddr_storage>.size)
        var err: Int32 = 0
        let table = Provider.addressTable
        let rc = withUnsafeMutablePointer(to: &ss) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                table.lpWSPStringToAddress(text, family, nil, sa, &len, &err)
            }
        }
        if rc != 0 { throw WSPError(code: err) }
        storage = ss
    }

    /// 127.0.0.1 with the given port (0: the kernel picks one when binding).
    public static func loopback(port: UInt16) -> Address {
        var ss = sockaddr_storage()
        withUnsafeMutablePointer(to: &ss) { p in
            p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                sin.pointee.sin_family = sa_family_t(AF_INET)
                sin.pointee.sin_port = port.bigEndian
                sin.pointee.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
            }
        }
        return Address(storage: ss)
    }

    /// ::1 with the given port.
    public static func loopbackIPv6(port: UInt16) -> Address {
        var ss = sockaddr_storage()
        withUnsafeMutablePointer(to: &ss) { p in
            p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin6 in
                sin6.pointee.sin6_family = sa_family_t(AF_INET6)
                sin6.pointee.sin6_port = port.bigEndian
                sin6.pointee.sin6_addr.__in6_u.__u6_addr8.15 = 1
            }
        }
        return Address(storage: ss)
    }

    /// The port, in host order.
    public var port: UInt16 {
        var ss = storage
        return withUnsafePointer(to: &ss) { p in
            family == AF_INET6
                ? p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin6_port) }
                : p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
        }
    }

    public var description: String {
        var ss = storage
        var buf = [CChar](repeating: 0, count: 80)
        var len = UInt32(buf.count)
        var err: Int32 = 0
        let table = Provider.addressTable
        let rc = withUnsafeMutablePointer(to: &ss) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                table.lpWSPAddressToString(sa, UInt32(length), nil, &buf, &len, &err)
            }
        }
        return rc == 0 ? String(decoding: buf.prefix(Int(len) - 1).map { UInt8(bitPattern: $0) }, as: UTF8.self) : "<address family \(family)>"
    }

    public static func == (a: Address, b: Address) -> Bool {
        a.description == b.description
    }
    public func hash(into h: inout Hasher) { h.combine(description) }

    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, Int32) -> R) -> R {
        var ss = storage
        return withUnsafePointer(to: &ss) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
        }
    }
}
