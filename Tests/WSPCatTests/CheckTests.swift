import Foundation
import Testing

/// `listen --check CMD`: each request is held while a command decides, others going on.
extension WSPCatEndToEnd {
    @Test func checkAcceptsWithItsOutputAsCalleeData() throws {
        // The caller data would run a command if it ever reached a shell as text.
        let data = "a$(touch pwned)`touch pwned`"
        let server = try Run(["listen", "127.0.0.1:0", "-k", "--echo", "--check",
                              #"printf '%s:%s %s %s %s' "$WSP_CALLER_ADDRESS" "$WSP_CALLER_PORT" "$WSP_CALLER_DATA_LENGTH" "$WSP_CALLER_DATA_HEX" "$WSP_CALLER_QOS""#])
        defer { server.stop() }
        let client = try connect(try server.port(), ["--data", data], stdin: "hi\n")
        #expect(client.exitStatus() == 0, "\(client.stderr)")
        #expect(client.stdout == "hi\n")
        let hex = data.utf8.map { String(format: "%02x", $0) }.joined()
        let said = client.stderr.components(separatedBy: "callee data \"").last?
            .components(separatedBy: "\"").first ?? ""
        let words = said.split(separator: " ").map(String.init)
        #expect(words.count == 4, "\(client.stderr)")
        #expect(words.first?.hasPrefix("127.0.0.1:") == true, "\(said)")
        #expect(words.first.flatMap { Int($0.dropFirst("127.0.0.1:".count)) }.map { $0 > 0 } == true,
                "the port: \(said)")
        #expect(Array(words.dropFirst()) == [String(data.utf8.count), hex, "0"], "\(said)")
        #expect(server.logs("check 127.0.0.1:", "held while the check runs"), "\(server.stderr)")
        #expect(server.logs("accept 127.0.0.1:", "passed the admission rules and the check"),
                "\(server.stderr)")
        #expect(!FileManager.default.fileExists(atPath: server.dir.appendingPathComponent("pwned").path))
    }

    @Test func checkExitingNonZeroRejects() throws {
        let server = try Run(["listen", "127.0.0.1:0", "-k", "--echo", "--check", "exit 1"])
        defer { server.stop() }
        let client = try connect(try server.port(), ["--data", "x"])
        #expect(client.exitStatus() == 2, "\(client.stderr)")
        #expect(client.stderr.contains("refused by 127.0.0.1:"), "\(client.stderr)")
        #expect(server.logs("reject 127.0.0.1:", "the check exited with status 1"), "\(server.stderr)")
    }

    /// Output longer than the client takes is not cut short: the client is refused and told
    /// why.
    @Test func checkOutputLongerThanTheClientTakesRefuses() throws {
        let server = try Run(["listen", "127.0.0.1:0", "-k", "--echo", "--check",
                              "head -c 20000 /dev/zero"])
        defer { server.stop() }
        let client = try connect(try server.port(), ["--data", "x"])
        #expect(client.exitStatus() == 2, "\(client.stderr)")
        #expect(client.stderr.contains("callee data did not fit"), "\(client.stderr)")
        #expect(server.logs("reject 127.0.0.1:", "the check printed 20000 bytes",
                            "WSP_REASON_CALLEE_DATA_TOO_LONG"), "\(server.stderr)")
    }

    /// The first client's check waits for a file the test creates only once the second
    /// client (whose check is quick) has been served: a slow check that held up the others
    /// would never finish.
    @Test func aSlowCheckDoesNotDelayAFastOne() throws {
        let server = try Run(["listen", "127.0.0.1:0", "-k", "--echo", "--max-pending", "4",
                              "--check",
                              #"if [ "$WSP_CALLER_DATA_HEX" = 736c6f77 ]; then while [ ! -e go ]; do sleep 0.05; done; fi; printf %s "$WSP_CALLER_DATA_HEX""#])
        defer { server.stop() }
        let port = try server.port()
        let slow = try connect(port, ["--data", "slow"], stdin: "s\n")
        #expect(server.logs("check 127.0.0.1:", "data \"slow\""), "\(server.stderr)")
        let fast = try connect(port, ["--data", "fast"], stdin: "f\n")
        #expect(fast.exitStatus() == 0, "\(fast.stderr)")
        #expect(fast.stderr.contains("callee data \"66617374\""), "\(fast.stderr)")
        #expect(fast.stdout == "f\n")
        #expect(slow.isRunning, "the slow client was answered before its check could end")
        try Data().write(to: server.dir.appendingPathComponent("go"))
        #expect(slow.exitStatus() == 0, "\(slow.stderr)")
        #expect(slow.stderr.contains("callee data \"736c6f77\""), "\(slow.stderr)")
        #expect(slow.stdout == "s\n")
    }

    /// A check that hangs is ended with the hold deadline: the client is refused (hold
    /// timeout), the command and what it started are killed and reaped, and the server has
    /// the descriptors it had before.
    @Test func aHangingCheckIsKilledAtTheHoldDeadline() throws {
        let server = try Run(["listen", "127.0.0.1:0", "-k", "--echo", "--hold-deadline", "0.5",
                              "--check",
                              #"[ "$WSP_CALLER_DATA_HEX" = 68616e67 ] || exit 0; sleep 100 & echo $! > sleep.pid; echo $$ > check.pid; wait"#])
        defer { server.stop() }
        let port = try server.port()
        // A first check, so that whatever the first one sets up is there before counting.
        let first = try connect(port, ["--data", "ok"], stdin: "x\n")
        #expect(first.exitStatus() == 0, "\(first.stderr)")
        #expect(server.logs("closed 127.0.0.1:"), "\(server.stderr)")
        let descriptors = { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(server.pid)/fd").count) ?? -1 }
        let before = descriptors()

        let hung = try connect(port, ["--data", "hang"])
        #expect(hung.exitStatus() == 2, "\(hung.stderr)")
        #expect(hung.stderr.contains("hold deadline"), "\(hung.stderr)")
        #expect(server.logs("timeout 127.0.0.1:", "its check ran (the check was killed)"),
                "\(server.stderr)")
        for name in ["check.pid", "sleep.pid"] {
            let text = (try? String(contentsOf: server.dir.appendingPathComponent(name), encoding: .utf8)) ?? ""
            let pid = try #require(Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), "\(name): \(text)")
            // Gone from the process table: killed, and reaped (a zombie keeps its entry).
            #expect(server.wait(5) { !FileManager.default.fileExists(atPath: "/proc/\(pid)") },
                    "\(name) \(pid) is still there")
        }
        #expect(server.wait(5) { descriptors() == before }, "descriptors: \(before) before, \(descriptors()) after")
    }

    @Test func checkArgumentsAreChecked() throws {
        let cases: [([String], String)] = [
            (["listen", "127.0.0.1:0", "--check", "true", "--callee-data", "x"], "--check and --callee-data exclude each other"),
            (["listen", "127.0.0.1:0", "--check", "true", "--max-checks", "0"], "--max-checks must be from 1 to 1024, not 0"),
            (["listen", "127.0.0.1:0", "--check", "true", "--hold-deadline", "-1"], "--hold-deadline must be from 0"),
            (["listen", "127.0.0.1:0", "--hold-deadline", "soon"], "'soon' is not a number of seconds"),
        ]
        for (arguments, message) in cases {
            let run = try Run(arguments)
            #expect(run.exitStatus() == 64, "\(arguments): \(run.stderr)")
            #expect(run.stderr.contains(message), "\(arguments): \(run.stderr)")
        }
    }

    @Test func helpDocumentsTheCheckEnvironment() throws {
        let run = try Run(["listen", "--help"])
        #expect(run.exitStatus() == 0)
        let text = run.stdout.replacingOccurrences(of: "\n", with: " ")
        for name in ["WSP_CALLER_ADDRESS", "WSP_CALLER_PORT", "WSP_CALLER_DATA_HEX",
                     "WSP_CALLER_DATA_LENGTH", "WSP_CALLER_QOS", "WSP_CALLEE_CAPACITY",
                     "WSP_LOCAL_ADDRESS", "WSP_LOCAL_PORT", "WSP_PROTOCOL", "--max-checks"] {
            #expect(text.contains(name), "\(name) missing: \(run.stdout)")
        }
    }
}
