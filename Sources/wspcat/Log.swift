import ArgumentParser
import Glibc
import WSP

enum LogFormat: String, ExpressibleByArgument, CaseIterable, Sendable {
    case text
    case json
}

/// One line per event on stderr: `wspcat: EVENT CALLER: REASON` in text, one JSON object in
/// JSON (`{"time":…,"event":…,"caller":…,"reason":…}` plus the event's own fields).
final class EventLog: Sendable {
    let format: LogFormat
    let quiet: Bool
    /// stderr, except in the demo, which tells its whole story on stdout.
    let fd: Int32
    private let lock = Locked(())

    init(format: LogFormat, quiet: Bool, fd: Int32 = 2) {
        self.format = format
        self.quiet = quiet
        self.fd = fd
    }

    /// A field of a log line: text or a number (JSON keeps numbers unquoted).
    enum Value: Sendable {
        case text(String)
        case number(Double)
        /// Seconds: `1.5 s` in text, a number in JSON.
        case seconds(Double)
        /// Bytes from the network: quoted and escaped in text; in JSON a string when they are
        /// UTF-8, else `KEYHex` with their hex digits. Past `dataShown` bytes they are
        /// shortened, and the whole length is given (`KEYLength` in JSON).
        case data([UInt8])
    }

    /// How many bytes of data a log line shows.
    static let dataShown = 64

    /// Logs an admission event (accept, reject, defer, withdrawn, …) about `caller`.
    func event(_ event: String, caller: String?, reason: String,
               fields: [(String, Value)] = []) {
        if quiet { return }
        write(event: event, caller: caller, reason: reason, fields: fields)
    }

    /// Logs even under --quiet: what the program must say (where it listens, why it failed).
    func always(_ event: String, caller: String? = nil, reason: String,
                fields: [(String, Value)] = []) {
        write(event: event, caller: caller, reason: reason, fields: fields)
    }

    /// A sentence rather than an event: text shows `wspcat: MESSAGE` alone; JSON shows the
    /// event, the message as its reason, and the fields. `always` ignores --quiet.
    func say(_ event: String, message: String, always: Bool = false,
             fields: [(String, Value)] = []) {
        if quiet && !always { return }
        write(event: event, caller: nil, reason: message, fields: fields, sentence: true)
    }

    private func write(event: String, caller: String?, reason: String,
                       fields: [(String, Value)], sentence: Bool = false) {
        var line: String
        switch format {
        case .text:
            if sentence {
                line = "wspcat: \(reason)"
            } else {
                line = "wspcat: \(event)"
                if let caller { line += " \(caller)" }
                line += ": \(reason)"
            }
            for (key, value) in fields where !sentence { // a sentence says it all
                switch value {
                case .text(let s): line += "; \(key) \(s)"
                case .number(let n): line += "; \(key) \(Self.number(n))"
                case .seconds(let n): line += "; \(key) \(String(format3: n)) s"
                case .data(let b):
                    line += "; \(key) \(quoted(Array(b.prefix(Self.dataShown))))"
                    if b.count > Self.dataShown { line += "… (\(b.count) bytes)" }
                }
            }
        case .json:
            line = "{\"time\":\(json(Self.timestamp())),\"event\":\(json(event))"
            if let caller { line += ",\"caller\":\(json(caller))" }
            line += ",\"reason\":\(json(reason))"
            for (key, value) in fields {
                switch value {
                case .text(let s): line += ",\(json(key)):\(json(s))"
                case .number(let n): line += ",\(json(key)):\(Self.number(n))"
                case .seconds(let n): line += ",\(json(key)):\(String(format3: n))"
                case .data(let b):
                    var shown = Array(b.prefix(Self.dataShown))
                    // Shortening must not split a UTF-8 sequence.
                    while !shown.isEmpty, String(validating: shown, as: UTF8.self) == nil,
                          String(validating: b, as: UTF8.self) != nil { shown.removeLast() }
                    if let text = String(validating: shown, as: UTF8.self) {
                        line += ",\(json(key)):\(json(text))"
                    } else {
                        line += ",\(json(key + "Hex")):\(json(shown.map { String($0, radix: 16).leftPad(2) }.joined()))"
                    }
                    if b.count > shown.count { line += ",\(json(key + "Length")):\(b.count)" }
                }
            }
            line += "}"
        }
        line += "\n"
        lock.withLock { _ in _ = writeAll(fd, Array(line.utf8)) }
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
