import Foundation
import Testing

@testable import wspcat

/// `wspcat` end to end: a listener in one process, clients in others, checked by exit status,
/// output and log lines. One test at a time, so that timing-sensitive ones (deferral,
/// time-outs) do not compete for the machine's two CPUs.
@Suite(.serialized) struct WSPCatEndToEnd {
    @Test func binaryIsBuilt() {
        #expect(FileManager.default.isExecutableFile(atPath: WSPCat.binary),
                "no wspcat at \(WSPCat.binary): run `swift build --build-tests` first, or set WSPCAT")
    }

    @Test func requireDataRefusesAndCalleeDataArrives() throws {
        let server = try Run(["listen", "127.0.0.1:0", "--require-data", "token",
                              "--callee-data", "welcome"], stdin: "from the server\n")
        let port = try server.port()

        let refused = try connect(port, ["--data", "guess"], stdin: "never sent\n")
        #expect(refused.exitStatus() == 2)
        #expect(refused.stderr.contains("refused by 127.0.0.1:\(port)"), "\(refused.stderr)")
        #expect(refused.stdout.isEmpty)
        #expect(server.logs("reject 127.0.0.1:", "admission rule --require-data", "data \"guess\""),
                "\(server.stderr)")

        let client = try connect(port, ["--data", "token"], stdin: "from the client\n")
        #expect(client.exitStatus() == 0, "\(client.stderr)")
        #expect(client.stderr.contains("callee data \"welcome\""), "\(client.stderr)")
        #expect(client.stdout == "from the server\n")
        #expect(server.logs("accept 127.0.0.1:", "passed the admission rules"), "\(server.stderr)")

        // One connection by default: the server ends with it and has printed what it got.
        #expect(server.exitStatus() == 0, "\(server.stderr)")
        #expect(server.stdout == "from the client\n")
        #expect(server.logs("closed 127.0.0.1:"))

        // Nothing listens there any more: refused too.
        let late = try connect(port, ["--data", "token"])
        #expect(late.exitStatus() == 2, "\(late.stderr)")
    }

    @Test func denyAndAllowRejectByAddress() throws {
        let denied = try Run(["listen", "127.0.0.1:0", "--keep-open", "--echo",
                              "--allow", "127.0.0.0/8", "--deny", "127.0.0.1/32"])
        defer { denied.stop() }
        let client = try connect(try denied.port(), stdin: "hi\n")
        #expect(client.exitStatus() == 2, "\(client.stderr)")
        #expect(denied.logs("reject 127.0.0.1:", "admission rule --deny 127.0.0.1/32"),
                "\(denied.stderr)")

        let unlisted = try Run(["listen", "127.0.0.1:0", "--keep-open", "--echo",
                                "--allow", "10.0.0.0/8", "--allow", "fd00::/8"])
        defer { unlisted.stop() }
        let other = try connect(try unlisted.port(), stdin: "hi\n")
        #expect(other.exitStatus() == 2, "\(other.stderr)")
        #expect(unlisted.logs("reject 127.0.0.1:", "admission rule --allow"), "\(unlisted.stderr)")
    }

    @Test func denyIPv6() throws {
        let server = try Run(["listen", "[::1]:0", "--keep-open", "--echo", "--deny", "::1/128"])
        defer { server.stop() }
        let port: Int
        do { port = try server.port(within: 5) } catch {
            // A machine without IPv6 loopback cannot run this test.
            #expect(server.stderr.contains("cannot listen"), "\(server.stderr)")
            return
        }
        let client = try connect(port, stdin: "hi\n", host: "::1")
        #expect(client.exitStatus() == 2, "\(client.stderr)")
        #expect(server.logs("reject [::1]:", "admission rule --deny ::1/128"), "\(server.stderr)")
    }

    @Test func echoRoundTripWithJSONLog() throws {
        let server = try Run(["listen", "127.0.0.1:0", "--keep-open", "--echo",
                              "--log-format", "json"])
        defer { server.stop() }
        let port = try server.port()
        for text in ["ping\n", "pong twice\n"] {
            let client = try connect(port, ["--data", "anything", "--log-format", "json"], stdin: text)
            #expect(client.exitStatus() == 0, "\(client.stderr)")
            #expect(client.stdout == text)
            let said = try? JSONSerialization.jsonObject(with: Data(client.stderr.utf8)) as? [String: Any]
            #expect(said?["event"] as? String == "connected", "\(client.stderr)")
            #expect(said?["server"] as? String == "127.0.0.1:\(port)")
        }
        #expect(server.logs("\"event\":\"closed\"") && server.logs("\"received\":11"))
        let objects = server.stderrLines.compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        #expect(objects.count == server.stderrLines.count, "every line is one JSON object: \(server.stderr)")
        let accepts = objects.filter { $0["event"] as? String == "accept" }
        #expect(accepts.count == 2)
        #expect(accepts.allSatisfy { ($0["caller"] as? String)?.hasPrefix("127.0.0.1:") == true })
        #expect(accepts.first?["data"] as? String == "anything") // the bytes themselves, as a JSON string
        #expect(accepts.first?["reason"] as? String == "passed the admission rules")
    }

    @Test func execRunsTheCommandOnTheConnection() throws {
        let server = try Run(["listen", "127.0.0.1:0", "--exec", "tr a-z A-Z"])
        let client = try connect(try server.port(), stdin: "shout this\n")
        #expect(client.exitStatus() == 0, "\(client.stderr)")
        #expect(client.stdout == "SHOUT THIS\n")
        #expect(server.exitStatus() == 0, "\(server.stderr)")
        #expect(server.logs("closed 127.0.0.1:", "tr a-z A-Z exited with status 0"), "\(server.stderr)")
    }

    /// wspcat ignores SIGPIPE for itself; the command must start with every signal at its
    /// default (an ignored signal stays ignored across exec), or a command writing to a
    /// client that left would see errors instead of ending quietly.
    @Test func execStartsTheCommandWithDefaultSignals() throws {
        let server = try Run(["listen", "127.0.0.1:0", "--exec", "grep SigIgn /proc/$$/status"])
        let client = try connect(try server.port())
        #expect(client.exitStatus() == 0, "\(client.stderr)")
        let mask = client.stdout.split(separator: "\t").last.flatMap {
            UInt64($0.trimmingCharacters(in: .whitespacesAndNewlines), radix: 16)
        }
        #expect(mask != nil, "\(client.stdout)")
        #expect((mask ?? 1 << 12) & (1 << 12) == 0, "SIGPIPE (bit 12) ignored: \(client.stdout)")
        #expect(server.exitStatus() == 0, "\(server.stderr)")
    }

    @Test func plainTCPEcho() throws {
        let server = try Run(["listen", "127.0.0.1:0", "--protocol", "tcp", "--echo"])
        let client = try connect(try server.port(), ["--protocol", "tcp"], stdin: "plain\n")
        #expect(client.exitStatus() == 0, "\(client.stderr)")
        #expect(client.stdout == "plain\n")
        #expect(server.exitStatus() == 0)
    }

    /// Busy server: one connection in service for 2 s (the command sleeps). A client with a
    /// short --timeout is held and gives up (status 3; in the log a timeout when its stated
    /// patience ends the hold, or withdrawn when its close reaches the server first); one
    /// without is held, then accepted when the first connection ends.
    @Test func deferWhenBusyThenTimeoutAndAccept() throws {
        let server = try Run(["listen", "127.0.0.1:0", "--keep-open", "--defer-when-busy",
                              "--exec", "sleep 2; echo done"])
        defer { server.stop() }
        let port = try server.port()
        let first = try connect(port)
        #expect(server.logs("accept 127.0.0.1:"), "\(server.stderr)")

        let impatient = try connect(port, ["--timeout", "0.5"])
        #expect(impatient.exitStatus() == 3, "\(impatient.stderr)")
        #expect(impatient.stderr.contains("timed out after 0.5 s"), "\(impatient.stderr)")
        #expect(server.logs("hold 127.0.0.1:", "--defer-when-busy"), "\(server.stderr)")
        #expect(server.logsAny([["timeout 127.0.0.1:", "the client's connect limit passed"],
                                ["withdrawn 127.0.0.1:", "gave up while held"]]),
                "\(server.stderr)")

        let patient = try connect(port, ["--timeout", "8"])
        #expect(first.exitStatus() == 0, "\(first.stderr)")
        #expect(first.stdout == "done\n")
        #expect(patient.exitStatus() == 0, "\(patient.stderr)")
        #expect(patient.stdout == "done\n")
        #expect(server.logs("accept 127.0.0.1:", "waited"), "\(server.stderr)")
    }

    @Test func busyWithoutDeferralRejects() throws {
        let server = try Run(["listen", "127.0.0.1:0", "--keep-open", "--exec", "sleep 1"])
        defer { server.stop() }
        let port = try server.port()
        let first = try connect(port)
        #expect(server.logs("accept 127.0.0.1:"))
        let second = try connect(port)
        #expect(second.exitStatus() == 2, "\(second.stderr)")
        #expect(server.logs("reject 127.0.0.1:", "busy: 1 connection in service"), "\(server.stderr)")
        #expect(first.exitStatus() == 0)
    }

    @Test func quietKeepsTheListeningLineOnly() throws {
        let server = try Run(["listen", "127.0.0.1:0", "--echo", "--quiet"])
        let client = try connect(try server.port(), ["--quiet"], stdin: "x\n")
        #expect(client.exitStatus() == 0)
        #expect(client.stderr.isEmpty, "\(client.stderr)")
        #expect(server.exitStatus() == 0)
        #expect(server.stderrLines.count == 1 && server.stderr.contains("listening on"), "\(server.stderr)")
    }

    @Test func badCommandLinesExitWith64() throws {
        for arguments in [["connect", "127.0.0.1:1", "--protocol", "tcp", "--data", "x"],
                          ["connect", "not-an-address"],
                          ["listen", "127.0.0.1:0", "--deny", "10.0.0.0/33"],
                          ["listen", "127.0.0.1:0", "--max-pending", "2"]] {
            let run = try Run(arguments)
            #expect(run.exitStatus() == 64, "\(arguments): \(run.stderr)")
            #expect(!run.stderr.isEmpty)
        }
    }

    /// Each mistake is named, with the limit that applies.
    @Test func argumentErrorsSayWhatIsWrong() throws {
        let cases: [([String], String)] = [
            (["connect", "127.0.0.1:1", "--timeout", "-1"], "--timeout must be more than 0 seconds, not -1"),
            (["connect", "127.0.0.1:1", "--timeout", "1e9"], "at most 4294967 seconds"),
            (["connect", "127.0.0.1:1", "--timeout", "soon"], "'soon' is not a number of seconds"),
            (["connect", "127.0.0.1"], "has no port"),
            (["connect", "::1:80"], "[ADDRESS]:PORT"),
            (["connect", "127.0.0.1:1", "-s", "nowhere"], "--source 'nowhere' is not a numeric address"),
            (["listen", "127.0.0.1:0", "--max-pending", "-1"], "--max-pending must be at least 1, not -1"),
            (["listen", "127.0.0.1:0", "--backlog", "-5"], "--backlog must be from 1 to 4096, not -5"),
            (["listen", "127.0.0.1:0", "--backlog", "0"], "--backlog must be from 1 to 4096, not 0"),
            (["listen", "127.0.0.1"], "has no port"),
        ]
        for (arguments, message) in cases {
            let run = try Run(arguments)
            #expect(run.exitStatus() == 64, "\(arguments): \(run.stderr)")
            #expect(run.stderr.contains(message), "\(arguments): \(run.stderr)")
        }
    }

    @Test func versionIsTheLibrarys() throws {
        let run = try Run(["--version"])
        #expect(run.exitStatus() == 0)
        #expect(run.stdout == "wspcat 0.2.0\n")
    }

    /// Netcat's habits: a host name, a source address, and a line while the server defers.
    @Test func hostNamesSourceAddressAndAWaitingLine() throws {
        let server = try Run(["listen", "localhost:0", "--keep-open", "--defer-when-busy",
                              "--exec", "sleep 3; echo done"])
        defer { server.stop() }
        let port = try server.port()
        let first = try connect(port, ["-s", "127.0.0.2"], host: "localhost")
        #expect(server.logs("accept 127.0.0.2:"), "\(server.stderr)")
        let deferred = try connect(port, ["-v"], host: "localhost")
        #expect(deferred.exitStatus(within: 15) == 0, "\(deferred.stderr)")
        #expect(deferred.stderr.contains("connecting to 127.0.0.1:\(port) (localhost)"), "\(deferred.stderr)")
        #expect(deferred.stderr.contains("waiting for 127.0.0.1:\(port) to decide"), "\(deferred.stderr)")
        #expect(first.exitStatus() == 0, "\(first.stderr)")
    }

    @Test func helpDocumentsTheExitStatuses() throws {
        let run = try Run(["connect", "--help"])
        #expect(run.exitStatus() == 0)
        for text in ["0 connected", "1 any other error", "2 refused", "3 timed out"] {
            #expect(run.stdout.replacingOccurrences(of: "\n", with: " ")
                        .replacingOccurrences(of: "  ", with: " ").contains(text), "\(text): \(run.stdout)")
        }
    }

    @Test func demoShowsEveryOutcome() throws {
        let run = try Run(["demo"])
        #expect(run.exitStatus(within: 20) == 0, "\(run.stdout)\(run.stderr)")
        for event in ["wspcat: accept ", "wspcat: reject ", "wspcat: hold ", "connect refused",
                      "waited"] {
            #expect(run.stdout.contains(event), "\(event) missing: \(run.stdout)")
        }
        // Carol's patience runs out while held: a timeout at the server, or withdrawn.
        #expect(run.stdout.contains("wspcat: withdrawn ") || run.stdout.contains("wspcat: timeout "),
                "\(run.stdout)")
    }
}

@Suite struct AdmissionRulesTests {
    @Test func cidrMatching() throws {
        let net = try #require(CIDR("10.1.0.0/16"))
        #expect(net.contains(try #require(CIDR.bytes(ofHost: "10.1.200.3"))))
        #expect(!net.contains(try #require(CIDR.bytes(ofHost: "10.2.0.1"))))
        #expect(!net.contains(try #require(CIDR.bytes(ofHost: "::1"))))
        let v6 = try #require(CIDR("fd00::/8"))
        #expect(v6.contains(try #require(CIDR.bytes(ofHost: "fd12::1"))))
        #expect(!v6.contains(try #require(CIDR.bytes(ofHost: "fe80::1%2"))))
        #expect(try #require(CIDR("0.0.0.0/0")).contains([1, 2, 3, 4]))
        #expect(try #require(CIDR("10.0.0.7")).prefixLength == 32)
        for bad in ["10.0.0.0/33", "::/129", "nonsense", "10.0.0.0/", "1.2.3"] {
            #expect(CIDR(bad) == nil, "\(bad)")
        }
    }
}
