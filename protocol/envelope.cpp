#include "protocol/envelope.hpp"
#include "protocol/msgpack_writer.hpp"

#include <msgpack.hpp>

#include <algorithm>
#include <array>
#include <concepts>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

namespace tender {

namespace {

/// Deepest nesting a frame may have. The deepest real message (job_list ->
/// jobs[] -> profile -> findings[] -> finding) is about 8 levels deep.
constexpr std::size_t max_depth = 32;

// ---------------------------------------------------------------------------
// Encoding

void pack_str(msgpack::packer<msgpack::sbuffer>& pk, std::string_view s) {
  pk.pack_str(static_cast<std::uint32_t>(s.size()));
  pk.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
}

// ---------------------------------------------------------------------------
// Finding the offending field of a body that msgpack refused to convert.
//
// msgpack's type_error says only "std::bad_cast". To name the field, the body
// is walked against its C++ type: `msgpack_pack` of a MSGPACK_DEFINE_MAP struct
// is a template over the packer, so a packer of our own receives each key and a
// typed reference to each field, and the walk recurses into nested structs,
// vectors and maps until it reaches a value that does not convert.

/// A "packer" that hands each (key, field) pair of a MSGPACK_DEFINE_MAP struct to `f`
/// as a string_view and a const reference. Keys arrive as string literals
/// (`const char[N]`, viewed, not copied), fields never are C arrays.
template <class F> struct field_visitor {
  F& f;
  std::string_view key;

  field_visitor& pack_map(std::uint32_t) { return *this; }
  template <class T> field_visitor& pack(const T& v) {
    if constexpr (std::is_array_v<T>)
      key = std::string_view(v);
    else
      f(key, v);
    return *this;
  }
};

struct probe_packer {
  probe_packer& pack_map(std::uint32_t);
  template <class T> probe_packer& pack(const T&);
};

template <class T>
concept define_map_struct = requires(const T& t, probe_packer& p) {
  t.msgpack_pack(p);
};

template <class T> struct is_vector : std::false_type {};
template <class U, class A> struct is_vector<std::vector<U, A>> : std::true_type {};
template <class T> struct is_map : std::false_type {};
template <class K, class V, class C, class A>
struct is_map<std::map<K, V, C, A>> : std::true_type {};

/// What a person should have sent for a field of C++ type T.
template <class T> std::string describe() {
  if constexpr (std::is_same_v<T, bool>) {
    return "boolean";
  } else if constexpr (std::is_enum_v<T>) {
    return "integer (enum)";
  } else if constexpr (std::is_integral_v<T>) {
    std::string s = std::is_signed_v<T> ? "" : "non-negative ";
    return s + (sizeof(T) < 8 ? std::to_string(sizeof(T) * 8) + "-bit integer" : "integer");
  } else if constexpr (std::is_floating_point_v<T>) {
    return "number";
  } else if constexpr (std::is_same_v<T, std::string>) {
    return "string";
  } else if constexpr (is_vector<T>::value) {
    return "array of " + describe<typename T::value_type>();
  } else if constexpr (is_map<T>::value) {
    return "map of " + describe<typename T::key_type>() + " to " +
           describe<typename T::mapped_type>();
  } else {
    return "map";
  }
}

/// What was actually sent.
std::string describe(const msgpack::object& o) {
  switch (o.type) {
  case msgpack::type::NIL:
    return "nil";
  case msgpack::type::BOOLEAN:
    return "boolean";
  case msgpack::type::POSITIVE_INTEGER:
    return "integer " + std::to_string(o.via.u64);
  case msgpack::type::NEGATIVE_INTEGER:
    return "integer " + std::to_string(o.via.i64);
  case msgpack::type::FLOAT32:
  case msgpack::type::FLOAT64:
    return "number";
  case msgpack::type::STR:
    return "string";
  case msgpack::type::BIN:
    return "binary";
  case msgpack::type::ARRAY:
    return "array";
  case msgpack::type::MAP:
    return "map";
  case msgpack::type::EXT:
    return "extension";
  }
  return "unknown";
}

struct bad_field {
  std::string path;
  std::string expected;
  std::string got;
};

std::string join(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}

template <class T> bool converts(const msgpack::object& o) {
  try {
    T t{};
    o.convert(t);
    return true;
  } catch (const msgpack::type_error&) {
    return false;
  }
}

/// The first msgpack value for `key` in map `o` (msgpack keeps the first of duplicates too).
const msgpack::object* lookup(const msgpack::object& o, std::string_view key) {
  for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
    const auto& k = o.via.map.ptr[i].key;
    if (k.type == msgpack::type::STR && std::string_view(k.via.str.ptr, k.via.str.size) == key)
      return &o.via.map.ptr[i].val;
  }
  return nullptr;
}

/// Walks a MSGPACK_DEFINE_MAP struct's map: `find(key)` is the first value under
/// `key`, like `lookup`, but costs one comparison per field while the keys arrive
/// in the struct's own order (as tender writes them) instead of a scan each.
class map_cursor {
public:
  explicit map_cursor(const msgpack::object& o) : o_(o) {}

  const msgpack::object* find(std::string_view key) {
    if (in_order_ && next_ < o_.via.map.size) {
      // Entries before next_ hold the keys of earlier fields, none of which is
      // `key`, so this one is its first occurrence.
      const auto& k = o_.via.map.ptr[next_].key;
      if (k.type == msgpack::type::STR && std::string_view(k.via.str.ptr, k.via.str.size) == key)
        return &o_.via.map.ptr[next_++].val;
    }
    const msgpack::object* v = lookup(o_, key);
    if (v)
      in_order_ = false; // found out of order: the argument above no longer holds
    return v;
  }

private:
  const msgpack::object& o_;
  std::uint32_t next_ = 0;
  bool in_order_ = true;
};

template <class T> struct vector_of_structs_or_strings : std::false_type {};
template <class U, class A>
struct vector_of_structs_or_strings<std::vector<U, A>>
    : std::bool_constant<define_map_struct<U> || std::is_same_v<U, std::string>> {};
template <class T> struct map_of_structs : std::false_type {};
template <class K, class V, class C, class A>
struct map_of_structs<std::map<K, V, C, A>> : std::bool_constant<define_map_struct<V>> {};

/// The value of `o` into `t`, exactly as msgpack's own `o.convert(t)` (the same
/// fields read, the same type_error for the same input; the first of duplicate keys
/// wins in a struct, the last in a std::map), without the std::map of keys msgpack
/// builds for every struct it converts: that map was most of a provider process's
/// time on the mesh (its string compares and allocations).
template <class T> void fast_convert(const msgpack::object& o, T& t) {
  if constexpr (define_map_struct<T>) {
    if (o.type != msgpack::type::MAP)
      throw msgpack::type_error();
    for (std::uint32_t i = 0; i < o.via.map.size; ++i)
      if (o.via.map.ptr[i].key.type != msgpack::type::STR)
        throw msgpack::type_error();
    map_cursor at(o);
    auto on_field = [&](std::string_view key, const auto& field) {
      if (const msgpack::object* v = at.find(key))
        // `t` is not const: msgpack_pack only hands its fields out as const.
        fast_convert(*v, const_cast<std::decay_t<decltype(field)>&>(field));
    };
    field_visitor<decltype(on_field)> fv{on_field, {}};
    t.msgpack_pack(fv);
  } else if constexpr (vector_of_structs_or_strings<T>::value) {
    if (o.type != msgpack::type::ARRAY)
      throw msgpack::type_error();
    t.resize(o.via.array.size);
    for (std::uint32_t i = 0; i < o.via.array.size; ++i)
      fast_convert(o.via.array.ptr[i], t[i]);
  } else if constexpr (map_of_structs<T>::value) {
    if (o.type != msgpack::type::MAP)
      throw msgpack::type_error();
    T tmp;
    for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
      typename T::key_type key;
      o.via.map.ptr[i].key.convert(key);
      fast_convert(o.via.map.ptr[i].val, tmp[std::move(key)]);
    }
    t = std::move(tmp);
  } else {
    o.convert(t);
  }
}

template <class T>
std::optional<bad_field> find_bad_field(const msgpack::object& o, const std::string& path) {
  if (converts<T>(o))
    return std::nullopt;
  bad_field here{path, describe<T>(), describe(o)};
  if constexpr (define_map_struct<T>) {
    if (o.type != msgpack::type::MAP)
      return here;
    for (std::uint32_t i = 0; i < o.via.map.size; ++i)
      if (o.via.map.ptr[i].key.type != msgpack::type::STR)
        return bad_field{path, "map with string keys",
                         "a key of type " + describe(o.via.map.ptr[i].key)};
    std::optional<bad_field> found;
    auto on_field = [&](std::string_view key, const auto& field) {
      if (found)
        return;
      if (const msgpack::object* v = lookup(o, key))
        found = find_bad_field<std::decay_t<decltype(field)>>(*v, join(path, key));
    };
    const T probe{};
    field_visitor<decltype(on_field)> fv{on_field, {}};
    probe.msgpack_pack(fv);
    if (found)
      return found;
  } else if constexpr (is_vector<T>::value) {
    if (o.type != msgpack::type::ARRAY)
      return here;
    for (std::uint32_t i = 0; i < o.via.array.size; ++i)
      if (auto b = find_bad_field<typename T::value_type>(o.via.array.ptr[i],
                                                          path + "[" + std::to_string(i) + "]"))
        return b;
  } else if constexpr (is_map<T>::value) {
    if (o.type != msgpack::type::MAP)
      return here;
    for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
      const auto& kv = o.via.map.ptr[i];
      if (!converts<typename T::key_type>(kv.key))
        return bad_field{path, describe<T>(), "a key of type " + describe(kv.key)};
      std::string key = kv.key.type == msgpack::type::STR
                            ? std::string(kv.key.via.str.ptr, kv.key.via.str.size)
                            : std::to_string(i);
      if (auto b = find_bad_field<typename T::mapped_type>(kv.val, join(path, key)))
        return b;
    }
  }
  return here;
}

// ---------------------------------------------------------------------------
// Memory a body takes once converted.
//
// The first pass bounds msgpack's object tree by the frame's size, but not the
// typed body: an element costs one byte on the wire (an empty map, `0x80`) and
// sizeof(T) in memory, ~700 bytes for a `job_status`, so a 4 MiB `job_list` of
// empty maps would need ~3 GB. Before converting, the body is walked against its
// C++ type (as above) to add up what the conversion will allocate.

/// What a heap string of `n` bytes costs beyond its `std::string` (short strings
/// live inside it).
std::uint64_t string_heap(std::uint64_t n) {
  return n < sizeof(std::string) ? 0 : n + 1;
}

/// A red-black tree node's links and colour, beyond its value.
constexpr std::uint64_t tree_node_overhead = 32;

/// Heap bytes converting `o` to T allocates, sizeof(T) itself excluded (the
/// parent counts it). Values that will not convert count what they would have.
template <class T> std::uint64_t footprint(const msgpack::object& o) {
  std::uint64_t total = 0;
  if constexpr (define_map_struct<T>) {
    if (o.type != msgpack::type::MAP)
      return 0;
    // msgpack's MSGPACK_DEFINE_MAP indexes every key in a std::map<std::string, const object*>.
    for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
      const auto& k = o.via.map.ptr[i].key;
      total += sizeof(std::string) + sizeof(void*) + tree_node_overhead +
               (k.type == msgpack::type::STR ? string_heap(k.via.str.size) : 0);
    }
    map_cursor at(o);
    auto on_field = [&](std::string_view key, const auto& field) {
      if (const msgpack::object* v = at.find(key))
        total += footprint<std::decay_t<decltype(field)>>(*v);
    };
    static const T probe{};
    field_visitor<decltype(on_field)> fv{on_field, {}};
    probe.msgpack_pack(fv);
  } else if constexpr (is_vector<T>::value) {
    if (o.type != msgpack::type::ARRAY)
      return 0;
    total += std::uint64_t{o.via.array.size} * sizeof(typename T::value_type);
    for (std::uint32_t i = 0; i < o.via.array.size; ++i)
      total += footprint<typename T::value_type>(o.via.array.ptr[i]);
  } else if constexpr (is_map<T>::value) {
    if (o.type != msgpack::type::MAP)
      return 0;
    total += std::uint64_t{o.via.map.size} * (sizeof(typename T::value_type) + tree_node_overhead);
    for (std::uint32_t i = 0; i < o.via.map.size; ++i)
      total += footprint<typename T::key_type>(o.via.map.ptr[i].key) +
               footprint<typename T::mapped_type>(o.via.map.ptr[i].val);
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (o.type == msgpack::type::STR)
      total += string_heap(o.via.str.size);
    else if (o.type == msgpack::type::BIN)
      total += string_heap(o.via.bin.size);
  }
  return total;
}

/// The most a decoded body may take in memory: 64 MiB, or 16 times its frame for
/// frames above 4 MiB. Real messages take a few times their frame (the golden
/// ones 4.7x to 6.3x, lists of default-valued elements up to ~13x, and 27x for
/// arrays of empty strings, 1 byte on the wire and a 32-byte std::string each).
constexpr std::uint64_t min_memory_budget = 64u << 20;
constexpr std::uint64_t memory_per_frame_byte = 16;

std::uint64_t memory_budget(std::size_t frame_bytes) {
  return std::max(min_memory_budget, memory_per_frame_byte * std::uint64_t{frame_bytes});
}

// ---------------------------------------------------------------------------
// Strings must be UTF-8 (MessagePack's str type says so, and tender prints what
// it receives as JSON, which cannot hold other bytes).

/// Offset of the first byte that does not belong to well-formed UTF-8 (no
/// overlong forms, no surrogates, nothing above U+10FFFF), or npos.
std::size_t invalid_utf8_at(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    // Eight ASCII bytes at a time: ids, names and reasons mostly are (the gateway checks
    // every string of every message it decodes).
    while (i + 8 <= s.size()) {
      std::uint64_t eight;
      std::memcpy(&eight, s.data() + i, 8);
      if (eight & 0x8080808080808080ull)
        break;
      i += 8;
    }
    if (i == s.size())
      break;
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t n = 0;
    unsigned char lo = 0x80, hi = 0xBF; // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2;
      if (c == 0xE0)
        lo = 0xA0; // overlong
      if (c == 0xED)
        hi = 0x9F; // surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3;
      if (c == 0xF0)
        lo = 0x90; // overlong
      if (c == 0xF4)
        hi = 0x8F; // above U+10FFFF
    } else {
      return i;
    }
    if (i + n >= s.size())
      return i; // cut short
    for (std::size_t k = 1; k <= n; ++k) {
      auto b = static_cast<unsigned char>(s[i + k]);
      if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF))
        return i;
    }
    i += n + 1;
  }
  return std::string_view::npos;
}

/// Whether every str and bin in `o` (keys included) is UTF-8: one pass that builds
/// no paths. Almost every message passes, and then `find_bad_string`, which names
/// the field but costs a string per field, need not run.
bool all_utf8(const msgpack::object& o) {
  switch (o.type) {
  case msgpack::type::STR:
    return invalid_utf8_at({o.via.str.ptr, o.via.str.size}) == std::string_view::npos;
  case msgpack::type::BIN:
    return invalid_utf8_at({o.via.bin.ptr, o.via.bin.size}) == std::string_view::npos;
  case msgpack::type::ARRAY:
    for (std::uint32_t i = 0; i < o.via.array.size; ++i)
      if (!all_utf8(o.via.array.ptr[i]))
        return false;
    return true;
  case msgpack::type::MAP:
    for (std::uint32_t i = 0; i < o.via.map.size; ++i)
      if (!all_utf8(o.via.map.ptr[i].key) || !all_utf8(o.via.map.ptr[i].val))
        return false;
    return true;
  default:
    return true;
  }
}

struct bad_string {
  std::string path;   ///< where, as in `bad_field`; a key is named by its map's path
  bool key = false;   ///< the string is a key of a std::map field
  std::size_t offset; ///< of the first bad byte
  unsigned char byte;
};

/// Whether the bytes of a str or bin (msgpack converts both to std::string) are UTF-8.
std::optional<bad_string> check_utf8(const msgpack::object& o, const std::string& path, bool key) {
  std::string_view text;
  if (o.type == msgpack::type::STR)
    text = {o.via.str.ptr, o.via.str.size};
  else if (o.type == msgpack::type::BIN)
    text = {o.via.bin.ptr, o.via.bin.size};
  std::size_t at = invalid_utf8_at(text);
  if (at == std::string_view::npos)
    return std::nullopt;
  return bad_string{path, key, at, static_cast<unsigned char>(text[at])};
}

/// The first value that would become a std::string of T and is not UTF-8. Walks
/// `o` against T like `find_bad_field`; unknown keys are not looked at (they are
/// ignored), and values of the wrong type are left to the conversion to refuse.
template <class T>
std::optional<bad_string> find_bad_string(const msgpack::object& o, const std::string& path) {
  std::optional<bad_string> found;
  if constexpr (define_map_struct<T>) {
    if (o.type != msgpack::type::MAP)
      return std::nullopt;
    auto on_field = [&](std::string_view key, const auto& field) {
      if (found)
        return;
      if (const msgpack::object* v = lookup(o, key))
        found = find_bad_string<std::decay_t<decltype(field)>>(*v, join(path, key));
    };
    const T probe{};
    field_visitor<decltype(on_field)> fv{on_field, {}};
    probe.msgpack_pack(fv);
  } else if constexpr (is_vector<T>::value) {
    if (o.type != msgpack::type::ARRAY)
      return std::nullopt;
    for (std::uint32_t i = 0; i < o.via.array.size && !found; ++i)
      found = find_bad_string<typename T::value_type>(o.via.array.ptr[i],
                                                      path + "[" + std::to_string(i) + "]");
  } else if constexpr (is_map<T>::value) {
    if (o.type != msgpack::type::MAP)
      return std::nullopt;
    for (std::uint32_t i = 0; i < o.via.map.size && !found; ++i) {
      const auto& kv = o.via.map.ptr[i];
      if constexpr (std::is_same_v<typename T::key_type, std::string>)
        if ((found = check_utf8(kv.key, path, true)))
          break;
      std::string child = kv.key.type == msgpack::type::STR
                              ? join(path, std::string(kv.key.via.str.ptr, kv.key.via.str.size))
                              : path + "[" + std::to_string(i) + "]";
      found = find_bad_string<typename T::mapped_type>(kv.val, child);
    }
  } else if constexpr (std::is_same_v<T, std::string>) {
    found = check_utf8(o, path, false);
  }
  return found;
}

// ---------------------------------------------------------------------------
// Decoding

void fail(decoded& out, std::string code, std::string field, std::string message) {
  out.message.reset();
  out.failure.code = std::move(code);
  out.failure.type = out.type;
  out.failure.field = std::move(field);
  out.failure.message = std::move(message);
}

/// Decodes `o` as body type T; on failure names the field that did not fit.
template <class T> bool decode_body(const msgpack::object& o, tender::body& b, decoded& out) {
  T t{};
  try {
    fast_convert(o, t);
  } catch (const msgpack::type_error&) {
    auto bad = find_bad_field<T>(o, "");
    if (!bad)
      bad = bad_field{"", "map", describe(o)};
    std::string field = bad->path.empty() ? "body" : bad->path;
    fail(out, "wrong_type", field,
         std::string(message_name<T>::value) + " field `" + field + "`: expected " + bad->expected +
             ", got " + bad->got);
    return false;
  }
  b = std::move(t);
  return true;
}

using body_decoder = bool (*)(const msgpack::object&, tender::body&, decoded&);

struct body_entry {
  std::string_view name;
  body_decoder decode;
  std::uint64_t (*footprint)(const msgpack::object&); ///< heap bytes, the body included
  std::optional<bad_string> (*first_bad_string)(const msgpack::object&); ///< not UTF-8
};

template <class T> std::uint64_t body_footprint(const msgpack::object& o) {
  return sizeof(T) + footprint<T>(o);
}

template <class T> std::optional<bad_string> body_bad_string(const msgpack::object& o) {
  return find_bad_string<T>(o, "");
}

template <std::size_t... I> constexpr auto make_body_table(std::index_sequence<I...>) {
  return std::array<body_entry, sizeof...(I)>{
      {{message_name<std::variant_alternative_t<I, tender::body>>::value,
        &decode_body<std::variant_alternative_t<I, tender::body>>,
        &body_footprint<std::variant_alternative_t<I, tender::body>>,
        &body_bad_string<std::variant_alternative_t<I, tender::body>>}...}};
}

constexpr auto body_table =
    make_body_table(std::make_index_sequence<std::variant_size_v<tender::body>>{});

/// First pass over the raw bytes, allocating nothing: checks the frame is one
/// complete MessagePack value, not nested deeper than `max_depth`, and that its
/// arrays and maps do not declare more elements than the frame has bytes (every
/// element takes at least one byte). Only then does the real unpack allocate.
struct shape_check : msgpack::null_visitor {
  std::uint64_t budget = 0;
  std::size_t depth = 0;
  bool too_deep = false;
  std::uint64_t over_budget = 0; ///< elements declared beyond what the bytes can hold

  bool open(std::uint64_t elements) {
    if (++depth > max_depth) {
      too_deep = true;
      return false;
    }
    if (elements > budget) {
      over_budget = elements;
      return false;
    }
    budget -= elements;
    return true;
  }
  bool start_array(std::uint32_t n) { return open(n); }
  bool start_map(std::uint32_t n) { return open(std::uint64_t{n} * 2); }
  bool end_array() {
    --depth;
    return true;
  }
  bool end_map() {
    --depth;
    return true;
  }
};

// ---------------------------------------------------------------------------
// The fast path: a well-formed message as tender itself writes it, read from the
// bytes straight into its structs in one pass, with no msgpack object tree (that tree,
// its zone and the conversion were most of a decode: ~30 k instructions a frame).
//
// It takes only what it can read exactly as the general path below would, and gives
// up (returns false, having written nothing to `out`) on anything else: a frame over
// 16 KiB, keys out of the structs' order, unknown or repeated keys, nil, binary where
// a string goes, a value out of its field's range, a string that is not UTF-8, enums,
// maps and any other type. Then the general path decodes the frame, or names what is
// wrong with it, as before. It runs first, before the general path's shape check: every
// read is bounds-checked, an array may not declare more elements than bytes are left,
// its recursion follows the C++ structs (not the frame's nesting), and the whole frame
// must be the one envelope. `decode_paths` (protocol/envelope.test.cpp) and the decode
// fuzz target hold the two paths to the same result.

constexpr std::size_t fast_max_frame = 16 << 10; ///< decoded size stays far below the budget

class wire_reader {
public:
  explicit wire_reader(std::string_view b)
      : p_(reinterpret_cast<const unsigned char*>(b.data())), end_(p_ + b.size()) {}

  bool at_end() const { return p_ == end_; }
  const unsigned char* mark() const { return p_; }
  void reset(const unsigned char* m) { p_ = m; }

  /// A str (not bin) as a view into the frame.
  bool str(std::string_view& out) {
    std::uint32_t n = 0;
    if (!have(1))
      return false;
    const unsigned char c = *p_;
    if (c >= 0xa0 && c <= 0xbf) {
      n = c & 0x1f;
      ++p_;
    } else if (c == 0xd9) {
      if (!length(1, n))
        return false;
    } else if (c == 0xda) {
      if (!length(2, n))
        return false;
    } else if (c == 0xdb) {
      if (!length(4, n))
        return false;
    } else {
      return false;
    }
    if (!have(n))
      return false;
    out = std::string_view(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return true;
  }

  bool map(std::uint32_t& n) { return header(0x80, 0xde, 0xdf, n); }
  /// An array header; no more elements than bytes left (each takes one at least), so
  /// a forged count never sizes a vector.
  bool array(std::uint32_t& n) {
    return header(0x90, 0xdc, 0xdd, n) && n <= static_cast<std::size_t>(end_ - p_);
  }

  bool boolean(bool& b) {
    if (!have(1) || (*p_ != 0xc2 && *p_ != 0xc3))
      return false;
    b = *p_++ == 0xc3;
    return true;
  }

  /// An integer: `neg` tells which of the two msgpack-c would make of it
  /// (NEGATIVE_INTEGER only below zero).
  bool integer(std::uint64_t& u, std::int64_t& i, bool& neg) {
    if (!have(1))
      return false;
    const unsigned char c = *p_;
    if (c <= 0x7f) {
      ++p_;
      return positive(c, u, neg);
    }
    if (c >= 0xe0) {
      ++p_;
      i = static_cast<std::int8_t>(c);
      neg = true;
      return true;
    }
    std::uint64_t raw = 0;
    switch (c) {
    case 0xcc:
      return big_endian(1, raw) && positive(raw, u, neg);
    case 0xcd:
      return big_endian(2, raw) && positive(raw, u, neg);
    case 0xce:
      return big_endian(4, raw) && positive(raw, u, neg);
    case 0xcf:
      return big_endian(8, raw) && positive(raw, u, neg);
    case 0xd0:
      return big_endian(1, raw) && signed_(static_cast<std::int8_t>(raw), u, i, neg);
    case 0xd1:
      return big_endian(2, raw) && signed_(static_cast<std::int16_t>(raw), u, i, neg);
    case 0xd2:
      return big_endian(4, raw) && signed_(static_cast<std::int32_t>(raw), u, i, neg);
    case 0xd3:
      return big_endian(8, raw) && signed_(static_cast<std::int64_t>(raw), u, i, neg);
    default:
      return false;
    }
  }

  /// float32, float64, or an integer (msgpack-c writes a double without a fraction
  /// as one, and reads one back as msgpack-c's convert does: a cast).
  bool number(double& d) {
    std::uint64_t raw = 0;
    if (!have(1))
      return false;
    if (*p_ <= 0x7f || *p_ >= 0xe0 || (*p_ >= 0xcc && *p_ <= 0xd3)) {
      std::uint64_t u = 0;
      std::int64_t i = 0;
      bool neg = false;
      if (!integer(u, i, neg))
        return false;
      d = neg ? static_cast<double>(i) : static_cast<double>(u);
      return true;
    }
    if (*p_ == 0xcb) {
      if (!big_endian(8, raw))
        return false;
      std::memcpy(&d, &raw, 8);
      return true;
    }
    if (*p_ == 0xca) {
      if (!big_endian(4, raw))
        return false;
      const auto bits = static_cast<std::uint32_t>(raw);
      float f = 0;
      std::memcpy(&f, &bits, 4);
      d = f;
      return true;
    }
    return false;
  }

private:
  bool have(std::size_t n) const { return static_cast<std::size_t>(end_ - p_) >= n; }
  bool advance(std::size_t n) {
    if (!have(n))
      return false;
    p_ += n;
    return true;
  }
  /// The `bytes` big-endian bytes after the current type byte.
  bool big_endian(std::size_t bytes, std::uint64_t& v) {
    if (!have(1 + bytes))
      return false;
    v = 0;
    for (std::size_t k = 1; k <= bytes; ++k)
      v = (v << 8) | p_[k];
    p_ += 1 + bytes;
    return true;
  }
  bool length(std::size_t bytes, std::uint32_t& n) {
    std::uint64_t v = 0;
    if (!big_endian(bytes, v))
      return false;
    n = static_cast<std::uint32_t>(v);
    return true;
  }
  bool header(unsigned char fix, unsigned char c16, unsigned char c32, std::uint32_t& n) {
    if (!have(1))
      return false;
    const unsigned char c = *p_;
    if (c >= fix && c <= fix + 0x0f) {
      n = c & 0x0f;
      ++p_;
      return true;
    }
    if (c == c16)
      return length(2, n);
    if (c == c32)
      return length(4, n);
    return false;
  }
  static bool positive(std::uint64_t v, std::uint64_t& u, bool& neg) {
    u = v;
    neg = false;
    return true;
  }
  static bool signed_(std::int64_t v, std::uint64_t& u, std::int64_t& i, bool& neg) {
    if (v >= 0)
      return positive(static_cast<std::uint64_t>(v), u, neg);
    i = v;
    neg = true;
    return true;
  }

  const unsigned char* p_;
  const unsigned char* end_;
};

template <class T> bool fast_read(wire_reader& r, T& t);

/// Whether a key read is the field's name, compared in place: keys are short and nearly
/// always equal (tender writes every field, in order), so a call to memcmp for each cost
/// more than the compare itself.
__attribute__((always_inline)) inline bool same_key(std::string_view a, std::string_view b) {
  if (a.size() != b.size())
    return false;
  const char* p = a.data();
  const char* q = b.data();
  std::size_t n = a.size();
  for (; n >= 8; n -= 8, p += 8, q += 8) {
    std::uint64_t x, y;
    std::memcpy(&x, p, 8);
    std::memcpy(&y, q, 8);
    if (x != y)
      return false;
  }
  for (; n > 0; --n)
    if (*p++ != *q++)
      return false;
  return true;
}

/// A struct's map, its keys in the struct's own order (a subset: the others keep
/// their defaults). A key that matches no field left over is the general path's.
template <class T> bool fast_struct(wire_reader& r, T& t) {
  std::uint32_t left = 0;
  if (!r.map(left))
    return false;
  bool ok = true;
  auto on_field = [&](std::string_view name, const auto& field) {
    if (!ok || left == 0)
      return;
    const auto* at = r.mark();
    std::string_view key;
    if (!r.str(key)) {
      ok = false;
      return;
    }
    if (!same_key(key, name)) {
      r.reset(at); // this field is not in the frame: its default stays
      return;
    }
    --left;
    ok = fast_read(r, const_cast<std::decay_t<decltype(field)>&>(field));
  };
  field_visitor<decltype(on_field)> fv{on_field, {}};
  t.msgpack_pack(fv);
  return ok && left == 0;
}

template <class T> bool fast_read(wire_reader& r, T& t) {
  if constexpr (std::is_same_v<T, bool>) {
    return r.boolean(t);
  } else if constexpr (std::is_integral_v<T> && !std::is_same_v<T, char> &&
                       !std::is_same_v<T, unsigned char> && !std::is_same_v<T, signed char>) {
    std::uint64_t u = 0;
    std::int64_t i = 0;
    bool neg = false;
    if (!r.integer(u, i, neg))
      return false;
    if (neg) {
      if constexpr (std::is_unsigned_v<T>)
        return false;
      else if (i < static_cast<std::int64_t>(std::numeric_limits<T>::min()))
        return false;
      t = static_cast<T>(i);
      return true;
    }
    if (u > static_cast<std::uint64_t>(std::numeric_limits<T>::max()))
      return false;
    t = static_cast<T>(u);
    return true;
  } else if constexpr (std::is_same_v<T, double>) {
    return r.number(t);
  } else if constexpr (std::is_same_v<T, std::string>) {
    std::string_view v;
    if (!r.str(v) || invalid_utf8_at(v) != std::string_view::npos)
      return false;
    t.assign(v.data(), v.size());
    return true;
  } else if constexpr (is_vector<T>::value) {
    using E = typename T::value_type;
    if constexpr (std::is_same_v<E, char> || std::is_same_v<E, unsigned char> ||
                  std::is_same_v<E, bool>) {
      return false;
    } else {
      std::uint32_t n = 0;
      if (!r.array(n))
        return false;
      t.resize(n); // as fast_convert and msgpack-c: every element is read over
      for (auto& e : t)
        if (!fast_read(r, e))
          return false;
      return true;
    }
  } else if constexpr (define_map_struct<T>) {
    return fast_struct(r, t);
  } else {
    return false; // enums, maps, floats, optionals, ...: the general path
  }
}

template <class T> bool fast_body(wire_reader& r, tender::body& b) {
  T t{};
  if (!fast_read(r, t))
    return false;
  b = std::move(t);
  return true;
}

template <std::size_t... I> constexpr auto make_fast_table(std::index_sequence<I...>) {
  return std::array<bool (*)(wire_reader&, tender::body&), sizeof...(I)>{
      {&fast_body<std::variant_alternative_t<I, tender::body>>...}};
}

constexpr auto fast_table =
    make_fast_table(std::make_index_sequence<std::variant_size_v<tender::body>>{});

/// The envelope as encode() writes it: its seven keys in that order.
bool fast_decode(std::string_view bytes, decoded& out) {
  if (bytes.size() > fast_max_frame)
    return false;
  wire_reader r(bytes);
  std::uint32_t n = 0;
  if (!r.map(n) || n != 7)
    return false;
  std::string_view key, type;
  envelope env;
  auto expect = [&](std::string_view k) { return r.str(key) && key == k; };
  auto text = [&](std::string& into) {
    std::string_view v;
    if (!r.str(v) || invalid_utf8_at(v) != std::string_view::npos)
      return false;
    into.assign(v.data(), v.size());
    return true;
  };
  std::uint64_t u = 0;
  std::int64_t i = 0;
  bool neg = false;
  if (!expect("v") || !r.integer(u, i, neg) || neg || u != wire_version)
    return false;
  if (!expect("type") || !r.str(type))
    return false;
  std::size_t which = body_table.size();
  for (std::size_t k = 0; k < body_table.size(); ++k)
    if (body_table[k].name == type)
      which = k;
  if (which == body_table.size())
    return false;
  if (!expect("id") || !text(env.id) || !expect("correlation_id") || !text(env.correlation_id) ||
      !expect("sender") || !text(env.sender))
    return false;
  if (!expect("sent_at") || !r.integer(u, i, neg))
    return false;
  if (!neg && u > static_cast<std::uint64_t>(std::numeric_limits<usec>::max()))
    return false;
  env.sent_at = neg ? i : static_cast<usec>(u);
  if (!expect("body") || !fast_table[which](r, env.body) || !r.at_end())
    return false;
  env.v = wire_version;
  out.type.assign(type.data(), type.size());
  out.id = env.id;
  out.message = std::move(env);
  return true;
}

/// Reads an optional string field of the envelope; false when it has the wrong type.
bool read_string(const msgpack::object* o, std::string& out) {
  if (!o || o->type == msgpack::type::NIL)
    return true;
  if (o->type != msgpack::type::STR)
    return false;
  out.assign(o->via.str.ptr, o->via.str.size);
  return true;
}

void decode_into(std::string_view bytes, std::size_t max_frame, decoded& out, bool fast) {
  if (bytes.size() > max_frame) {
    fail(out, "oversized", "",
         "frame of " + std::to_string(bytes.size()) + " bytes is larger than the limit of " +
             std::to_string(max_frame) + " bytes; split the message or raise the limit");
    return;
  }
  if (bytes.empty()) {
    fail(out, "truncated", "", "empty frame: expected a MessagePack map {v, type, body, ...}");
    return;
  }

  if (fast && fast_decode(bytes, out))
    return;

  shape_check shape;
  shape.budget = bytes.size();
  std::size_t off = 0;
  auto ret = msgpack::detail::parse_imp(bytes.data(), bytes.size(), off, shape);
  switch (ret) {
  case msgpack::PARSE_SUCCESS:
    break;
  case msgpack::PARSE_EXTRA_BYTES:
    fail(out, "invalid", "",
         "trailing garbage: the message ends at byte " + std::to_string(off) + " of " +
             std::to_string(bytes.size()) + "; send exactly one message per frame");
    return;
  case msgpack::PARSE_CONTINUE:
    fail(out, "truncated", "",
         "truncated frame: the message needs more than the " + std::to_string(bytes.size()) +
             " bytes received (was the frame cut short?)");
    return;
  case msgpack::PARSE_STOP_VISITOR:
    if (shape.too_deep) {
      fail(out, "invalid", "",
           "nesting deeper than " + std::to_string(max_depth) + " levels at byte " +
               std::to_string(off) + "; no tender message is nested that deep");
    } else {
      fail(out, "truncated", "",
           "truncated or corrupt frame: an array or map near byte " + std::to_string(off) +
               " declares " + std::to_string(shape.over_budget) + " elements, more than the " +
               std::to_string(bytes.size()) + " bytes received can hold");
    }
    return;
  default:
    fail(out, "invalid", "",
         "not MessagePack: invalid byte at offset " + std::to_string(off) + " of " +
             std::to_string(bytes.size()));
    return;
  }

  const msgpack::unpack_limit limit(bytes.size(), bytes.size(), bytes.size(), bytes.size(),
                                    bytes.size(), max_depth + 1);
  // Strings and binaries point into `bytes` (alive until this returns, and the
  // handle does not outlive it) instead of being copied into the handle's zone: the
  // decoded message copies each once, into its own std::string.
  const auto refer_to_frame = [](msgpack::type::object_type, std::size_t, void*) { return true; };
  bool referenced = false;
  std::size_t consumed = 0;
  msgpack::object_handle handle = msgpack::unpack(bytes.data(), bytes.size(), consumed, referenced,
                                                  refer_to_frame, nullptr, limit);
  const msgpack::object& root = handle.get();
  if (root.type != msgpack::type::MAP) {
    fail(out, "invalid", "",
         "top level is " + describe(root) +
             ", expected a map {v, type, id, correlation_id, sender, sent_at, body}");
    return;
  }

  const msgpack::object *v = nullptr, *type = nullptr, *id = nullptr, *correlation_id = nullptr,
                        *sender = nullptr, *sent_at = nullptr, *body_obj = nullptr;
  const std::array<std::pair<std::string_view, const msgpack::object**>, 7> keys{{
      {"v", &v},
      {"type", &type},
      {"id", &id},
      {"correlation_id", &correlation_id},
      {"sender", &sender},
      {"sent_at", &sent_at},
      {"body", &body_obj},
  }};
  for (std::uint32_t i = 0; i < root.via.map.size; ++i) {
    const auto& kv = root.via.map.ptr[i];
    if (kv.key.type != msgpack::type::STR)
      continue; // not ours: ignored like any unknown key
    std::string_view name(kv.key.via.str.ptr, kv.key.via.str.size);
    for (const auto& [key, slot] : keys)
      if (name == key && !*slot)
        *slot = &kv.val;
  }

  // Best effort first, so that even a refused message can be answered.
  if (type && type->type == msgpack::type::STR)
    out.type.assign(type->via.str.ptr, type->via.str.size);
  if (id && id->type == msgpack::type::STR &&
      invalid_utf8_at({id->via.str.ptr, id->via.str.size}) == std::string_view::npos)
    out.id.assign(id->via.str.ptr, id->via.str.size);

  if (!v) {
    fail(out, "invalid", "v", "envelope has no `v` (version); expected v = 1");
    return;
  }
  if (v->type != msgpack::type::POSITIVE_INTEGER) {
    fail(out, "wrong_type", "v", "envelope field `v`: expected integer, got " + describe(*v));
    return;
  }
  if (v->via.u64 != wire_version) {
    fail(out, "version", "v",
         "unsupported envelope version " + std::to_string(v->via.u64) + "; this node speaks v" +
             std::to_string(wire_version));
    return;
  }
  if (!type) {
    fail(out, "invalid", "type",
         "envelope has no `type`; expected a message name like \"job_submit\"");
    return;
  }
  if (type->type != msgpack::type::STR) {
    fail(out, "wrong_type", "type",
         "envelope field `type`: expected string, got " + describe(*type));
    return;
  }
  envelope env;
  const std::array<std::pair<const char*, std::pair<const msgpack::object*, std::string*>>, 3>
      strings{{{"id", {id, &env.id}},
               {"correlation_id", {correlation_id, &env.correlation_id}},
               {"sender", {sender, &env.sender}}}};
  for (const auto& [name, field] : strings) {
    if (!read_string(field.first, *field.second)) {
      fail(out, "wrong_type", name,
           std::string("envelope field `") + name + "`: expected string, got " +
               describe(*field.first));
      return;
    }
  }
  if (sent_at && sent_at->type != msgpack::type::NIL) {
    bool ok = (sent_at->type == msgpack::type::POSITIVE_INTEGER &&
               sent_at->via.u64 <= static_cast<std::uint64_t>(std::numeric_limits<usec>::max())) ||
              sent_at->type == msgpack::type::NEGATIVE_INTEGER;
    if (!ok) {
      fail(out, "wrong_type", "sent_at",
           "envelope field `sent_at`: expected integer microseconds since the epoch, got " +
               describe(*sent_at));
      return;
    }
    env.sent_at = sent_at->type == msgpack::type::POSITIVE_INTEGER
                      ? static_cast<usec>(sent_at->via.u64)
                      : sent_at->via.i64;
  }

  const body_entry* entry = nullptr;
  for (const auto& e : body_table)
    if (e.name == out.type)
      entry = &e;
  if (!entry) {
    fail(out, "unknown_type", "type",
         "unknown message type \"" + out.type + "\"; this node does not handle it");
    return;
  }
  if (!body_obj) {
    fail(out, "invalid", "body", "envelope has no `body`; expected the " + out.type + " map");
    return;
  }
  if (body_obj->type != msgpack::type::MAP) {
    fail(out, "wrong_type", "body",
         "envelope field `body`: expected the " + out.type + " map, got " + describe(*body_obj));
    return;
  }
  const std::uint64_t need = entry->footprint(*body_obj);
  if (need > memory_budget(bytes.size())) {
    fail(out, "oversized", "body",
         out.type + " body would take " + std::to_string(need >> 20) +
             " MiB in memory once decoded, from a frame of " + std::to_string(bytes.size()) +
             " bytes; the limit is " + std::to_string(memory_budget(bytes.size()) >> 20) +
             " MiB (is it padded with empty elements?)");
    return;
  }
  std::optional<bad_string> bad;
  bool in_body = false;
  for (const auto& [name, field] : strings)
    if (!bad && field.first)
      bad = check_utf8(*field.first, name, false);
  if (!bad && !all_utf8(*body_obj)) {
    bad = entry->first_bad_string(*body_obj);
    in_body = true;
  }
  if (bad) {
    std::string field = bad->path.empty() ? "body" : bad->path;
    char byte[8];
    std::snprintf(byte, sizeof byte, "0x%02X", bad->byte);
    fail(out, "invalid", field,
         (in_body ? out.type + " field `" : std::string("envelope field `")) + field +
             "`: " + (bad->key ? "a key" : "the string") + " is not valid UTF-8 (byte " + byte +
             " at offset " + std::to_string(bad->offset) + ")");
    return;
  }
  if (!entry->decode(*body_obj, env.body, out))
    return;
  env.v = wire_version;
  out.message = std::move(env);
}

} // namespace

const char* type_name(const body& b) {
  return std::visit([](const auto& m) { return message_name<std::decay_t<decltype(m)>>::value; },
                    b);
}

namespace {

// ---------------------------------------------------------------------------
// The fast encoder.
//
// msgpack-c's packer writes through a stream, one call per token, and takes every key
// through strlen: ~8,500 instructions for a 640-byte resource_request. This writes the
// same bytes (msgpack_writer: the same smallest encodings, whole doubles as integers)
// straight into the frame, walking the structs as the decoder's fast path does. What it
// does not write exactly as msgpack-c would — enums, floats, chars, optionals, doubles
// that are not finite or beyond +-2^63, structs with their own packers — makes it give
// up, and encode() takes msgpack-c's path for the whole message.

template <class T> bool fast_write(msgpack_writer& w, const T& t);

/// A "packer" for a MSGPACK_DEFINE_MAP struct's msgpack_pack: the map's header, then
/// each key (a string literal) and each field through fast_write.
struct struct_writer {
  msgpack_writer& w;
  bool ok = true;
  bool opened = false;
  std::uint32_t expected = 0, values = 0;

  struct_writer& pack_map(std::uint32_t n) {
    if (opened)
      ok = false;
    opened = true;
    expected = n;
    w.map(n);
    return *this;
  }
  template <class T> struct_writer& pack(const T& v) {
    if (!ok)
      return *this;
    if (!opened) {
      ok = false; // not a map of key/value pairs: msgpack-c's business
      return *this;
    }
    if constexpr (std::is_array_v<T>) {
      w.key(v); // a field's name: MSGPACK_DEFINE_MAP's string literal
    } else {
      ++values;
      ok = fast_write(w, v);
    }
    return *this;
  }
};

template <class T> bool fast_write(msgpack_writer& w, const T& t) {
  if constexpr (std::is_same_v<T, bool>) {
    w.pack(t);
    return true;
  } else if constexpr (std::is_same_v<T, char> || std::is_same_v<T, signed char> ||
                       std::is_same_v<T, unsigned char>) {
    return false;
  } else if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) {
    w.pack(static_cast<std::int64_t>(t));
    return true;
  } else if constexpr (std::is_integral_v<T>) {
    w.pack_uint(static_cast<std::uint64_t>(t));
    return true;
  } else if constexpr (std::is_same_v<T, double>) {
    if (!(t > -9223372036854775808.0 && t < 9223372036854775808.0))
      return false; // NaN, infinities and the far ends: msgpack-c's own rules
    w.pack(t);
    return true;
  } else if constexpr (std::is_same_v<T, std::string>) {
    w.pack(std::string_view(t));
    return true;
  } else if constexpr (is_vector<T>::value) {
    using E = typename T::value_type;
    if constexpr (std::is_same_v<E, bool> || std::is_same_v<E, char> ||
                  std::is_same_v<E, unsigned char>) {
      return false;
    } else {
      if (t.size() > std::numeric_limits<std::uint32_t>::max())
        return false;
      w.array(static_cast<std::uint32_t>(t.size()));
      for (const auto& e : t)
        if (!fast_write(w, e))
          return false;
      return true;
    }
  } else if constexpr (is_map<T>::value) {
    if (t.size() > std::numeric_limits<std::uint32_t>::max())
      return false;
    w.map(static_cast<std::uint32_t>(t.size()));
    for (const auto& [k, v] : t)
      if (!fast_write(w, k) || !fast_write(w, v))
        return false;
    return true;
  } else if constexpr (define_map_struct<T>) {
    struct_writer sw{w};
    t.msgpack_pack(sw);
    return sw.ok && sw.opened && sw.values == sw.expected;
  } else {
    return false; // enums, floats, optionals, ...: msgpack-c's path
  }
}

/// An envelope of these fields and body as encode() writes it, or false (then `out` is
/// to be thrown away).
template <class T>
bool fast_encode_parts(std::uint32_t v, std::string_view id, std::string_view correlation_id,
                       std::string_view sender, usec sent_at, const T& body, std::string& out) {
  msgpack_writer w(out);
  w.expect(1024); // most frames fit: no doubling on the way
  w.map(7);
  w.key("v");
  w.pack_uint(v);
  w.key("type");
  w.pack(std::string_view(message_name<T>::value));
  w.key("id");
  w.pack(id);
  w.key("correlation_id");
  w.pack(correlation_id);
  w.key("sender");
  w.pack(sender);
  w.key("sent_at");
  w.pack(static_cast<std::int64_t>(sent_at));
  w.key("body");
  return fast_write(w, body);
}

bool fast_encode(const envelope& e, std::string& out) {
  return std::visit(
      [&](const auto& m) {
        return fast_encode_parts(e.v, e.id, e.correlation_id, e.sender, e.sent_at, m, out);
      },
      e.body);
}

} // namespace

std::string encode(const envelope& e) {
  std::string out;
  if (fast_encode(e, out))
    return out;
  return encode_general(e);
}

template <class T>
std::string encode_message(const T& b, const std::string& sender, usec sent_at,
                           const std::string& id, const std::string& correlation_id) {
  std::string out;
  if (fast_encode_parts(wire_version, id, correlation_id, sender, sent_at, b, out))
    return out;
  return encode_general(make_envelope(b, sender, sent_at, id, correlation_id));
}

#define TENDER_COUNT_MESSAGE(T) +1
static_assert(0 TENDER_FOR_EACH_MESSAGE(TENDER_COUNT_MESSAGE) == std::variant_size_v<body>,
              "TENDER_FOR_EACH_MESSAGE lists every body type");
#undef TENDER_COUNT_MESSAGE
#define TENDER_ENCODE_MESSAGE(T)                                                                   \
  template std::string encode_message<T>(const T&, const std::string&, usec, const std::string&,   \
                                         const std::string&);
TENDER_FOR_EACH_MESSAGE(TENDER_ENCODE_MESSAGE)
#undef TENDER_ENCODE_MESSAGE

bool fast_path_writes(const envelope& e) {
  std::string out;
  return fast_encode(e, out);
}

std::string encode_general(const envelope& e) {
  // One buffer per thread, reused: a fresh sbuffer mallocs 8 KiB for every message
  // (and frees it, which made malloc_consolidate a hot spot on the mesh's busy path).
  thread_local msgpack::sbuffer buf(1024);
  buf.clear();
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_map(7);
  pack_str(pk, "v");
  pk.pack(e.v);
  pack_str(pk, "type");
  pack_str(pk, type_name(e.body));
  pack_str(pk, "id");
  pack_str(pk, e.id);
  pack_str(pk, "correlation_id");
  pack_str(pk, e.correlation_id);
  pack_str(pk, "sender");
  pack_str(pk, e.sender);
  pack_str(pk, "sent_at");
  pk.pack(e.sent_at);
  pack_str(pk, "body");
  std::visit([&](const auto& m) { pk.pack(m); }, e.body);
  std::string out(buf.data(), buf.size());
  if (buf.size() > (64u << 10))
    buf = msgpack::sbuffer(1024); // a rare big message does not stay allocated per thread
  return out;
}

namespace {

decoded decode_with(std::string_view bytes, std::size_t max_frame, bool fast) {
  decoded out;
  try {
    decode_into(bytes, max_frame, out, fast);
  } catch (const msgpack::unpack_error& e) {
    // The first pass should have caught these; kept as a safety net.
    fail(out, "invalid", "", std::string("not a valid message: ") + e.what());
  } catch (const std::bad_alloc&) {
    fail(out, "oversized", "", "message too large to decode in memory");
  } catch (const std::exception& e) {
    fail(out, "invalid", "", std::string("could not decode message: ") + e.what());
  }
  return out;
}

} // namespace

decoded decode(std::string_view bytes, std::size_t max_frame) {
  return decode_with(bytes, max_frame, true);
}

decoded decode_general(std::string_view bytes, std::size_t max_frame) {
  return decode_with(bytes, max_frame, false);
}

bool fast_path_reads(std::string_view bytes) {
  decoded out;
  return fast_decode(bytes, out);
}

envelope make_envelope(tender::body b, std::string sender, usec sent_at, std::string id,
                       std::string correlation_id) {
  envelope e;
  e.v = wire_version;
  e.id = std::move(id);
  e.correlation_id = std::move(correlation_id);
  e.sender = std::move(sender);
  e.sent_at = sent_at;
  e.body = std::move(b);
  return e;
}

} // namespace tender
