#include "protocol/msgpack_writer.hpp"

#include <gtest/gtest.h>
#include <msgpack.hpp>

#include <cmath>
#include <limits>
#include <vector>

namespace tender {
namespace {

/// What msgpack-c's own packer writes for `v`.
template <class T> std::string reference(const T& v) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack(v);
  return std::string(buf.data(), buf.size());
}

template <class T> std::string ours(const T& v) {
  std::string out;
  {
    msgpack_writer w(out);
    w.pack(v);
  } // the writer trims `out` to what it wrote when it goes
  return out;
}

std::string hex(const std::string& s) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out += d[c >> 4];
    out += d[c & 15];
  }
  return out;
}

TEST(msgpack_writer, integers_at_every_encoding_boundary_are_msgpack_cs_bytes) {
  std::vector<std::int64_t> values{0,
                                   1,
                                   31,
                                   32,
                                   127,
                                   128,
                                   255,
                                   256,
                                   65535,
                                   65536,
                                   4294967295ll,
                                   4294967296ll,
                                   -1,
                                   -31,
                                   -32,
                                   -33,
                                   -127,
                                   -128,
                                   -129,
                                   -32767,
                                   -32768,
                                   -32769,
                                   -2147483647ll,
                                   -2147483648ll,
                                   -2147483649ll,
                                   std::numeric_limits<std::int64_t>::max(),
                                   std::numeric_limits<std::int64_t>::min()};
  for (auto v : values) {
    EXPECT_EQ(hex(ours(v)), hex(reference(v))) << v;
    if (v >= std::numeric_limits<std::int32_t>::min() &&
        v <= std::numeric_limits<std::int32_t>::max()) {
      const auto v32 = static_cast<std::int32_t>(v);
      EXPECT_EQ(hex(ours(v32)), hex(reference(v32))) << v32;
    }
  }
}

TEST(msgpack_writer, doubles_whole_or_not_signed_or_not_are_msgpack_cs_bytes) {
  std::vector<double> values{0.0,
                             -0.0,
                             1.0,
                             -1.0,
                             0.5,
                             -0.5,
                             127.0,
                             128.0,
                             1e9,
                             -1e9,
                             0.1,
                             3.141592653589793,
                             1e-300,
                             -2.5e17,
                             4294967296.0,
                             9223372036854775807.0,
                             -9223372036854775808.0,
                             1.8446744073709550e19,
                             1e20,
                             -1e20,
                             std::numeric_limits<double>::infinity(),
                             -std::numeric_limits<double>::infinity(),
                             std::numeric_limits<double>::denorm_min()};
  for (auto v : values)
    EXPECT_EQ(hex(ours(v)), hex(reference(v))) << v;
  // NaN: a float64 either way, whatever its payload.
  const auto nan = ours(std::nan(""));
  ASSERT_EQ(nan.size(), 9u);
  EXPECT_EQ(static_cast<unsigned char>(nan[0]), 0xcb);
}

TEST(msgpack_writer, strings_of_every_length_class_and_bools_are_msgpack_cs_bytes) {
  for (std::size_t n : {0, 1, 31, 32, 255, 256, 65535, 65536}) {
    std::string s(n, 'x');
    EXPECT_EQ(hex(ours(s)), hex(reference(s))) << n;
  }
  EXPECT_EQ(hex(ours(true)), hex(reference(true)));
  EXPECT_EQ(hex(ours(false)), hex(reference(false)));
}

TEST(msgpack_writer, bin_of_every_length_class_is_msgpack_cs_bytes) {
  for (std::size_t n : {0, 1, 255, 256, 65535, 65536}) {
    std::string s(n, '\x07');
    std::string out;
    {
      msgpack_writer w(out);
      w.bin(s);
    }
    msgpack::sbuffer ref;
    msgpack::packer<msgpack::sbuffer> pk(ref);
    pk.pack_bin(static_cast<std::uint32_t>(n));
    pk.pack_bin_body(s.data(), static_cast<std::uint32_t>(n));
    EXPECT_EQ(hex(out), hex(std::string(ref.data(), ref.size()))) << n;
  }
}

TEST(msgpack_writer, writes_after_what_the_string_held_and_trims_to_what_it_wrote) {
  std::string out = "ab";
  {
    msgpack_writer w(out);
    w.pack(std::string(40, 'x'));
    w.pack(1.5);
    EXPECT_GT(out.size(), 2u + 42u + 9u); // room ahead while it writes
  }
  EXPECT_EQ(out.substr(0, 2), "ab");
  EXPECT_EQ(hex(out.substr(2)), hex(reference(std::string(40, 'x')) + reference(1.5)));
}

TEST(msgpack_writer, array_headers_are_msgpack_cs_bytes_and_arrays_read_back) {
  for (std::uint32_t n : {0u, 15u, 16u, 65535u, 65536u}) {
    std::string out;
    msgpack_writer w(out);
    w.array(n);
    w.flush();
    msgpack::sbuffer head;
    msgpack::packer<msgpack::sbuffer>(head).pack_array(n);
    EXPECT_EQ(hex(out), hex(std::string(head.data(), head.size()))) << n;
    for (std::uint32_t i = 0; i < n; ++i)
      w.pack(static_cast<std::int64_t>(i) - 40);
    w.flush();
    auto h = msgpack::unpack(out.data(), out.size());
    ASSERT_EQ(h.get().type, msgpack::type::ARRAY) << n;
    ASSERT_EQ(h.get().via.array.size, n);
    for (std::uint32_t i = 0; i < n; i += 997)
      EXPECT_EQ(h.get().via.array.ptr[i].as<std::int64_t>(), static_cast<std::int64_t>(i) - 40);
  }
}

} // namespace
} // namespace tender
