import CWSP
import Glibc

/// An IPv4 or IPv6 socket address: `"127.0.0.1:7000"`, `"[::1]:7000"`, `"[fe80::1%2]:80"`.
///
/// Parsing and printing follow the provider's `WSPStringToAddress`/`WSPAddressToString`
/// (port left out when it is 0, an IPv6 scope as `%N`) but need no started provider.
/// Two addresses are equal when their family, host bytes, port and (IPv6) scope are.
/// Host names are looked up by ``resolve(_:port:)``, never by the initializer.
public struct Address: Hashable, Sendable, CustomStringConvertible {
    var storage: sockaddr_storage

    /// The two address families a WSP socket speaks.
    public enum Family: Sendable, Hashable {
        case ipv4
        case ipv6

        var raw: Int32 { self == .ipv4 ? AF_INET : AF_INET6 }
    }

    /// ``Family/ipv4`` or ``Family/ipv6``.
    public var family: Family { Int32(storage.ss_family) == AF_INET6 ? .ipv6 : .ipv4 }

    var length: Int32 {
        family == .ipv6 ? Int32(MemoryLayout<sockaddr_in6>.size)
            : Int32(MemoryLayout<sockaddr_in>.size)
    }

    init(storage: sockaddr_storage) { self.storage = storage }

    /// Parses a numeric address: `"1.2.3.4"`, `"1.2.3.4:80"`, `"::1"`, `"[::1]:80"`,
    /// `"[fe80::1%eth0]:80"`. Text that is not one throws ``WSPError/invalidArgument`` whose
    /// ``WSPError/detail`` says what is wrong; for a host name use ``resolve(_:port:)``.
    public init(_ text: String) throws(WSPError) {
        var ss = sockaddr_storage()
        if let problem = Self.parse(text, into: &ss) {
            throw .invalid("'\(text)' is not an address: \(problem)")
        }
        storage = ss
    }

    /// Why `text` is not a numeric address (nil: it is one, stored in `ss`).
    private static func parse(_ text: String, into ss: inout sockaddr_storage) -> String? {
        let example = "give HOST:PORT with a numeric host, such as 127.0.0.1:7000 or [::1]:7000"
        var host = Substring(text)
        var portText: Substring? = nil
        var v6 = false
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return "'[' without ']'" }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            if !rest.isEmpty {
                guard rest.first == ":" else { return "text after ']' that is not ':PORT'" }
                portText = rest.dropFirst()
            }
            v6 = true
        } else if text.filter({ $0 == ":" }).count > 1 {
            v6 = true // a bare IPv6 address: no port
        } else if let colon = text.lastIndex(of: ":") {
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        var port: UInt16 = 0
        if let portText {
            guard !portText.isEmpty, portText.allSatisfy({ $0.isASCII && $0.isNumber }),
                  let p = UInt16(portText)
            else { return "the port '\(portText)' is not a number from 0 to 65535" }
            port = p
        }
        if host.isEmpty { return "the host is missing; \(example)" }
        if v6 {
            var scope: UInt32 = 0
            var bare = String(host)
            if let pct = host.firstIndex(of: "%") {
                bare = String(host[..<pct])
                let name = String(host[host.index(after: pct)...])
                if let n = UInt32(name) { scope = n } else {
                    scope = if_nametoindex(name)
                    if scope == 0 { return "there is no network interface '\(name)'" }
                }
            }
            var sin6 = sockaddr_in6()
            guard inet_pton(AF_INET6, bare, &sin6.sin6_addr) == 1 else {
                return "'\(bare)' is not an IPv6 address"
            }
            sin6.sin6_family = sa_family_t(AF_INET6)
            sin6.sin6_port = port.bigEndian
            sin6.sin6_scope_id = scope
            withUnsafeMutableBytes(of: &ss) { $0.storeBytes(of: sin6, as: sockaddr_in6.self) }
            return nil
        }
        var sin = sockaddr_in()
        guard inet_pton(AF_INET, String(host), &sin.sin_addr) == 1 else {
            return "'\(host)' is not a numeric IPv4 or IPv6 host (to look up a name, use Address.resolve); \(example)"
        }
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = port.bigEndian
        withUnsafeMutableBytes(of: &ss) { $0.storeBytes(of: sin, as: sockaddr_in.self) }
        return nil
    }

    /// Looks up `host` (a name such as `"localhost"`, or a numeric address) and returns its
    /// addresses with `port`, IPv4 and IPv6 in the resolver's order. The lookup runs on a
    /// thread of its own, never on Swift's cooperative pool. A name that does not resolve
    /// throws ``WSPError/hostNotFound`` (or ``WSPError/tryAgain`` for a temporary failure),
    /// with the resolver's words in ``WSPError/detail``.
    public static func resolve(_ host: String, port: UInt16) async throws(WSPError) -> [Address] {
        let result: Result<[Address], WSPError> = await Resolver.lookUp(host, port: port)
        return try result.get()
    }

    /// Looks up `"HOST:PORT"` (`"localhost:7000"`, `"[::1]:7000"`, `"127.0.0.1:7000"`): a
    /// numeric address is parsed at once, a name is resolved as by ``resolve(_:port:)``.
    public static func resolve(_ text: String) async throws(WSPError) -> [Address] {
        if let address = try? Address(text) { return [address] }
        guard let colon = text.lastIndex(of: ":"), !text.hasPrefix("[") else {
            throw .invalid("'\(text)' has no port: give HOST:PORT, such as localhost:7000")
        }
        let portText = text[text.index(after: colon)...]
        guard let port = UInt16(portText) else {
            throw .invalid("the port '\(portText)' in '\(text)' is not a number from 0 to 65535")
        }
        return try await resolve(String(text[..<colon]), port: port)
    }

    /// 127.0.0.1 with the given port (0: the kernel picks one when binding).
    public static func loopback(port: UInt16) -> Address {
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = port.bigEndian
        sin.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        var ss = sockaddr_storage()
        withUnsafeMutableBytes(of: &ss) { $0.storeBytes(of: sin, as: sockaddr_in.self) }
        return Address(storage: ss)
    }

    /// ::1 with the given port.
    public static func loopbackIPv6(port: UInt16) -> Address {
        var sin6 = sockaddr_in6()
        sin6.sin6_family = sa_family_t(AF_INET6)
        sin6.sin6_port = port.bigEndian
        sin6.sin6_addr.__in6_u.__u6_addr8.15 = 1
        var ss = sockaddr_storage()
        withUnsafeMutableBytes(of: &ss) { $0.storeBytes(of: sin6, as: sockaddr_in6.self) }
        return Address(storage: ss)
    }

    /// The same host with another port.
    public func with(port: UInt16) -> Address {
        var copy = self
        withUnsafeMutableBytes(of: &copy.storage) { b in
            // sin_port and sin6_port sit at the same offset.
            b.storeBytes(of: port.bigEndian, toByteOffset: 2, as: UInt16.self)
        }
        return copy
    }

    /// The port, in host order.
    public var port: UInt16 {
        withUnsafeBytes(of: storage) { UInt16(bigEndian: $0.load(fromByteOffset: 2, as: UInt16.self)) }
    }

    /// The host's bytes: 4 for IPv4, 16 for IPv6.
    public var hostBytes: [UInt8] {
        withUnsafeBytes(of: storage) { b in
            family == .ipv6
                ? Array(b[MemoryLayout<sockaddr_in6>.offset(of: \.sin6_addr)!...].prefix(16))
                : Array(b[MemoryLayout<sockaddr_in>.offset(of: \.sin_addr)!...].prefix(4))
        }
    }

    /// The IPv6 scope (interface index), 0 for IPv4 or none.
    var scope: UInt32 {
        guard family == .ipv6 else { return 0 }
        return withUnsafeBytes(of: storage) { $0.load(as: sockaddr_in6.self).sin6_scope_id }
    }

    public var description: String {
        var host = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let bytes = hostBytes
        let raw = family.raw
        let ok = bytes.withUnsafeBytes { inet_ntop(raw, $0.baseAddress, &host, socklen_t(host.count)) } != nil
        guard ok else { return "<address family \(storage.ss_family)>" }
        var text = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if family == .ipv6 {
            if scope != 0 { text += "%\(scope)" }
            return port == 0 ? text : "[\(text)]:\(port)"
        }
        return port == 0 ? text : "\(text):\(port)"
    }

    public static func == (a: Address, b: Address) -> Bool {
        a.family == b.family && a.port == b.port && a.scope == b.scope && a.hostBytes == b.hostBytes
    }

    public func hash(into h: inout Hasher) {
        h.combine(family)
        h.combine(port)
        h.combine(scope)
        h.combine(hostBytes)
    }

    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, Int32) -> R) -> R {
        withUnsafeBytes(of: storage) { b in
            body(b.baseAddress!.assumingMemoryBound(to: sockaddr.self), length)
        }
    }

    /// An address a provider call writes (`lpWSPAccept`, `lpWSPGetSockName`).
    static func filling(_ body: (UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<Int32>) -> Void)
        -> Address
    {
        var ss = sockaddr_storage()
        var len = Int32(MemoryLayout<sockaddr_storage>.size)
        withUnsafeMutableBytes(of: &ss) { b in
            body(b.baseAddress!.assumingMemoryBound(to: sockaddr.self), &len)
        }
        return Address(storage: ss)
    }
}

/// Name look-ups on a thread of their own: `getaddrinfo` blocks, which must never happen on
/// Swift's cooperative pool.
enum Resolver {
    static func lookUp(_ host: String, port: UInt16) async -> Result<[Address], WSPError> {
        await withUnsafeContinuation { continuation in
            let box = Unmanaged.passRetained(Job(host: host, port: port, continuation: continuation))
            var thread = pthread_t()
            let rc = pthread_create(&thread, nil, { arg in
                let job = Unmanaged<Job>.fromOpaque(arg!).takeRetainedValue()
                job.continuation.resume(returning: Resolver.run(job.host, port: job.port))
                return nil
            }, box.toOpaque())
            if rc == 0 {
                pthread_detach(thread)
            } else {
                box.release()
                continuation.resume(returning: .failure(WSPError(code: WSAENOBUFS,
                    detail: "cannot start a thread for the name look-up (\(rc))")))
            }
        }
    }

    private final class Job {
        let host: String
        let port: UInt16
        let continuation: UnsafeContinuation<Result<[Address], WSPError>, Never>
        init(host: String, port: UInt16,
             continuation: UnsafeContinuation<Result<[Address], WSPError>, Never>) {
            self.host = host
            self.port = port
            self.continuation = continuation
        }
    }

    private static func run(_ host: String, port: UInt16) -> Result<[Address], WSPError> {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>? = nil
        let rc = getaddrinfo(host, nil, &hints, &list)
        defer { if let list { freeaddrinfo(list) } }
        guard rc == 0 else {
            let words = String(cString: gai_strerror(rc))
            let code = rc == EAI_AGAIN ? WSATRY_AGAIN : WSPError.hostNotFound.code
            return .failure(WSPError(code: code, detail: "cannot resolve '\(host)': \(words)"))
        }
        var found: [Address] = []
        var next = list
        while let info = next {
            let family = info.pointee.ai_family
            if let sa = info.pointee.ai_addr, family == AF_INET || family == AF_INET6 {
                var ss = sockaddr_storage()
                withUnsafeMutableBytes(of: &ss) { b in
                    b.copyMemory(from: UnsafeRawBufferPointer(start: sa, count: Int(info.pointee.ai_addrlen)))
                }
                let address = Address(storage: ss).with(port: port)
                if !found.contains(address) { found.append(address) }
            }
            next = info.pointee.ai_next
        }
        if found.isEmpty {
            return .failure(WSPError(code: WSPError.hostNotFound.code, detail: "'\(host)' has no IPv4 or IPv6 address"))
        }
        return .success(found)
    }
}
