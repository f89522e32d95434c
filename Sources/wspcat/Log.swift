import ArgumentParser
import Glibc
import Logging
import WSP

enum LogFormat: String, ExpressibleByArgument, CaseIterable, Sendable {
    case text
    case json
}

/// wspcat's log: one line per event, through swift-log (`Logger`, label "wspcat"), so that a
/// program embedding the admission server can route the messages where it wants. The two
/// handlers below write what the command line shows: `wspcat: EVENT CALLER: REASON; FIELD
/// VALUE…` in text, one JSON object per line in JSON
/// (`{"time":…,"event":…,"caller":…,"reason":…}` plus the event's own fields).
///
/// Admission events are logged at `.info` (silenced by --quiet), what must always be said
/// (where it listens) at `.notice`, failures at `.error`.
final class EventLog: Sendable {
    let logger: Logger

    init(format: LogFormat, quiet: Bool, fd: Int32 = 2) {
        var logger = Logger(label: "wspcat") { _ in
            format == .json ? JSONLogHandler(fd: fd) as any LogHandler : TextLogHandler(fd: fd)
        }
        logger.logLevel = quiet ? .notice : .info
        self.logger = logger
    }

    /// Logs through a logger of the embedding program's.
    init(logger: Logger) {
        self.logger = logger
    }

    /// A field of a log line: text or a number (JSON keeps numbers unquoted).
    enum Value: Sendable, CustomStringConvertible {
        case text(String)
        case number(Double)
        /// Seconds: `1.5 s` in text, a number in JSON.
        case seconds(Double)
        /// Bytes from the network: quoted and escaped in text; in JSON a string when they are
        /// UTF-8, else `KEYHex` with their hex digits. Past `dataShown` bytes they are
        /// shortened, and the whole length is given (`KEYLength` in JSON).
        case data([UInt8])

        /// As the text handler shows it.
        var description: String {
            switch self {
            case .text(let s): s
            case .number(let n): EventLog.number(n)
            case .seconds(let n): "\(String(format3: n)) s"
            case .data(let b):
                quoted(Array(b.prefix(EventLog.dataShown)))
                    + (b.count > EventLog.dataShown ? "… (\(b.count) bytes)" : "")
            }
        }
    }

    /// How many bytes of data a log line shows.
    static let dataShown = 64

    /// Metadata keys with a meaning of their own (the rest are the event's fields).
    enum Key {
        static let event = "event"
        static let caller = "caller"
        /// Present on a sentence: the text handler shows the message alone.
        static let sentence = "sentence"
        /// The fields' keys in the order they were given (metadata is a dictionary).
        static let order = "fields"
    }

    /// Logs an admission event (accept, reject, defer, withdrawn, …) about `caller`.
    func event(_ event: String, caller: String?, reason: String,
               fields: [(String, Value)] = []) {
        let level: Logger.Level = event == "error" ? .error : .info
        logger.log(level: level, "\(reason)", metadata: metadata(event, caller, fields))
    }

    /// Logs even under --quiet: what the program must say (where it listens, why it failed).
    func always(_ event: String, caller: String? = nil, reason: String,
                fields: [(String, Value)] = []) {
        let level: Logger.Level = event == "error" ? .error : .notice
        logger.log(level: level, "\(reason)", metadata: metadata(event, caller, fields))
    }

    /// A sentence rather than an event: text shows `wspcat: MESSAGE` alone; JSON shows the
    /// event, the message as its reason, and the fields. `always` ignores --quiet.
    func say(_ event: String, message: String, always: Bool = false,
             fields: [(String, Value)] = []) {
        var meta = metadata(event, nil, fields)
        meta[Key.sentence] = "true"
        let level: Logger.Level = event == "error" ? .error : always ? .notice : .info
        logger.log(level: level, "\(message)", metadata: meta)
    }

    private func metadata(_ event: String, _ caller: String?, _ fields: [(String, Value)])
        -> Logger.Metadata
    {
        var meta: Logger.Metadata = [Key.event: .string(event)]
        if let caller { meta[Key.caller] = .string(caller) }
        for (key, value) in fields { meta[key] = .stringConvertible(value) }
        meta[Key.order] = .array(fields.map { .string($0.0) })
        return meta
    }

    static func number(_ n: Double) -> String {
        n == n.rounded() && abs(n) < 1e15 ? String(Int64(n)) : String(format3: n)
    }

    /// UTC, ISO 8601 with milliseconds.
    static func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = tm()
        var seconds = ts.tv_sec
        gmtime_r(&seconds, &t)
        var buf = [CChar](repeating: 0, count: 32)
        strftime(&buf, buf.count, "%Y-%m-%dT%H:%M:%S", &t)
        let ms = String(ts.tv_nsec / 1_000_000).leftPad(3)
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) + ".\(ms)Z"
    }
}

/// What both handlers share: where lines go, the level, and metadata set on the logger.
private struct LineSink: Sendable {
    let fd: Int32
    /// Lines written; a lock with a value of some size (ThreadSanitizer takes an access to a
    /// zero-sized value for one to the mutex field at the same address).
    let written = Locked(0)

    func write(_ line: String) {
        written.withLock { n in
            _ = writeAll(fd, Array((line + "\n").utf8))
            n += 1
        }
    }

    /// The event's fields in the order given, then any other metadata by key.
    static func fields(_ meta: Logger.Metadata) -> [(String, Logger.MetadataValue)] {
        let special: Set<String> = [EventLog.Key.event, EventLog.Key.caller, EventLog.Key.sentence,
                                    EventLog.Key.order]
        var order: [String] = []
        if case .array(let keys)? = meta[EventLog.Key.order] {
            order = keys.compactMap { if case .string(let k) = $0 { k } else { nil } }
        }
        let rest = meta.keys.filter { !special.contains($0) && !order.contains($0) }.sorted()
        return (order + rest).compactMap { key in meta[key].map { (key, $0) } }
    }
}

/// `wspcat: EVENT CALLER: REASON; KEY VALUE…`, or `wspcat: SENTENCE`.
struct TextLogHandler: LogHandler {
    private let sink: LineSink
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    init(fd: Int32) { sink = LineSink(fd: fd) }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let meta = metadata.merging(event.metadata ?? [:]) { $1 }
        if meta[EventLog.Key.sentence] != nil {
            sink.write("wspcat: \(event.message)")
            return
        }
        var line = "wspcat: \(meta[EventLog.Key.event].map { "\($0)" } ?? "\(event.level)")"
        if let caller = meta[EventLog.Key.caller] { line += " \(caller)" }
        line += ": \(event.message)"
        for (key, value) in LineSink.fields(meta) { line += "; \(key) \(value)" }
        sink.write(line)
    }
}

/// One JSON object per line: `time`, `event`, `caller`, `reason`, then the fields, numbers
/// as numbers and data as JSON text.
struct JSONLogHandler: LogHandler {
    private let sink: LineSink
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    init(fd: Int32) { sink = LineSink(fd: fd) }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let meta = metadata.merging(event.metadata ?? [:]) { $1 }
        var line = "{\"time\":\(json(EventLog.timestamp()))"
        line += ",\"event\":\(json(meta[EventLog.Key.event].map { "\($0)" } ?? "\(event.level)"))"
        if let caller = meta[EventLog.Key.caller] { line += ",\"caller\":\(json("\(caller)"))" }
        line += ",\"reason\":\(json("\(event.message)"))"
        for (key, value) in LineSink.fields(meta) { line += Self.member(key, value) }
        sink.write(line + "}")
    }

    private static func member(_ key: String, _ value: Logger.MetadataValue) -> String {
        guard case .stringConvertible(let convertible) = value,
              let field = convertible as? EventLog.Value
        else { return ",\(json(key)):\(json("\(value)"))" }
        switch field {
        case .text(let s): return ",\(json(key)):\(json(s))"
        case .number(let n): return ",\(json(key)):\(EventLog.number(n))"
        case .seconds(let n): return ",\(json(key)):\(String(format3: n))"
        case .data(let b):
            var shown = Array(b.prefix(EventLog.dataShown))
            let utf8 = String(validating: b, as: UTF8.self) != nil
            // Shortening must not split a UTF-8 sequence.
            while utf8, !shown.isEmpty, String(validating: shown, as: UTF8.self) == nil {
                shown.removeLast()
            }
            var out: String
            if utf8, let text = String(validating: shown, as: UTF8.self) {
                out = ",\(json(key)):\(json(text))"
            } else {
                out = ",\(json(key + "Hex")):\(json(shown.map { String($0, radix: 16).leftPad(2) }.joined()))"
            }
            if b.count > shown.count { out += ",\(json(key + "Length")):\(b.count)" }
            return out
        }
    }
}

extension String {
    /// A number with at most three decimals, for seconds in log lines.
    init(format3 n: Double) {
        let thousandths = Int64((n * 1000).rounded())
        let sign = thousandths < 0 ? "-" : ""
        let a = abs(thousandths)
        var frac = String(a % 1000).leftPad(3)
        while frac.hasSuffix("0") { frac.removeLast() }
        self = sign + String(a / 1000) + (frac.isEmpty ? "" : "." + frac)
    }
}

/// A JSON string literal.
func json(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where u.value < 0x20:
            out += "\\u" + String(u.value, radix: 16).leftPad(4)
        default: out.unicodeScalars.append(u)
        }
    }
    return out + "\""
}

/// Seconds on the monotonic clock.
func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

func sleep(seconds: Double) {
    var ts = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - seconds.rounded(.down)) * 1e9))
    var left = timespec()
    while nanosleep(&ts, &left) != 0 && errno == EINTR { ts = left }
}
