import Glibc
import WSP

/// An IPv4 or IPv6 network, `10.0.0.0/8` or `fd00::/8`; a bare address is a /32 or /128.
struct CIDR: CustomStringConvertible, Sendable {
    let network: [UInt8]  // 4 or 16 bytes
    let prefixLength: Int
    let description: String

    init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let bytes = CIDR.bytes(ofHost: String(parts[0])) else { return nil }
        let bits = bytes.count * 8
        if parts.count == 2 {
            guard let n = Int(parts[1]), (0...bits).contains(n) else { return nil }
            prefixLength = n
        } else {
            prefixLength = bits
        }
        network = bytes
        description = text
    }

    func contains(_ address: [UInt8]) -> Bool {
        guard address.count == network.count else { return false }
        var left = prefixLength
        for (a, n) in zip(address, network) where left > 0 {
            let mask: UInt8 = left >= 8 ? 0xff : ~(0xff >> UInt8(left))
            if a & mask != n & mask { return false }
            left -= 8
        }
        return true
    }

    /// The 4 or 16 bytes of an IPv4 or IPv6 host (an IPv6 zone, `%eth0`, is ignored).
    static func bytes(ofHost host: String) -> [UInt8]? {
        let bare = String(host.split(separator: "%", maxSplits: 1).first ?? "")
        var v4 = in_addr()
        if inet_pton(AF_INET, bare, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, bare, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { Array($0) }
        }
        return nil
    }

    /// The host bytes of a socket address as WSP prints it: `1.2.3.4:80` or `[::1]:80`.
    static func bytes(of address: Address) -> [UInt8]? {
        var text = address.description
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            text = String(text[text.index(after: text.startIndex)..<close])
        } else if let colon = text.lastIndex(of: ":") {
            text = String(text[..<colon])
        }
        return bytes(ofHost: text)
    }
}

/// The listener's admission rules: what `--allow`, `--deny`, `--require-data` and
/// `--max-pending`/`--defer-when-busy` make of the condition function (or, when requests are
/// held, of the decision taken for each: Holding.swift).
struct AdmissionRules: Sendable {
    var allow: [CIDR] = []
    var deny: [CIDR] = []
    var requiredData: [UInt8]? = nil
    var calleeData: [UInt8] = []
    /// The most connections in service at once.
    var maxInService = 1
    /// Hold a request while busy, instead of refusing it (Holding.swift).
    var deferWhenBusy = false

    /// The answer and the reason for it, which the log shows.
    struct Verdict: Sendable {
        var decision: Decision
        var reason: String
    }

    /// The rules about who asks (--deny, --allow, --require-data, in that order): a
    /// rejection, or nil when the request passes them.
    func screen(_ request: ConnectionRequest) -> Verdict? {
        let host = CIDR.bytes(of: request.callerAddress) ?? []
        if let rule = deny.first(where: { $0.contains(host) }) {
            return Verdict(decision: .reject, reason: "admission rule --deny \(rule)")
        }
        if !allow.isEmpty, !allow.contains(where: { $0.contains(host) }) {
            return Verdict(decision: .reject,
                           reason: "admission rule --allow (the address is in no --allow range)")
        }
        if let requiredData, request.callerData != requiredData {
            let why = request.callerData == nil ? "no caller data" : "other caller data"
            return Verdict(decision: .reject, reason: "admission rule --require-data (\(why))")
        }
        return nil
    }

    /// The load: why a request is turned away while `inService` connections are being
    /// served, or nil when one more may start.
    func busy(inService: Int) -> String? {
        guard inService >= maxInService else { return nil }
        return "busy: \(inService) connection\(inService == 1 ? "" : "s") in service (--max-pending \(maxInService))"
    }

    /// Why `calleeData` cannot answer `request`, or nil when it fits. The client states how
    /// much callee data it can take; an answer it cannot take would fail its connect anyway.
    static func tooLong(_ calleeData: [UInt8], for request: ConnectionRequest, what: String)
        -> String?
    {
        guard calleeData.count > request.calleeCapacity else { return nil }
        return "\(what) is \(calleeData.count) bytes, this client takes at most \(request.calleeCapacity)"
    }

    /// Decides on `request` on the spot while `inService` connections are being served (no
    /// holds): the rules about who asks first, so a request they refuse is refused even when
    /// the server is busy, then the load, then whether --callee-data fits.
    func decide(_ request: ConnectionRequest, inService: Int) -> Verdict {
        if let refused = screen(request) { return refused }
        if let busy = busy(inService: inService) { return Verdict(decision: .reject, reason: busy) }
        if let tooLong = Self.tooLong(calleeData, for: request, what: "--callee-data") {
            return Verdict(decision: .reject, reason: tooLong)
        }
        return Verdict(decision: .accept(calleeData: calleeData),
                       reason: "passed the admission rules")
    }
}

/// Bytes as a quoted string for a log line: printable ASCII as is, the rest escaped.
func quoted(_ bytes: [UInt8]) -> String {
    var s = "\""
    for b in bytes {
        switch b {
        case UInt8(ascii: "\""): s += "\\\""
        case UInt8(ascii: "\\"): s += "\\\\"
        case 0x20..<0x7f: s.unicodeScalars.append(Unicode.Scalar(b))
        default: s += "\\x" + String(b, radix: 16).leftPad(2)
        }
    }
    return s + "\""
}

extension String {
    func leftPad(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
