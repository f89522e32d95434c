import CWSP
import Dispatch
import Testing
import WSP

/// Runs `body` on a Dispatch thread at once; `wait()` returns its result. The client side of
/// a test runs there so that the server side may block without starving Swift's pool.
// @unchecked: `result` is written once on the Dispatch thread before `done.signal()` and read
// only after `done.wait()`; the semaphore orders the two.
final class Background<T: Sendable>: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var result: T?
    init(_ body: @escaping @Sendable () -> T) {
        DispatchQueue.global().async {
            self.result = body()
            self.done.signal()
        }
    }
    func wait() -> T {
        done.wait()
        return result!
    }
}

func clientConnect(_ provider: Provider, _ address: Address, _ data: [UInt8]?)
    -> Background<Result<[UInt8], WSPError>>
{
    Background {
        Result { () throws(WSPError) -> [UInt8] in
            try provider.connect(to: address, protocol: .tcpWithConnectData, callerData: data)
                .calleeData
        }
    }
}

extension AllTests {
@Suite struct ConditionalAcceptTests {
    @Test func acceptCarriesCallerAndCalleeData() throws {
        let provider = try Provider()
        let listener = try provider.listen(on: .loopback(port: 0), protocol: .tcpWithConnectData)
        let client = clientConnect(provider, try listener.localAddress, Array("token".utf8))
        let seen = Captured<[UInt8]?>(nil)
        let accepted = try listener.accept { request in
            seen.value = request.callerData
            return .accept(calleeData: Array("welcome".utf8))
        }
        #expect(seen.value == Array("token".utf8))
        #expect(accepted.peer.family == .ipv4)
        #expect(try client.wait().get() == Array("welcome".utf8))
    }

    @Test func rejectIsConnectionRefusedAtTheClient() throws {
        let provider = try Provider()
        let listener = try provider.listen(on: .loopback(port: 0), protocol: .tcpWithConnectData)
        let client = clientConnect(provider, try listener.localAddress, [1])
        #expect(throws: WSPError.connectionRefused) { _ = try listener.accept { _ in .reject } }
        #expect(throws: WSPError.connectionRefused) { try client.wait().get() }
    }

    @Test func deferredRequestComesBack() throws {
        let provider = try Provider()
        let listener = try provider.listen(on: .loopback(port: 0), protocol: .tcpWithConnectData)
        let client = clientConnect(provider, try listener.localAddress, [7])
        let firstPeer = Captured<Address?>(nil)
        #expect(throws: WSPError.tryAgain) {
            _ = try listener.accept { request in firstPeer.value = request.callerAddress; return .defer }
        }
        let secondPeer = Captured<Address?>(nil)
        let accepted = try listener.accept { request in
            secondPeer.value = request.callerAddress
            return .accept()
        }
        #expect(firstPeer.value != nil && secondPeer.value == firstPeer.value)
        #expect(accepted.peer == firstPeer.value)
        #expect(try client.wait().get() == [])
    }

    @Test func calleeDataOverCapacityIsAFaultAndKeepsTheRequest() throws {
        let provider = try Provider()
        let listener = try provider.listen(on: .loopback(port: 0), protocol: .tcpWithConnectData)
        try listener.setOption(level: SOL_WSP, name: WSP_MAX_CALLEE_DATA, value: 4)
        let client = clientConnect(provider, try listener.localAddress, [1])
        #expect(throws: WSPError.fault) {
            _ = try listener.accept { _ in .accept(calleeData: [1, 2, 3, 4, 5]) }
        }
        _ = try listener.accept { _ in .accept(calleeData: [1, 2, 3, 4]) }
        #expect(try client.wait().get() == [1, 2, 3, 4])
    }

    @Test func errorsCarryNameAndMeaning() {
        let e = WSPError.connectionRefused
        #expect(e.code == 10061)
        #expect(e.name == "WSAECONNREFUSED")
        #expect(e.meaning.contains("refused"))
    }

    @Test func addressesParseAndPrint() throws {
        #expect(try Address("127.0.0.1:7000").description == "127.0.0.1:7000")
        #expect(try Address("[::1]:80").port == 80)
        #expect(throws: WSPError.invalidArgument) { try Address("1.2.3.4:99999") }
    }
}
}
