import Testing
import WSP

extension AllTests {
@Suite(.timeLimit(.minutes(1))) struct APITests {
    @Test func optionsAreTypedAndRoundTrip() throws {
        let provider = try Provider()
        let s = try provider.socket(family: .ipv4, protocol: .tcpWithConnectData)
        try s.set(.connectTimeout, to: .milliseconds(2500))
        #expect(try s.option(.connectTimeout) == .milliseconds(2500))
        try s.set(.connectLimit, to: .seconds(3))
        #expect(try s.option(.connectLimit) == .seconds(3))
        try s.set(.connectLimit, to: nil)
        #expect(try s.option(.connectLimit) == nil)
        try s.set(.maxCallerData, to: 4096)
        #expect(try s.option(.maxCallerData) == 4096)
        try s.set(.noDelay, to: true)
        #expect(try s.option(.noDelay))
        try s.set(.reuseAddress, to: true)
        #expect(try s.option(.reuseAddress))
        // A fraction of a millisecond is rounded up, never down to "0 = the default".
        try s.set(.connectTimeout, to: .microseconds(10))
        #expect(try s.option(.connectTimeout) == .milliseconds(1))
    }

    @Test func badValuesAreRefusedNotBent() async throws {
        let provider = try Provider()
        let s = try provider.socket(family: .ipv4, protocol: .tcpWithConnectData)
        func refusal(_ body: () throws(WSPError) -> Void) -> WSPError? {
            do throws(WSPError) { try body(); return nil } catch { return error }
        }
        let negative = refusal { () throws(WSPError) in try s.set(.connectTimeout, to: .seconds(-1)) }
        #expect(negative == .invalidArgument)
        #expect(negative?.detail?.contains("connectTimeout must be a positive duration") == true)
        let zero = refusal { () throws(WSPError) in try s.set(.handshakeDeadline, to: .zero) }
        #expect(zero == .invalidArgument)
        let huge = refusal { () throws(WSPError) in try s.set(.connectLimit, to: .seconds(1_000_000_000)) }
        #expect(huge?.detail?.contains("at most 4294967 seconds") == true)
        let tooLong = refusal { () throws(WSPError) in try s.set(.maxCallerData, to: 20_000) }
        #expect(tooLong?.detail?.contains("from 0 to 16384") == true)
        #expect(refusal { () throws(WSPError) in try s.listen(backlog: 0) } == .invalidArgument)
        // The value is unchanged by a refused set.
        #expect(try s.option(.connectTimeout) == .seconds(30))

        await #expect(throws: WSPError.invalidArgument) {
            _ = try await provider.connect(to: .loopback(port: 9), callerData: [1],
                                           timeout: .seconds(-1))
        }
    }

    @Test func callerDataChoosesTheConnectDataProtocol() async throws {
        let provider = try Provider()
        let listener = try asyncListener(provider)
        let address = try listener.localAddress
        // (`async let` of the ~Copyable Connection traps at run time in Swift 6.3: take a
        // copyable part.)
        async let client = provider.connect(to: address, callerData: bytes("hi")).calleeData
        let accepted = try await listener.accept { .accept(calleeData: $0.callerData ?? []) }
        _ = accepted
        #expect(try await client == bytes("hi"))
        // Asked of plain TCP, the mistake is named.
        do {
            _ = try await provider.connect(to: address, protocol: .tcp, callerData: bytes("x"))
            Issue.record("connect data on plain TCP was accepted")
        } catch {
            #expect(error == .protocolNotSupported)
            #expect(error.detail?.contains(".tcpWithConnectData") == true)
        }
    }

    @Test func addressesCompareByBytes() throws {
        #expect(try Address("127.0.0.1:80") == Address.loopback(port: 80))
        #expect(try Address("127.0.0.1:80") != Address.loopback(port: 81))
        #expect(try Address("[::1]:80") == Address.loopbackIPv6(port: 80))
        #expect(try Address("[0:0::1]:80") == Address("[::1]:80")) // two spellings, one address
        #expect(Set([try Address("[0:0::1]:80"), try Address("[::1]:80")]).count == 1)
        #expect(try Address("10.1.2.3:7").hostBytes == [10, 1, 2, 3])
        #expect(try Address("[fe80::1%3]:80").description == "[fe80::1%3]:80")
        #expect(try Address("[fe80::1%3]:80") != Address("[fe80::1%4]:80"))
    }

    @Test func addressErrorsSayWhatIsWrong() async throws {
        func problem(_ text: String) -> String? {
            do throws(WSPError) { _ = try Address(text); return nil } catch { return error.detail }
        }
        #expect(problem("localhost:80")?.contains("Address.resolve") == true)
        #expect(problem("127.0.0.1:99999")?.contains("not a number from 0 to 65535") == true)
        #expect(problem("[::1")?.contains("'[' without ']'") == true)
        #expect(problem(":80")?.contains("the host is missing") == true)
        let found = try await Address.resolve("localhost:7000")
        #expect(!found.isEmpty)
        #expect(found.allSatisfy { $0.port == 7000 })
        #expect(found.contains(.loopback(port: 7000)) || found.contains(.loopbackIPv6(port: 7000)))
        await #expect(throws: WSPError.hostNotFound) {
            _ = try await Address.resolve("no-such-host.invalid", port: 1)
        }
    }

    @Test func connectByHostName() async throws {
        let provider = try Provider()
        let listener = try asyncListener(provider)
        let port = try listener.localAddress.port
        async let client = provider.connect(toHost: "localhost", port: port,
                                            callerData: bytes("by name")).calleeData
        _ = try await listener.accept { .accept(calleeData: $0.callerData ?? []) }
        #expect(text(try await client) == "by name")
        await #expect(throws: WSPError.invalidArgument) { _ = try await Address.resolve("localhost") }
    }

    /// The common ownership patterns close explicitly: a socket captured by a task, and one
    /// inside a connection; closing twice does nothing, and later calls say the socket is
    /// gone.
    @Test func socketsCloseWhereverTheyAre() async throws {
        let provider = try Provider()
        let listener = try asyncListener(provider)
        let task = Task { [listener = consume listener] () async throws -> WSPError? in
            try listener.close()
            try listener.close() // the second close does nothing
            do throws(WSPError) { _ = try listener.localAddress; return nil } catch { return error }
        }
        #expect(try await task.value == .notSocket)
    }
}
}
