#pragma once
/// CurveZMQ for every TCP endpoint of a node: key pairs and key files, the allow
/// list of public keys, the ZAP handler that enforces it, and the two calls that put
/// a socket under CURVE. Library `tender_curve` (protocol/, ZeroMQ only: no CAF).
///
/// How an endpoint of a node is secured (the gateway, actors/gateway.cpp, does exactly
/// this; `ctx->security` is the node's `server_setup`, loaded once by node::start):
///
///   // a member declared after the owner's zmq::context_t (it must stop first):
///   std::unique_ptr<curve::authenticator> auth_;
///   // each server socket (ROUTER, PUB, ...), before bind(), in its owning thread:
///   if (auto err = ctx->security->secure(router, zctx, endpoint, "bus", auth_, warn))
///     return *err;                       // e.g. plaintext on a non-loopback address
///   router.bind(endpoint);
///   // each client socket (DEALER, SUB, ...), before connect():
///   curve::secure_client(dealer, my_keys, server_public_key);
///   dealer.connect(endpoint);
///
/// Underneath, `secure` starts one `authenticator` (the ZAP handler) per ZeroMQ
/// context and calls its `secure_server`; both can be used directly.
///
/// Whether an endpoint may go without CURVE is `curve::listen_rule` (plaintext only
/// on loopback, and only when the operator asked for it with --dev or --insecure).
///
/// A client whose public key is not on the allow list is refused during the
/// handshake by the ZAP handler: ZeroMQ then drops the connection, so nothing that
/// client sends is ever delivered to the server socket (and so to any actor). A
/// plaintext client, or one that encrypted to the wrong server key, fails the
/// handshake itself. Each refusal is counted; it is logged once per peer (key and
/// address) for unknown keys, and at most once a minute per endpoint for failed
/// handshakes, so a client retrying every 100 ms does not flood the log.

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace zmq {
class context_t;
class socket_t;
} // namespace zmq

namespace tender::curve {

/// Characters of a Z85-encoded CURVE key (32 bytes).
constexpr std::size_t key_chars = 40;

/// True when this libzmq was built with CURVE (libsodium).
bool available();

/// True when `s` is 40 characters of the Z85 alphabet (any such string decodes to a key).
bool is_z85_key(const std::string& s);

struct key_pair {
  std::string public_key; ///< Z85, 40 characters
  std::string secret_key; ///< Z85, 40 characters; empty when only the public half is known
};

/// A fresh key pair (zmq_curve_keypair). Error: CURVE is not available.
std::variant<key_pair, std::string> generate();

/// Writes `path` (the pair, mode 0600) and `path.pub` (the public key only).
/// Refuses to overwrite either unless `force`. Error: names the file.
std::optional<std::string> write_key_files(const std::string& path, const key_pair& k, bool force);

/// Reads a secret key file written by write_key_files:
///
///     # comment
///     public = "<40 Z85 characters>"
///     secret = "<40 Z85 characters>"
///
/// Errors name the file (and the line): unreadable, readable by group or others
/// ("chmod 600 FILE"), an unknown line, a key of the wrong length or alphabet, no
/// secret, a public key that is not the secret key's.
std::variant<key_pair, std::string> load_key_pair(const std::string& path);

/// A public key given as `spec`: a path ending in ".pub" (a file holding one
/// `public = "..."` line, or the bare key) or the 40-character Z85 key itself.
/// The result's secret_key is empty. Errors name the file and line.
std::variant<key_pair, std::string> load_public_key(const std::string& spec);

/// The public keys allowed to connect to this node's servers, each with where it came
/// from (for log lines). A copy is cheap enough to hand to the authenticator.
class allow_list {
public:
  /// `entries`: Z85 keys or ".pub" paths (already resolved against the config's
  /// directory); `dir`: every "*.pub" file in it (empty: none). Errors name the entry
  /// ("security.allow[2]") or the file.
  static std::variant<allow_list, std::string> load(const std::vector<std::string>& entries,
                                                    const std::string& dir);
  /// Adds a key (Z85) with a label naming its source.
  void add(const std::string& z85, std::string source);
  /// The label of `z85`, or null when it is not allowed.
  const std::string* find(const std::string& z85) const;
  std::size_t size() const { return keys_.size(); }
  /// The allow_dir this list was loaded from (re-read when an unknown key shows up).
  const std::string& dir() const { return dir_; }
  /// Re-reads dir(): adds keys whose files appeared since. Error: a bad file in it.
  std::optional<std::string> rescan_dir();

private:
  std::map<std::string, std::string> keys_; // Z85 -> source
  std::string dir_;
};

/// Whether a server may listen on `endpoint`: CURVE when `have_keys` and the
/// transport is tcp:// or ipc://; inproc:// never uses CURVE; plaintext tcp only on a
/// loopback address (127.0.0.0/8, ::1, localhost) and only when `plaintext_ok`
/// (--dev, --insecure or `[security] insecure = true`). The error names the rule and
/// how to fix it.
enum class listen_mode { curve, plaintext };
std::variant<listen_mode, std::string> listen_rule(const std::string& endpoint, bool have_keys,
                                                   bool plaintext_ok);
/// True for tcp://127.x.x.x:P, tcp://[::1]:P, tcp://localhost:P (and non-tcp endpoints: false).
bool is_loopback_tcp(const std::string& endpoint);

/// Makes `s` a CURVE client of the server whose public key is `server_public` (Z85),
/// authenticating as `mine`. Call before `s.connect()`.
void secure_client(zmq::socket_t& s, const key_pair& mine, const std::string& server_public);

class authenticator;

/// Refusal and acceptance counts (for metrics), shared by a node's authenticators.
struct counters {
  std::atomic<std::uint64_t> accepted{0};          ///< clients whose key is allowed
  std::atomic<std::uint64_t> refused_key{0};       ///< CURVE clients with an unknown key (ZAP)
  std::atomic<std::uint64_t> refused_handshake{0}; ///< plaintext, wrong server key, bad handshake
};

/// A node's server-side security, loaded once at start and shared (read-only) by every
/// endpoint it listens on: the gateway, the bus, the federation listener.
struct server_setup {
  std::optional<key_pair> keys; ///< this node's pair; none = no CURVE
  allow_list allow;             ///< includes the node's own public key
  bool plaintext_ok = false;    ///< --dev, --insecure or `[security] insecure = true`
  std::shared_ptr<counters> totals = std::make_shared<counters>();

  /// Loads `key_file` ("" = no CURVE) and the allow list (`allow` entries, `allow_dir`);
  /// the node's own public key is always allowed (whoever holds its secret could act as
  /// the node anyway), so `tender status --key node.key --server-key node.key.pub` works
  /// on the node's machine. Errors name the file or the `security.*` entry.
  static std::variant<server_setup, std::string> load(const std::string& key_file,
                                                      const std::vector<std::string>& allow,
                                                      const std::string& allow_dir,
                                                      bool plaintext_ok);

  /// The one call per server socket, before `s.bind(endpoint)`, from the thread that owns
  /// `s`: applies listen_rule, and for CURVE makes `s` a CURVE server checked by the ZAP
  /// handler of `ctx` (started on first use and kept in `auth`, which the caller declares
  /// after its zmq::context_t so it stops before the context closes). `what` names the
  /// endpoint in log lines ("gateway", "bus"). Error: the rule's (nothing was changed).
  std::optional<std::string> secure(zmq::socket_t& s, zmq::context_t& ctx,
                                    const std::string& endpoint, const std::string& what,
                                    std::unique_ptr<authenticator>& auth,
                                    std::function<void(const std::string&)> warn) const;
};

/// The ZAP handler of one ZeroMQ context (a thread answering inproc://zeromq.zap.01)
/// and the handshake watcher of the server sockets it secures.
class authenticator {
public:
  using log_fn = std::function<void(const std::string&)>;

  /// Binds the ZAP endpoint on `ctx` and starts the thread. One per context: start it
  /// before any CURVE server of `ctx` binds (without a handler libzmq would let every
  /// CURVE client in). `warn` receives refusal log lines (from the handler thread).
  /// `totals`: counters to add to (a node's, shared by its authenticators); null = own.
  static std::variant<std::unique_ptr<authenticator>, std::string>
  start(zmq::context_t& ctx, allow_list allow, log_fn warn,
        std::shared_ptr<counters> totals = nullptr);
  /// Stops and joins the thread (before `ctx` is closed).
  ~authenticator();
  authenticator(const authenticator&) = delete;
  authenticator& operator=(const authenticator&) = delete;

  /// Makes `s` a CURVE server with this node's `keys`; clients are checked against the
  /// allow list. `what` names the endpoint in log lines and is the ZAP domain
  /// ("gateway", "bus", "peers"). Call before `s.bind()`, from the thread that owns `s`.
  void secure_server(zmq::socket_t& s, const key_pair& keys, const std::string& what);

  /// This handler's counts (the shared ones when started with `totals`).
  const counters& stats() const;

  struct impl;

private:
  explicit authenticator(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

/// Watches a client socket's handshake so a refusal becomes an error at once instead
/// of a timeout. Create it before `s.connect()`, on the socket's context.
class handshake_watch {
public:
  handshake_watch(zmq::context_t& ctx, zmq::socket_t& s, bool curve);
  ~handshake_watch();
  /// The monitor socket, to poll next to `s`.
  zmq::socket_t& socket();
  /// Reads pending events; returns why the server refused this client (once known).
  std::optional<std::string> refusal(const std::string& endpoint);
  /// After a timeout: why the handshake may never have completed (or nullopt).
  std::optional<std::string> explain_timeout(const std::string& endpoint) const;

private:
  std::unique_ptr<zmq::socket_t> mon_;
  bool curve_;
  bool connected_ = false;
  bool succeeded_ = false;
  int early_closes_ = 0;
  std::optional<std::string> refusal_;
};

} // namespace tender::curve
