// swift-tools-version:6.0
// The Swift benchmarks, in their own package so that the library builds without SwiftNIO.
// Run from the repository root: `make bench-swift` (release build, pinned to one CPU).
import Foundation
import PackageDescription

// A path dependency's identity is its folder's name, which depends on where the repository
// was cloned: derive it rather than assume it.
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()

let package = Package(
    name: "WSPBenchmarks",
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
    ],
    targets: [
        .executableTarget(
            name: "wsp-bench",
            dependencies: [
                .product(name: "WSP", package: root.lastPathComponent),
                .product(name: "CWSP", package: root.lastPathComponent),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        )
    ]
)
