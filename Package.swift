// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "task-scheduler",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "task-scheduler", targets: ["task-scheduler"]),
        .executable(name: "task-scheduler-bench", targets: ["task-scheduler-bench"]),
        .library(name: "Scheduler", targets: ["Scheduler"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
    ],
    targets: [
        // Lua 5.4 from Debian's liblua5.4-dev; shim.h wraps Lua's function-like macros.
        .systemLibrary(
            name: "CLua",
            pkgConfig: "lua5.4",
            providers: [.apt(["liblua5.4-dev"])]
        ),
        // librdkafka from Debian's librdkafka-dev, including the mock cluster API.
        .systemLibrary(
            name: "CRdKafka",
            pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"])]
        ),
        // glibc's malloc.h (mallinfo2), for the benchmark's memory figures.
        .systemLibrary(name: "CMalloc"),
        .target(
            name: "Scheduler",
            dependencies: [
                "CLua",
                "CRdKafka",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "TOMLKit", package: "TOMLKit"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            // Compiled into the binary: the daemon serves it with no files to install.
            resources: [.embedInCode("Resources/dashboard.html")]
        ),
        .executableTarget(
            name: "task-scheduler",
            dependencies: [
                "Scheduler",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        // `make bench`: kept out of the daemon; it reaches the library's
        // internals only through the `@_spi(Benchmark)` declarations.
        .executableTarget(
            name: "task-scheduler-bench",
            dependencies: [
                "Scheduler",
                "CRdKafka",
                "CLua",
                "CMalloc",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "SchedulerTests",
            dependencies: [
                "Scheduler",
                "CRdKafka",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ]
        ),
    ]
)
