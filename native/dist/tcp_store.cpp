#include "dist/tcp_store.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <list>
#include <map>
#include <mutex>
#include <thread>

#include "core/error.h"

namespace vg::dist {
namespace {

enum Op : uint8_t { kSet = 1, kGet = 2, kAdd = 3, kWait = 4 };
enum Status : uint8_t { kOk = 0, kTimeout = 1 };

using Clock = std::chrono::steady_clock;

std::string errno_text(int e) { return std::string(std::strerror(e)); }

// getaddrinfo for a TCP endpoint; throws naming host:port.
struct AddrList {
  addrinfo* head = nullptr;
  ~AddrList() {
    if (head) freeaddrinfo(head);
  }
};

void resolve(const std::string& host, int port, int socktype, bool passive, AddrList& out, int rank) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = socktype;
  if (passive) hints.ai_flags = AI_PASSIVE;
  const std::string service = std::to_string(port);
  const int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &out.head);
  VG_CHECK(rc == 0 && out.head, "rank ", rank, ": cannot resolve the master address '", host, "' (port ", port,
           "): ", gai_strerror(rc), ". Set MASTER_ADDR / --master-addr to an IP address or host name that every rank can resolve");
}

// Writes all bytes; false when the peer is gone.
bool write_all(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// Reads exactly n bytes. Returns 1 on success, 0 when the peer closed, -1 on error, -2 on timeout
// (deadline == time_point::max() means no timeout).
int read_all(int fd, void* data, size_t n, Clock::time_point deadline) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    if (deadline != Clock::time_point::max()) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return -2;
      pollfd pfd{fd, POLLIN, 0};
      const int pr = ::poll(&pfd, 1, static_cast<int>(std::min<int64_t>(left, 1 << 30)));
      if (pr < 0 && errno == EINTR) continue;
      if (pr < 0) return -1;
      if (pr == 0) return -2;
    }
    const ssize_t r = ::recv(fd, p, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) return 0;
    if (r < 0) return -1;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return 1;
}

void put_u64(std::vector<char>& b, uint64_t v) {
  for (int i = 0; i < 8; ++i) b.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint64_t get_u64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}
std::vector<char> i64_payload(int64_t v) {
  std::vector<char> b;
  put_u64(b, static_cast<uint64_t>(v));
  return b;
}

constexpr uint32_t kMaxKey = 1 << 16;
constexpr uint64_t kMaxValue = uint64_t(1) << 32;

}  // namespace

// ---------------------------------------------------------------------------------------------------- server

struct TcpStoreServer::Impl {
  int listen_fd = -1;
  int port = 0;
  int rank = 0;
  std::atomic<bool> stopping{false};
  std::mutex m;
  std::condition_variable cv;  // signalled on every set/add and on stop
  std::map<std::string, std::vector<char>> data;
  std::mutex clients_m;
  std::list<int> client_fds;
  std::list<std::thread> client_threads;
  std::thread accept_thread;

  void accept_loop() {
    while (!stopping) {
      pollfd pfd{listen_fd, POLLIN, 0};
      const int pr = ::poll(&pfd, 1, 10);  // wakes regularly to notice stop (destruction waits at most this)
      if (pr <= 0) continue;
      const int fd = ::accept(listen_fd, nullptr, nullptr);
      if (fd < 0) continue;
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      std::lock_guard<std::mutex> lk(clients_m);
      if (stopping) {
        ::close(fd);
        break;
      }
      client_fds.push_back(fd);
      client_threads.emplace_back([this, fd] { serve(fd); });
    }
  }

  // One thread per client: ranks are few, and blocking gets are simplest this way.
  void serve(int fd) {
    const auto never = Clock::time_point::max();
    for (;;) {
      uint8_t op;
      uint32_t klen;
      uint64_t plen;
      if (read_all(fd, &op, 1, never) != 1 || read_all(fd, &klen, 4, never) != 1 || klen > kMaxKey) break;
      std::string key(klen, '\0');
      if (klen && read_all(fd, key.data(), klen, never) != 1) break;
      if (read_all(fd, &plen, 8, never) != 1 || plen > kMaxValue) break;
      std::vector<char> payload(plen);
      if (plen && read_all(fd, payload.data(), plen, never) != 1) break;

      uint8_t status = kOk;
      std::vector<char> reply;
      if (op == kSet) {
        std::lock_guard<std::mutex> lk(m);
        data[key] = std::move(payload);
        cv.notify_all();
      } else if (op == kAdd && plen == 8) {
        std::lock_guard<std::mutex> lk(m);
        auto& v = data[key];
        int64_t cur = v.size() == 8 ? static_cast<int64_t>(get_u64(v.data())) : 0;
        cur += static_cast<int64_t>(get_u64(payload.data()));
        v = i64_payload(cur);
        reply = v;
        cv.notify_all();
      } else if ((op == kGet || op == kWait) && plen == 8) {
        const auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(get_u64(payload.data())));
        std::unique_lock<std::mutex> lk(m);
        const bool found = cv.wait_until(lk, deadline, [&] { return stopping || data.count(key) > 0; });
        if (stopping) break;
        if (!found) status = kTimeout;
        else if (op == kGet) reply = data[key];
      } else {
        break;  // protocol error: drop the client
      }
      std::vector<char> head;
      head.push_back(static_cast<char>(status));
      put_u64(head, reply.size());
      if (!write_all(fd, head.data(), head.size())) break;
      if (!reply.empty() && !write_all(fd, reply.data(), reply.size())) break;
    }
  }
};

TcpStoreServer::TcpStoreServer(const std::string& master_addr, int port, int rank) : impl_(std::make_unique<Impl>()) {
  impl_->rank = rank;
  AddrList target;
  resolve(master_addr, port, SOCK_STREAM, false, target, rank);
  const int family = target.head->ai_family;
  const int fd = ::socket(family, SOCK_STREAM, 0);
  VG_CHECK(fd >= 0, "rank ", rank, ": socket() failed for the rendezvous store: ", errno_text(errno));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_storage addr{};
  socklen_t len;
  if (family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&addr);
    a->sin6_family = AF_INET6;
    a->sin6_addr = in6addr_any;
    a->sin6_port = htons(static_cast<uint16_t>(port));
    len = sizeof(sockaddr_in6);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&addr);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_ANY);
    a->sin_port = htons(static_cast<uint16_t>(port));
    len = sizeof(sockaddr_in);
  }
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    const int e = errno;
    ::close(fd);
    VG_CHECK(false, "rank ", rank, " could not listen on ", master_addr, ":", port, " for the rendezvous store: ",
             errno_text(e),
             e == EADDRINUSE ? ". Another job (or a previous run that is still exiting) uses this port; pick a free one "
                               "with --master-port / MASTER_PORT"
                             : ". Check MASTER_ADDR / MASTER_PORT");
  }
  VG_CHECK(::listen(fd, 1024) == 0, "rank ", rank, ": listen() on ", master_addr, ":", port, " failed: ", errno_text(errno));
  socklen_t alen = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &alen);
  impl_->port = ntohs(family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port
                                         : reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  impl_->listen_fd = fd;
  impl_->accept_thread = std::thread([this] { impl_->accept_loop(); });
}

TcpStoreServer::~TcpStoreServer() {
  Impl& s = *impl_;
  {
    std::lock_guard<std::mutex> lk(s.m);
    s.stopping = true;
  }
  s.cv.notify_all();
  if (s.accept_thread.joinable()) s.accept_thread.join();
  {
    std::lock_guard<std::mutex> lk(s.clients_m);
    for (int fd : s.client_fds) ::shutdown(fd, SHUT_RDWR);  // unblocks the serving threads' reads
  }
  for (auto& t : s.client_threads) t.join();
  for (int fd : s.client_fds) ::close(fd);
  if (s.listen_fd >= 0) ::close(s.listen_fd);
}

int TcpStoreServer::port() const { return impl_->port; }

// ---------------------------------------------------------------------------------------------------- client

TcpStore::TcpStore(const std::string& host, int port, int rank, std::chrono::milliseconds timeout)
    : host_(host), port_(port), rank_(rank), timeout_(timeout) {
  const auto deadline = Clock::now() + timeout;
  std::string last = "no attempt";
  int backoff_ms = 5;  // rank 0 usually comes up within milliseconds; back off to 200 ms for slow starts
  for (;;) {
    AddrList addrs;
    resolve(host, port, SOCK_STREAM, false, addrs, rank);
    for (addrinfo* a = addrs.head; a; a = a->ai_next) {
      const int fd = ::socket(a->ai_family, a->ai_socktype, a->ai_protocol);
      if (fd < 0) continue;
      if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        fd_ = fd;
        return;
      }
      last = errno_text(errno);
      ::close(fd);
    }
    if (Clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms));
    backoff_ms = std::min(200, backoff_ms * 2);
  }
  VG_CHECK(false, "rank ", rank, " could not connect to the rendezvous store at ", host, ":", port, " within ",
           timeout.count() / 1000.0, " s (last error: ", last,
           "). Rank 0 serves it: check that rank 0 started, that MASTER_ADDR / MASTER_PORT are the same on every rank "
           "and reachable from this host (firewall), or raise the timeout");
}

TcpStore::~TcpStore() {
  if (fd_ >= 0) ::close(fd_);
}

std::string TcpStore::where() const {
  return "rendezvous store " + host_ + ":" + std::to_string(port_) + " (rank " + std::to_string(rank_) + ")";
}

std::vector<char> TcpStore::round_trip(uint8_t op, const std::string& key, const std::vector<char>& payload,
                                       std::chrono::milliseconds reply_within, uint8_t* status) {
  VG_CHECK_ARG(key.size() <= kMaxKey, "store key is too long (", key.size(), " bytes, limit ", kMaxKey, ")");
  VG_CHECK_ARG(payload.size() <= kMaxValue, "store value is too large (", payload.size(), " bytes)");
  std::vector<char> msg;
  msg.push_back(static_cast<char>(op));
  const uint32_t klen = static_cast<uint32_t>(key.size());
  msg.insert(msg.end(), reinterpret_cast<const char*>(&klen), reinterpret_cast<const char*>(&klen) + 4);
  msg.insert(msg.end(), key.begin(), key.end());
  put_u64(msg, payload.size());
  msg.insert(msg.end(), payload.begin(), payload.end());
  const char* lost = "the store server (rank 0) closed the connection: rank 0 exited or failed. Check rank 0's output";
  VG_CHECK(write_all(fd_, msg.data(), msg.size()), where(), ": ", lost);
  // The server answers a blocking request when its own timeout passes; allow some slack before giving up on it.
  const auto deadline = Clock::now() + reply_within + std::chrono::seconds(10);
  char head[9];
  int r = read_all(fd_, head, 9, deadline);
  VG_CHECK(r != -2, where(), ": no reply from the store server within ", reply_within.count() / 1000.0 + 10, " s");
  VG_CHECK(r == 1, where(), ": ", lost);
  *status = static_cast<uint8_t>(head[0]);
  const uint64_t n = get_u64(head + 1);
  VG_CHECK(n <= kMaxValue, where(), ": malformed reply (", n, " bytes)");
  std::vector<char> reply(n);
  if (n) {
    r = read_all(fd_, reply.data(), n, deadline);
    VG_CHECK(r == 1, where(), ": ", lost);
  }
  return reply;
}

void TcpStore::set(const std::string& key, const std::vector<char>& value) {
  uint8_t st;
  round_trip(kSet, key, value, timeout_, &st);
}

std::vector<char> TcpStore::get(const std::string& key) { return get(key, timeout_); }

std::vector<char> TcpStore::get(const std::string& key, std::chrono::milliseconds timeout) {
  uint8_t st;
  auto v = round_trip(kGet, key, i64_payload(timeout.count()), timeout, &st);
  VG_CHECK(st == kOk, where(), ": timed out after ", timeout.count() / 1000.0, " s waiting for key '", key,
           "' (a rank has not joined or stopped during rendezvous). Start every rank with the same WORLD_SIZE, "
           "MASTER_ADDR and MASTER_PORT, or raise the timeout");
  return v;
}

void TcpStore::wait(const std::vector<std::string>& keys) { wait(keys, timeout_); }

void TcpStore::wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (const auto& key : keys) {
    const auto left = std::max<int64_t>(
        0, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
    uint8_t st;
    round_trip(kWait, key, i64_payload(left), std::chrono::milliseconds(left), &st);
    VG_CHECK(st == kOk, where(), ": timed out after ", timeout.count() / 1000.0, " s waiting for key '", key,
             "' (a rank has not joined or stopped during rendezvous). Start every rank with the same WORLD_SIZE, "
             "MASTER_ADDR and MASTER_PORT, or raise the timeout");
  }
}

int64_t TcpStore::add(const std::string& key, int64_t delta) {
  uint8_t st;
  auto v = round_trip(kAdd, key, i64_payload(delta), timeout_, &st);
  VG_CHECK(v.size() == 8, where(), ": malformed add reply");
  return static_cast<int64_t>(get_u64(v.data()));
}

std::string local_address_towards(const std::string& host, int port) {
  AddrList addrs;
  resolve(host, port, SOCK_DGRAM, false, addrs, -1);
  for (addrinfo* a = addrs.head; a; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, SOCK_DGRAM, 0);
    if (fd < 0) continue;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
      sockaddr_storage local{};
      socklen_t len = sizeof(local);
      if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0) {
        char buf[INET6_ADDRSTRLEN] = {0};
        const void* src = local.ss_family == AF_INET6
                              ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(&local)->sin6_addr)
                              : static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(&local)->sin_addr);
        if (inet_ntop(local.ss_family, src, buf, sizeof(buf))) {
          ::close(fd);
          return buf;
        }
      }
    }
    ::close(fd);
  }
  VG_CHECK(false, "no local network route to the master address ", host, ":", port,
           ". Check MASTER_ADDR, or set the local address to bind explicitly");
}

}  // namespace vg::dist
