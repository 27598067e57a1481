#include "protocol/curve.hpp"

#include <zmq.hpp>
#include <zmq_addon.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

namespace tender::curve {

namespace fs = std::filesystem;

namespace {

constexpr const char* z85_alphabet =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

constexpr const char* zap_endpoint = "inproc://zeromq.zap.01";

std::atomic<std::uint64_t> monitor_counter{0};

std::string monitor_endpoint(const char* kind) {
  return std::string("inproc://tender-curve-") + kind + "-" + std::to_string(++monitor_counter);
}

std::string trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos)
    return {};
  auto e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

/// The first characters of a key, enough to tell keys apart in a log line.
std::string prefix(const std::string& z85) {
  return z85.substr(0, 8) + "...";
}

std::string z85_of(const void* bytes) {
  char out[key_chars + 1];
  zmq_z85_encode(out, static_cast<const std::uint8_t*>(bytes), 32);
  return std::string(out, key_chars);
}

struct parsed_line {
  std::string name;
  std::string value;
};

/// `name = "value"` (quotes optional). Error: what the line should look like.
std::variant<parsed_line, std::string> parse_line(const std::string& line) {
  auto eq = line.find('=');
  if (eq == std::string::npos)
    return std::string("expected `public = \"...\"` or `secret = \"...\"`");
  parsed_line p{trim(line.substr(0, eq)), trim(line.substr(eq + 1))};
  if (p.value.size() >= 2 && p.value.front() == '"' && p.value.back() == '"')
    p.value = p.value.substr(1, p.value.size() - 2);
  return p;
}

/// Calls `entry(line, where)` for every line of `text` that is neither blank nor a
/// comment (`where` is "PATH:N: ", for its errors); the first error it returns ends the walk.
template <class F>
std::string for_each_entry(const std::string& text, const std::string& path, F&& entry) {
  std::istringstream in(text);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    line = trim(line);
    if (line.empty() || line.front() == '#')
      continue;
    if (auto err = entry(line, path + ":" + std::to_string(n) + ": "); !err.empty())
      return err;
  }
  return {};
}

std::string check_key(const std::string& value, const char* which) {
  if (value.size() != key_chars)
    return std::string("the ") + which + " key must be " + std::to_string(key_chars) +
           " Z85 characters, got " + std::to_string(value.size());
  if (!is_z85_key(value))
    return std::string("the ") + which + " key has a character outside the Z85 alphabet";
  return {};
}

std::variant<std::string, std::string> read_file(const std::string& path) {
  std::ifstream f(path);
  if (!f)
    return std::variant<std::string, std::string>(std::in_place_index<1>,
                                                  path + ": cannot read: " + std::strerror(errno));
  std::stringstream ss;
  ss << f.rdbuf();
  return std::variant<std::string, std::string>(std::in_place_index<0>, ss.str());
}

} // namespace

bool available() {
  return zmq_has("curve") != 0;
}

bool is_z85_key(const std::string& s) {
  return s.size() == key_chars && s.find_first_not_of(z85_alphabet) == std::string::npos;
}

std::variant<key_pair, std::string> generate() {
  if (!available())
    return std::string("this libzmq was built without CURVE (libsodium): keys cannot be made");
  char pub[key_chars + 1], sec[key_chars + 1];
  if (zmq_curve_keypair(pub, sec) != 0)
    return std::string("zmq_curve_keypair failed: ") + zmq_strerror(zmq_errno());
  return key_pair{std::string(pub, key_chars), std::string(sec, key_chars)};
}

std::optional<std::string> write_key_files(const std::string& path, const key_pair& k, bool force) {
  const std::string pub = path + ".pub";
  if (!force)
    for (const auto& p : {path, pub})
      if (fs::exists(p))
        return p + ": already exists (pass --force to overwrite it)";
  auto write = [](const std::string& p, const std::string& text,
                  mode_t mode) -> std::optional<std::string> {
    // Created with the final mode so the secret is never readable by others, not even briefly.
    ::unlink(p.c_str());
    int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
      return p + ": cannot create: " + std::strerror(errno);
    ::fchmod(fd, mode);
    std::size_t done = 0;
    while (done < text.size()) {
      auto n = ::write(fd, text.data() + done, text.size() - done);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0) {
        std::string err = p + ": cannot write: " + std::strerror(errno);
        ::close(fd);
        return err;
      }
      done += static_cast<std::size_t>(n);
    }
    if (::close(fd) != 0)
      return p + ": cannot write: " + std::strerror(errno);
    return std::nullopt;
  };
  if (auto err =
          write(path,
                "# tender CurveZMQ key pair. The secret key: keep this file private (mode "
                "0600).\n# Give others " +
                    fs::path(pub).filename().string() + " (the public key only).\npublic = \"" +
                    k.public_key + "\"\nsecret = \"" + k.secret_key + "\"\n",
                0600))
    return err;
  return write(pub,
               "# tender CurveZMQ public key: put this file in a node's [security] allow list.\n"
               "public = \"" +
                   k.public_key + "\"\n",
               0644);
}

std::variant<key_pair, std::string> load_key_pair(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return path + ": cannot read the secret key file: " + std::strerror(errno);
  if (st.st_mode & 077) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return path + ": the secret key file is readable by others (mode " + mode +
           "): run `chmod 600 " + path + "`";
  }
  auto text = read_file(path);
  if (text.index() == 1)
    return std::get<1>(text);
  key_pair k;
  auto bad = for_each_entry(
      std::get<0>(text), path, [&](const std::string& line, const std::string& where) {
        auto p = parse_line(line);
        if (auto* err = std::get_if<std::string>(&p))
          return where + *err;
        auto& kv = std::get<parsed_line>(p);
        if (kv.name != "public" && kv.name != "secret")
          return where + "unknown entry '" + kv.name + "' (expected public or secret)";
        if (auto err = check_key(kv.value, kv.name.c_str()); !err.empty())
          return where + err;
        (kv.name == "public" ? k.public_key : k.secret_key) = kv.value;
        return std::string();
      });
  if (!bad.empty())
    return bad;
  if (k.secret_key.empty())
    return path + ": no `secret = \"...\"` line (is this a .pub file? a secret key file is made "
                  "by `tender keygen --out FILE`)";
  char pub[key_chars + 1];
  if (zmq_curve_public(pub, k.secret_key.c_str()) != 0)
    return path + ": cannot derive the public key: " + zmq_strerror(zmq_errno());
  std::string derived(pub, key_chars);
  if (!k.public_key.empty() && k.public_key != derived)
    return path + ": the public key does not belong to the secret key";
  k.public_key = derived;
  return k;
}

std::variant<key_pair, std::string> load_public_key(const std::string& spec) {
  auto ends_pub = spec.size() > 4 && spec.compare(spec.size() - 4, 4, ".pub") == 0;
  if (!ends_pub) {
    if (is_z85_key(spec))
      return key_pair{spec, {}};
    return "'" + spec + "' is neither a 40-character Z85 public key nor a .pub file";
  }
  auto text = read_file(spec);
  if (text.index() == 1)
    return std::get<1>(text);
  std::string found;
  auto bad = for_each_entry(
      std::get<0>(text), spec, [&](const std::string& line, const std::string& where) {
        std::string value = line;
        if (!is_z85_key(line)) { // a bare key may hold '='
          if (line.find('=') == std::string::npos)
            return where + "expected `public = \"...\"` or the bare 40-character key";
          auto kv = std::get<parsed_line>(parse_line(line));
          if (kv.name == "secret")
            return where + "a .pub file must not hold a secret key";
          if (kv.name != "public")
            return where + "unknown entry '" + kv.name + "' (expected public)";
          value = kv.value;
        }
        if (auto err = check_key(value, "public"); !err.empty())
          return where + err;
        if (!found.empty())
          return where + "a second public key (one key per .pub file)";
        found = value;
        return std::string();
      });
  if (!bad.empty())
    return bad;
  if (found.empty())
    return spec + ": no public key in it";
  return key_pair{found, {}};
}

// ---- allow list ----------------------------------------------------------------

std::variant<allow_list, std::string> allow_list::load(const std::vector<std::string>& entries,
                                                       const std::string& dir) {
  allow_list a;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    auto label = "security.allow[" + std::to_string(i) + "]";
    auto k = load_public_key(entries[i]);
    if (auto* err = std::get_if<std::string>(&k))
      return label + ": " + *err;
    auto& key = std::get<key_pair>(k).public_key;
    a.add(key, is_z85_key(entries[i]) ? label : entries[i]);
  }
  if (!dir.empty()) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec))
      return "security.allow_dir: " + dir + " is not a directory";
    a.dir_ = dir;
    if (auto err = a.rescan_dir())
      return "security.allow_dir: " + *err;
  }
  return a;
}

void allow_list::add(const std::string& z85, std::string source) {
  keys_.emplace(z85, std::move(source));
}

const std::string* allow_list::find(const std::string& z85) const {
  auto it = keys_.find(z85);
  return it == keys_.end() ? nullptr : &it->second;
}

std::optional<std::string> allow_list::rescan_dir() {
  if (dir_.empty())
    return std::nullopt;
  std::error_code ec;
  std::vector<std::string> files;
  for (auto it = fs::directory_iterator(dir_, ec); !ec && it != fs::directory_iterator();
       it.increment(ec))
    if (it->path().extension() == ".pub")
      files.push_back(it->path().string());
  if (ec)
    return dir_ + ": cannot list: " + ec.message();
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    auto k = load_public_key(f);
    if (auto* err = std::get_if<std::string>(&k))
      return *err;
    add(std::get<key_pair>(k).public_key, f);
  }
  return std::nullopt;
}

// ---- listen rule ---------------------------------------------------------------

bool is_loopback_tcp(const std::string& endpoint) {
  const std::string scheme = "tcp://";
  if (endpoint.rfind(scheme, 0) != 0)
    return false;
  auto host = endpoint.substr(scheme.size());
  // tcp://[::1]:7470 / tcp://127.0.0.1:7470 / tcp://localhost:*; a source address
  // ("tcp://src;dst") is not used by listeners.
  if (!host.empty() && host.front() == '[') {
    auto close = host.find(']');
    return close != std::string::npos && host.substr(1, close - 1) == "::1";
  }
  auto colon = host.rfind(':');
  if (colon != std::string::npos)
    host = host.substr(0, colon);
  if (host == "localhost" || host == "::1")
    return true;
  // 127.0.0.0/8, written as a dotted quad.
  if (host.rfind("127.", 0) != 0)
    return false;
  int dots = 0;
  for (char c : host) {
    if (c == '.')
      ++dots;
    else if (c < '0' || c > '9')
      return false;
  }
  return dots == 3;
}

std::variant<listen_mode, std::string> listen_rule(const std::string& endpoint, bool have_keys,
                                                   bool plaintext_ok) {
  if (endpoint.rfind("inproc://", 0) == 0)
    return listen_mode::plaintext; // in-process: no network, no CURVE
  if (have_keys) {
    if (!available())
      return "cannot secure " + endpoint +
             ": this libzmq was built without CURVE (install a libzmq built with libsodium)";
    return listen_mode::curve;
  }
  if (endpoint.rfind("ipc://", 0) == 0)
    return listen_mode::plaintext; // a local socket file: its permissions guard it
  const std::string how = "create a key with `tender keygen --out node.key` and set [security] "
                          "key = \"node.key\" (or pass --key node.key)";
  if (!is_loopback_tcp(endpoint))
    return "refusing to listen on " + endpoint +
           " without CurveZMQ: plaintext is only allowed on a loopback address (127.0.0.1, ::1, "
           "localhost), even with --insecure; " +
           how;
  if (!plaintext_ok)
    return "refusing to listen on " + endpoint +
           " in plaintext: without keys a node listens on loopback only with --dev or "
           "--insecure (or [security] insecure = true); or " +
           how;
  return listen_mode::plaintext;
}

void secure_client(zmq::socket_t& s, const key_pair& mine, const std::string& server_public) {
  s.set(zmq::sockopt::curve_serverkey, server_public);
  s.set(zmq::sockopt::curve_publickey, mine.public_key);
  s.set(zmq::sockopt::curve_secretkey, mine.secret_key);
}

// ---- the ZAP handler -------------------------------------------------------------

struct authenticator::impl {
  zmq::context_t* ctx = nullptr;
  zmq::socket_t zap;
  allow_list allow;
  log_fn warn;
  std::thread thread;
  std::atomic<bool> running{true};

  std::mutex pending_mu;
  struct watched {
    std::unique_ptr<zmq::socket_t> sock;
    std::string what;
  };
  std::vector<watched> pending; // made by secure_server, adopted by the thread

  std::shared_ptr<counters> count;

  // Handler-thread state.
  std::set<std::string> logged_peers; // key|address|domain already logged
  std::chrono::steady_clock::time_point last_rescan{};
  std::vector<watched> monitors;
  struct burst {
    std::chrono::steady_clock::time_point last{};
    std::uint64_t unlogged = 0;
  };
  std::map<std::string, burst> handshake_log; // what|kind -> last report

  void log(const std::string& line) {
    if (warn)
      warn(line);
  }

  void loop() {
    while (running) {
      adopt_monitors();
      std::vector<zmq::pollitem_t> items;
      items.push_back({static_cast<void*>(zap), 0, ZMQ_POLLIN, 0});
      for (auto& m : monitors)
        items.push_back({static_cast<void*>(*m.sock), 0, ZMQ_POLLIN, 0});
      try {
        zmq::poll(items.data(), items.size(), std::chrono::milliseconds(100));
        if (items[0].revents & ZMQ_POLLIN)
          answer_zap();
        for (std::size_t i = 1; i < items.size(); ++i)
          if (items[i].revents & ZMQ_POLLIN)
            read_monitor(monitors[i - 1]);
      } catch (const zmq::error_t& e) {
        if (e.num() == ETERM)
          break;
        log(std::string("curve: ") + e.what());
      }
    }
    zap.close();
    for (auto& m : monitors)
      m.sock->close();
    std::lock_guard<std::mutex> lock(pending_mu);
    pending.clear();
  }

  void adopt_monitors() {
    std::lock_guard<std::mutex> lock(pending_mu);
    for (auto& w : pending)
      monitors.push_back(std::move(w));
    pending.clear();
  }

  void answer_zap() {
    std::vector<zmq::message_t> req;
    if (!zmq::recv_multipart(zap, std::back_inserter(req), zmq::recv_flags::dontwait))
      return;
    auto frame = [&](std::size_t i) { return i < req.size() ? req[i].to_string() : std::string(); };
    std::string status = "400", text = "refused", user;
    const auto domain = frame(2), address = frame(3), mechanism = frame(5);
    if (frame(0) != "1.0") {
      status = "500";
      text = "unsupported ZAP version";
    } else if (mechanism == "CURVE" && req.size() >= 7 && req[6].size() == 32) {
      auto key = z85_of(req[6].data());
      const std::string* source = allow.find(key);
      if (!source && !allow.dir().empty() &&
          std::chrono::steady_clock::now() - last_rescan > std::chrono::seconds(1)) {
        // A key file dropped into allow_dir counts without a restart.
        last_rescan = std::chrono::steady_clock::now();
        if (auto err = allow.rescan_dir())
          log("curve: security.allow_dir: " + *err);
        source = allow.find(key);
      }
      if (source) {
        status = "200";
        text = "OK";
        user = key;
        ++count->accepted;
      } else {
        text = "unknown public key";
        ++count->refused_key;
        if (logged_peers.size() > 10000)
          logged_peers.clear();
        if (logged_peers.insert(key + "|" + address + "|" + domain).second)
          log("curve: refused a client of " + domain + " from " + address + ": public key " +
              prefix(key) +
              " is not on the allow list (add its .pub file to [security] allow or "
              "allow_dir to let it in); its further attempts are counted, not logged");
      }
    } else {
      text = "only CURVE clients are accepted";
      ++count->refused_handshake;
    }
    std::vector<zmq::const_buffer> reply{
        zmq::buffer(std::string_view("1.0")),
        zmq::buffer(req.size() > 1 ? req[1].data() : nullptr, req.size() > 1 ? req[1].size() : 0),
        zmq::buffer(status),
        zmq::buffer(text),
        zmq::buffer(user),
        zmq::buffer(std::string_view(""))};
    zmq::send_multipart(zap, reply);
  }

  void read_monitor(watched& m) {
    while (true) {
      std::vector<zmq::message_t> ev;
      if (!zmq::recv_multipart(*m.sock, std::back_inserter(ev), zmq::recv_flags::dontwait))
        return;
      if (ev.size() < 2 || ev[0].size() < 6)
        continue;
      std::uint16_t event = 0;
      std::uint32_t value = 0;
      std::memcpy(&event, ev[0].data(), 2);
      std::memcpy(&value, static_cast<const char*>(ev[0].data()) + 2, 4);
      std::string kind;
      // A plaintext client often hangs up on the CURVE greeting before the server has
      // read its own: no detail then, but the same cause.
      if ((event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL &&
           value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH) ||
          event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)
        kind = "a client without CurveZMQ (plaintext, or hung up during the handshake)";
      else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL &&
               value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC)
        kind = "a CURVE handshake that does not decrypt (the client has a wrong server key)";
      else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)
        kind = "a handshake with protocol error " + std::to_string(value);
      else
        continue;
      ++count->refused_handshake;
      auto& b = handshake_log[m.what + "|" + kind];
      auto now = std::chrono::steady_clock::now();
      if (b.last != std::chrono::steady_clock::time_point{} &&
          now - b.last < std::chrono::seconds(60)) {
        ++b.unlogged;
        continue;
      }
      log("curve: refused " + kind + " on " + m.what + " (" + ev[1].to_string() + ")" +
          (b.unlogged ? " and " + std::to_string(b.unlogged) + " more since the last report" : "") +
          "; such refusals are reported at most once a minute");
      b.last = now;
      b.unlogged = 0;
    }
  }
};

authenticator::authenticator(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

std::variant<std::unique_ptr<authenticator>, std::string>
authenticator::start(zmq::context_t& ctx, allow_list allow, log_fn warn,
                     std::shared_ptr<counters> totals) {
  if (!available())
    return std::string("this libzmq was built without CURVE (libsodium)");
  auto p = std::make_unique<impl>();
  p->count = totals ? std::move(totals) : std::make_shared<counters>();
  p->ctx = &ctx;
  p->allow = std::move(allow);
  p->warn = std::move(warn);
  try {
    p->zap = zmq::socket_t(ctx, zmq::socket_type::rep);
    p->zap.set(zmq::sockopt::linger, 0);
    p->zap.bind(zap_endpoint);
  } catch (const zmq::error_t& e) {
    return std::string("cannot start the ZAP handler on ") + zap_endpoint + ": " + e.what() +
           " (one handler per ZeroMQ context)";
  }
  auto* raw = p.get();
  p->thread = std::thread([raw] { raw->loop(); });
  return std::unique_ptr<authenticator>(new authenticator(std::move(p)));
}

authenticator::~authenticator() {
  impl_->running = false;
  if (impl_->thread.joinable())
    impl_->thread.join();
}

void authenticator::secure_server(zmq::socket_t& s, const key_pair& keys, const std::string& what) {
  s.set(zmq::sockopt::curve_server, 1);
  s.set(zmq::sockopt::curve_secretkey, keys.secret_key);
  s.set(zmq::sockopt::zap_domain, what);
  auto ep = monitor_endpoint("server");
  if (zmq_socket_monitor(static_cast<void*>(s), ep.c_str(),
                         ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                             ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) != 0)
    throw zmq::error_t();
  // Connected here, so no event is lost before the handler thread adopts it (the
  // mutex hands the socket over to that thread).
  impl::watched w{std::make_unique<zmq::socket_t>(*impl_->ctx, zmq::socket_type::pair), what};
  w.sock->set(zmq::sockopt::linger, 0);
  w.sock->connect(ep);
  std::lock_guard<std::mutex> lock(impl_->pending_mu);
  impl_->pending.push_back(std::move(w));
}

const counters& authenticator::stats() const {
  return *impl_->count;
}

// ---- a node's servers --------------------------------------------------------------

std::variant<server_setup, std::string> server_setup::load(const std::string& key_file,
                                                           const std::vector<std::string>& allow,
                                                           const std::string& allow_dir,
                                                           bool plaintext_ok) {
  server_setup s;
  s.plaintext_ok = plaintext_ok;
  if (key_file.empty()) {
    // An allow list without a key would protect nothing: say so instead of ignoring it.
    if (!allow.empty() || !allow_dir.empty())
      return std::string("security.key: missing: `allow` and `allow_dir` need this node's own "
                         "key ([security] key or --key; create one with `tender keygen --out "
                         "node.key`)");
    return s;
  }
  auto k = load_key_pair(key_file);
  if (auto* err = std::get_if<std::string>(&k))
    return "security.key: " + *err;
  s.keys = std::get<key_pair>(std::move(k));
  auto a = allow_list::load(allow, allow_dir);
  if (auto* err = std::get_if<std::string>(&a))
    return *err;
  s.allow = std::get<allow_list>(std::move(a));
  s.allow.add(s.keys->public_key, key_file + " (this node's own key)");
  return s;
}

std::optional<std::string>
server_setup::secure(zmq::socket_t& s, zmq::context_t& ctx, const std::string& endpoint,
                     const std::string& what, std::unique_ptr<authenticator>& auth,
                     std::function<void(const std::string&)> warn) const {
  auto mode = listen_rule(endpoint, keys.has_value(), plaintext_ok);
  if (auto* err = std::get_if<std::string>(&mode))
    return what + ": " + *err;
  if (std::get<listen_mode>(mode) == listen_mode::plaintext)
    return std::nullopt;
  if (!auth) {
    auto a = authenticator::start(ctx, allow, std::move(warn), totals);
    if (auto* err = std::get_if<std::string>(&a))
      return what + ": " + *err;
    auth = std::move(std::get<std::unique_ptr<authenticator>>(a));
  }
  try {
    auth->secure_server(s, *keys, what);
  } catch (const zmq::error_t& e) {
    return what + ": cannot set up CURVE on " + endpoint + ": " + e.what();
  }
  return std::nullopt;
}

// ---- the client's handshake watch ---------------------------------------------------

handshake_watch::handshake_watch(zmq::context_t& ctx, zmq::socket_t& s, bool curve)
    : curve_(curve) {
  auto ep = monitor_endpoint("client");
  if (zmq_socket_monitor(static_cast<void*>(s), ep.c_str(),
                         ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED |
                             ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                             ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                             ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) != 0)
    throw zmq::error_t();
  mon_ = std::make_unique<zmq::socket_t>(ctx, zmq::socket_type::pair);
  mon_->set(zmq::sockopt::linger, 0);
  mon_->connect(ep);
}

handshake_watch::~handshake_watch() = default;

zmq::socket_t& handshake_watch::socket() {
  return *mon_;
}

std::optional<std::string> handshake_watch::refusal(const std::string& endpoint) {
  while (!refusal_) {
    std::vector<zmq::message_t> ev;
    if (!zmq::recv_multipart(*mon_, std::back_inserter(ev), zmq::recv_flags::dontwait))
      break;
    if (ev.size() < 2 || ev[0].size() < 6)
      continue;
    std::uint16_t event = 0;
    std::uint32_t value = 0;
    std::memcpy(&event, ev[0].data(), 2);
    std::memcpy(&value, static_cast<const char*>(ev[0].data()) + 2, 4);
    switch (event) {
    case ZMQ_EVENT_CONNECTED:
      connected_ = true;
      break;
    case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
      succeeded_ = true;
      early_closes_ = 0;
      break;
    case ZMQ_EVENT_DISCONNECTED:
      // The server drops a CURVE hello it cannot decrypt without a word.
      if (curve_ && !succeeded_ && ++early_closes_ >= 3)
        refusal_ = "the node at " + endpoint +
                   " closes the connection during the CURVE handshake: is --server-key the "
                   "node's public key?";
      break;
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
      refusal_ = "the node at " + endpoint +
                 " refused this client's key: its public key is not on the node's allow list "
                 "(give the node this client's .pub file: [security] allow or allow_dir)";
      break;
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
      if (value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
        refusal_ = curve_ ? "the node at " + endpoint +
                                " does not use CurveZMQ (it listens in plaintext): leave out "
                                "--key and --server-key"
                          : "the node at " + endpoint +
                                " requires CurveZMQ; give --key FILE (this client's secret key, "
                                "from `tender keygen`) and --server-key KEY (the node's public key "
                                "or its .pub file)";
      else if (value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC)
        refusal_ = "the CURVE handshake with " + endpoint +
                   " failed: is --server-key the node's public key?";
      else
        refusal_ = "the handshake with " + endpoint + " failed (protocol error " +
                   std::to_string(value) + ")";
      break;
    case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
      // A CURVE server closes on a plaintext greeting before the client has seen its own.
      // A node going down mid-handshake looks the same once: wait for it to repeat.
      if (++early_closes_ < 3)
        break;
      refusal_ = curve_
                     ? "the CURVE handshake with " + endpoint +
                           " failed: is --server-key the node's public key?"
                     : "the handshake with " + endpoint +
                           " failed: the node probably requires CurveZMQ; give --key FILE (this "
                           "client's secret key, from `tender keygen`) and --server-key KEY (the "
                           "node's public key or its .pub file)";
      break;
    default:
      break;
    }
  }
  return refusal_;
}

std::optional<std::string> handshake_watch::explain_timeout(const std::string& endpoint) const {
  if (refusal_)
    return refusal_;
  if (connected_ && !succeeded_)
    return "connected to " + endpoint + " but the " + (curve_ ? "CURVE " : "") +
           "handshake never completed" +
           (curve_ ? " (is --server-key the node's public key?)" : "");
  return std::nullopt;
}

} // namespace tender::curve
