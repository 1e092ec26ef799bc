// A small key/value store over TCP for rendezvous (like torch.distributed's TCPStore). Rank 0 runs the server on
// master_addr:master_port; every rank (rank 0 too) connects as a client, retrying until the timeout, and uses
//   set(key, bytes)   store a value (overwrites)
//   get(key)          the value, blocking until some rank sets it or the timeout passes
//   wait(keys)        block until every key is present or the timeout passes
//   add(key, n)       atomically add n to a 64-bit counter stored under key (created at 0); returns the new value
// Gloo's connectFullMesh uses it through an adapter (gloo_communicator.cpp), so this file needs no Gloo headers.
//
// Wire format (little-endian, one request then one reply per round trip):
//   request  u8 op | u32 key length | key | u64 payload length | payload
//   reply    u8 status (0 ok, 1 timeout) | u64 payload length | payload
// payloads: SET the value; GET / WAIT the timeout in milliseconds (i64); ADD the delta (i64); GET's reply carries
// the value, ADD's the new counter (i64).
// Errors (address in use, connection refused until the timeout, server gone, timeouts) throw vg::Error naming
// host:port, this rank and what to do.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace vg::dist {

class TcpStoreServer {
 public:
  // Listens on the wildcard address of master_addr's family at `port` (port 0 picks a free one, see port()).
  TcpStoreServer(const std::string& master_addr, int port, int rank);
  ~TcpStoreServer();
  TcpStoreServer(const TcpStoreServer&) = delete;
  TcpStoreServer& operator=(const TcpStoreServer&) = delete;
  int port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class TcpStore {
 public:
  // Connects to host:port, retrying refused/unreachable connections until `timeout` passes. `rank` is only used in
  // error messages.
  TcpStore(const std::string& host, int port, int rank, std::chrono::milliseconds timeout);
  ~TcpStore();
  TcpStore(const TcpStore&) = delete;
  TcpStore& operator=(const TcpStore&) = delete;

  void set(const std::string& key, const std::vector<char>& value);
  std::vector<char> get(const std::string& key);
  std::vector<char> get(const std::string& key, std::chrono::milliseconds timeout);
  void wait(const std::vector<std::string>& keys);
  void wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout);
  int64_t add(const std::string& key, int64_t delta);

  std::chrono::milliseconds timeout() const { return timeout_; }
  const std::string& host() const { return host_; }
  int port() const { return port_; }

 private:
  std::vector<char> round_trip(uint8_t op, const std::string& key, const std::vector<char>& payload,
                               std::chrono::milliseconds reply_within, uint8_t* status);
  std::string where() const;
  std::string host_;
  int port_;
  int rank_;
  std::chrono::milliseconds timeout_;
  int fd_ = -1;
};

// The local IP address this machine uses to reach host:port (a UDP socket's route lookup; nothing is sent).
// Used as Gloo's bind address so ranks on other hosts (or network namespaces) can reach this one.
std::string local_address_towards(const std::string& host, int port);

}  // namespace vg::dist
