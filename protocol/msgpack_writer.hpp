#pragma once
// MessagePack written straight into a byte buffer, for the hot paths that pack many
// small fields (a negotiation's offers in the journal: ~380 fields each time).
//
// msgpack::packer does the same through a stream, one `write` call per token, and
// tests every double for being a whole number through a double -> uint64 conversion:
// about 100 instructions a field (callgrind). The bytes are msgpack-c's: the same
// smallest encodings for integers and lengths, and whole-number doubles written as
// integers, as the msgpack-c here (4.1) writes them (protocol/msgpack_writer.test.cpp
// compares).

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace tender {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "msgpack_writer swaps to big endian");

class msgpack_writer {
public:
  /// Writes after whatever `out` holds; `out` has exactly what was written once the
  /// writer is gone (or after `flush`).
  explicit msgpack_writer(std::string& out) : out_(out), len_(out.size()) {}
  ~msgpack_writer() { flush(); }
  msgpack_writer(const msgpack_writer&) = delete;
  msgpack_writer& operator=(const msgpack_writer&) = delete;

  /// Trims `out` to what was written.
  void flush() { out_.resize(len_); }

  void array(std::uint32_t n) {
    if (n < 16)
      byte(static_cast<std::uint8_t>(0x90 | n));
    else if (n < 0x10000)
      head16(0xdc, n);
    else
      head32(0xdd, n);
  }

  void map(std::uint32_t n) {
    if (n < 16)
      byte(static_cast<std::uint8_t>(0x80 | n));
    else if (n < 0x10000)
      head16(0xde, n);
    else
      head32(0xdf, n);
  }

  void pack(bool v) { byte(v ? 0xc3 : 0xc2); }
  void pack_uint(std::uint64_t v) { pack_unsigned(v); }
  void pack(std::int32_t v) { pack(static_cast<std::int64_t>(v)); }
  void pack(std::int64_t v) {
    if (v >= 0)
      return pack_unsigned(static_cast<std::uint64_t>(v));
    if (v >= -32)
      byte(static_cast<std::uint8_t>(v)); // negative fixint
    else if (v >= -128)
      head8(0xd0, static_cast<std::uint8_t>(v));
    else if (v >= -32768)
      head16(0xd1, static_cast<std::uint16_t>(v));
    else if (v >= INT32_MIN)
      head32(0xd2, static_cast<std::uint32_t>(v));
    else
      head64(0xd3, static_cast<std::uint64_t>(v));
  }
  void pack(double d) {
    // A whole number in range is an integer on the wire (NaN fails every test here).
    if (d >= -9223372036854775808.0 && d < 9223372036854775808.0) {
      const auto i = static_cast<std::int64_t>(d);
      if (static_cast<double>(i) == d)
        return pack(i);
    } else if (d >= 9223372036854775808.0 && d < 18446744073709551616.0) {
      const auto u = static_cast<std::uint64_t>(d);
      if (static_cast<double>(u) == d)
        return pack_unsigned(u);
    }
    std::uint64_t bits;
    std::memcpy(&bits, &d, sizeof bits);
    head64(0xcb, bits);
  }
  void pack(std::string_view s) {
    const auto n = s.size();
    if (n < 32) { // header and body in one go
      char* at = room(n + 1);
      at[0] = static_cast<char>(0xa0 | n);
      if (n > 0)
        std::memcpy(at + 1, s.data(), n);
      return;
    }
    if (n < 0x100)
      head8(0xd9, static_cast<std::uint8_t>(n));
    else if (n < 0x10000)
      head16(0xda, static_cast<std::uint16_t>(n));
    else
      head32(0xdb, static_cast<std::uint32_t>(n));
    if (n > 0)
      std::memcpy(room(n), s.data(), n);
  }
  void pack(const std::string& s) { pack(std::string_view(s)); }
  /// A string literal (a key), as msgpack-c packs a char array: up to its first NUL,
  /// here its terminating one. Its length is known when compiling: one copy of a fixed
  /// size, no strlen.
  template <std::size_t N> void key(const char (&k)[N]) {
    static_assert(N >= 1, "a string literal");
    if constexpr (N - 1 < 32) {
      char* at = room(N);
      at[0] = static_cast<char>(0xa0 | (N - 1));
      std::memcpy(at + 1, k, N - 1);
    } else {
      pack(std::string_view(k, N - 1));
    }
  }
  /// Room for `n` more bytes from the start (one allocation instead of doubling up to it).
  void expect(std::size_t n) {
    if (out_.size() < len_ + n)
      out_.resize(len_ + n);
  }
  void pack(const char* s) { pack(std::string_view(s)); }
  /// `s` as MessagePack's bin type (bytes, not text).
  void bin(std::string_view s) {
    const auto n = s.size();
    if (n < 0x100)
      head8(0xc4, static_cast<std::uint8_t>(n));
    else if (n < 0x10000)
      head16(0xc5, static_cast<std::uint16_t>(n));
    else
      head32(0xc6, static_cast<std::uint32_t>(n));
    if (n > 0)
      std::memcpy(room(n), s.data(), n);
  }

private:
  void pack_unsigned(std::uint64_t v) {
    if (v < 0x80)
      byte(static_cast<std::uint8_t>(v)); // positive fixint
    else if (v < 0x100)
      head8(0xcc, static_cast<std::uint8_t>(v));
    else if (v < 0x10000)
      head16(0xcd, static_cast<std::uint16_t>(v));
    else if (v < 0x100000000ull)
      head32(0xce, static_cast<std::uint32_t>(v));
    else
      head64(0xcf, v);
  }

  /// Room for `n` more bytes: `out` grows ahead, in steps (trimmed by `flush`).
  __attribute__((always_inline)) char* room(std::size_t n) {
    if (__builtin_expect(len_ + n > out_.size(), 0))
      grow(n);
    char* at = out_.data() + len_;
    len_ += n;
    return at;
  }
  __attribute__((noinline)) void grow(std::size_t n) {
    out_.resize(std::max<std::size_t>(2 * out_.size(), len_ + n + 64));
  }
  void byte(std::uint8_t b) { *room(1) = static_cast<char>(b); }
  void head8(std::uint8_t tag, std::uint8_t v) {
    char* at = room(2);
    at[0] = static_cast<char>(tag);
    at[1] = static_cast<char>(v);
  }
  void head16(std::uint8_t tag, std::uint16_t v) {
    char* at = room(3);
    at[0] = static_cast<char>(tag);
    v = __builtin_bswap16(v);
    std::memcpy(at + 1, &v, 2);
  }
  void head32(std::uint8_t tag, std::uint32_t v) {
    char* at = room(5);
    at[0] = static_cast<char>(tag);
    v = __builtin_bswap32(v);
    std::memcpy(at + 1, &v, 4);
  }
  void head64(std::uint8_t tag, std::uint64_t v) {
    char* at = room(9);
    at[0] = static_cast<char>(tag);
    v = __builtin_bswap64(v);
    std::memcpy(at + 1, &v, 8);
  }

  std::string& out_;
  std::size_t len_; ///< bytes of `out_` written; the rest is room
};

} // namespace tender
