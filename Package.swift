// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "WSP",
    products: [
        .library(name: "CWSP", targets: ["CWSP"]),
        .library(name: "WSP", targets: ["WSP"]),
        .executable(name: "wspcat", targets: ["wspcat"]),
    ],
    dependencies: [
        // For wspcat and the documentation only: the libraries stay free of dependencies.
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        // `make docs`: the DocC archive of the Swift module.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // The C provider. Its public headers are the top-level include/ folder, the same
        // files C programs use with `cc -Iinclude`: one copy, no second header tree.
        .target(
            name: "CWSP",
            path: ".",
            sources: ["Sources/CWSP"],
            publicHeadersPath: "include",
            cSettings: [
                .define("_GNU_SOURCE"),
                .headerSearchPath("Sources/CWSP"),
            ]
        ),
        .target(
            name: "WSP",
            dependencies: ["CWSP"],
            path: "Sources/WSP",
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // netcat with admission control: the condition function as command-line rules.
        .executableTarget(
            name: "wspcat",
            dependencies: [
                "WSP", "CWSP",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/wspcat",
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // examples/swift: an async admission server and its clients (make example-swift, CI).
        .executableTarget(
            name: "wsp-admission-example",
            dependencies: ["WSP"],
            path: "examples/swift",
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .testTarget(
            name: "WSPTests",
            dependencies: ["WSP"],
            path: "Tests/WSPTests",
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // Drives the built wspcat binary end to end, in separate processes.
        .testTarget(
            name: "WSPCatTests",
            dependencies: ["wspcat", "WSP", .product(name: "Logging", package: "swift-log")],
            path: "Tests/WSPCatTests",
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
