import Logging
import Testing
import WSP

@testable import wspcat

/// A handler of an embedding program's: keeps what it is given.
private struct Capture: LogHandler {
    let seen = Locked<[(Logger.Level, String, Logger.Metadata)]>([])
    var logLevel: Logger.Level = .trace
    var metadata: Logger.Metadata = [:]
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) {
        seen.withLock { $0.append((event.level, "\(event.message)", event.metadata ?? [:])) }
    }
}

@Suite struct LogTests {
    /// wspcat's events go through swift-log: a program that embeds the admission server
    /// gets them, with the event, the caller and the fields as metadata.
    @Test func anEmbeddingProgramReceivesTheEvents() {
        let capture = Capture()
        let log = EventLog(logger: Logger(label: "embedded") { _ in capture })
        log.event("reject", caller: "127.0.0.1:5", reason: "admission rule --deny 127.0.0.0/8",
                  fields: [("data", .data(Array("x".utf8)))])
        log.event("error", caller: nil, reason: "the accept failed")
        let seen = capture.seen.withLock { $0 }
        #expect(seen.count == 2)
        #expect(seen.first?.0 == .info)
        #expect(seen.first?.1 == "admission rule --deny 127.0.0.0/8")
        #expect(seen.first?.2["event"] == "reject")
        #expect(seen.first?.2["caller"] == "127.0.0.1:5")
        #expect(seen.first.map { "\($0.2["data"]!)" } == "\"x\"")
        #expect(seen.last?.0 == .error)
    }
}
