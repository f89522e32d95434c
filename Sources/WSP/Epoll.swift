import CWSPShims
import Glibc

/// The three epoll calls the poller needs, through the `CWSPShims` C target (Swift's `Glibc`
/// module does not bring in `<sys/epoll.h>`, and a shim keeps `epoll_event`'s layout in C).
struct Epoll: Sendable {
    func create() -> Int32 { cwsp_epoll_create() }

    /// Watches `fd` for readability (level-triggered), reporting `token`. 0 or errno.
    func add(_ epfd: Int32, fd: Int32, token: UInt64) -> Int32 {
        cwsp_epoll_add(epfd, fd, token)
    }

    func remove(_ epfd: Int32, fd: Int32) {
        cwsp_epoll_remove(epfd, fd)
    }

    /// Waits for events; returns the tokens of the ready descriptors (empty after EINTR).
    func wait(_ epfd: Int32, into buffer: UnsafeMutableBufferPointer<UInt64>) -> [UInt64] {
        let n = cwsp_epoll_wait(epfd, buffer.baseAddress, Int32(buffer.count), -1)
        return n > 0 ? Array(buffer.prefix(Int(n))) : []
    }
}
