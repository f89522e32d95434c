import CWSP

/// One direction of a quality-of-service request (Winsock's `FLOWSPEC`). Every field defaults
/// to `notSpecified` (`QOS_NOT_SPECIFIED`), which is what Winsock uses for "no preference".
public struct FlowSpec: Hashable, Sendable {
    /// `QOS_NOT_SPECIFIED` (0xFFFFFFFF).
    public static let notSpecified: UInt32 = 0xFFFF_FFFF

    public var tokenRate: UInt32 = FlowSpec.notSpecified
    public var tokenBucketSize: UInt32 = FlowSpec.notSpecified
    public var peakBandwidth: UInt32 = FlowSpec.notSpecified
    public var latency: UInt32 = FlowSpec.notSpecified
    public var delayVariation: UInt32 = FlowSpec.notSpecified
    /// `SERVICETYPE_…` (`SERVICETYPE_BESTEFFORT` is 1).
    public var serviceType: UInt32 = FlowSpec.notSpecified
    public var maxSduSize: UInt32 = FlowSpec.notSpecified
    public var minimumPolicedSize: UInt32 = FlowSpec.notSpecified

    public init() {}

    init(_ f: FLOWSPEC) {
        tokenRate = f.TokenRate
        tokenBucketSize = f.TokenBucketSize
        peakBandwidth = f.PeakBandwidth
        latency = f.Latency
        delayVariation = f.DelayVariation
        serviceType = f.ServiceType
        maxSduSize = f.MaxSduSize
        minimumPolicedSize = f.MinimumPolicedSize
    }

    var c: FLOWSPEC {
        FLOWSPEC(TokenRate: tokenRate, TokenBucketSize: tokenBucketSize,
                 PeakBandwidth: peakBandwidth, Latency: latency, DelayVariation: delayVariation,
                 ServiceType: serviceType, MaxSduSize: maxSduSize,
                 MinimumPolicedSize: minimumPolicedSize)
    }
}

/// A quality-of-service request or agreement (Winsock's `QOS`), carried by the connect-data
/// protocol: the client sends one with its connect, the condition function sees it and may
/// change it, and the changed value is what the client gets back as its negotiated QoS.
public struct QoS: Hashable, Sendable {
    public var sending: FlowSpec
    public var receiving: FlowSpec
    /// Provider-specific bytes. An answer may not carry more of them than the request did.
    public var providerSpecific: [UInt8]

    public init(sending: FlowSpec = FlowSpec(), receiving: FlowSpec = FlowSpec(),
                providerSpecific: [UInt8] = []) {
        self.sending = sending
        self.receiving = receiving
        self.providerSpecific = providerSpecific
    }

    /// Reads a C `QOS`, copying its provider-specific bytes.
    init(_ q: QOS) {
        sending = FlowSpec(q.SendingFlowspec)
        receiving = FlowSpec(q.ReceivingFlowspec)
        if let p = q.ProviderSpecific.buf, q.ProviderSpecific.len > 0 {
            providerSpecific = Array(UnsafeRawBufferPointer(start: p, count: Int(q.ProviderSpecific.len)))
        } else {
            providerSpecific = []
        }
    }

    /// Writes the flow specs and provider-specific bytes into `q`, whose provider-specific
    /// buffer must already hold at least `providerSpecific.count` bytes of room.
    func write(to q: UnsafeMutablePointer<QOS>) {
        q.pointee.SendingFlowspec = sending.c
        q.pointee.ReceivingFlowspec = receiving.c
        if let dst = q.pointee.ProviderSpecific.buf, !providerSpecific.isEmpty {
            providerSpecific.withUnsafeBytes {
                UnsafeMutableRawPointer(dst).copyMemory(from: $0.baseAddress!, byteCount: $0.count)
            }
        }
        q.pointee.ProviderSpecific.len = UInt32(providerSpecific.count)
    }
}
