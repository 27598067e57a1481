// `[security]` in a node config: paths resolve against the config's directory, allow
// entries are Z85 keys or .pub paths, and every mistake names its key.

#include "config/node_config.hpp"

#include <gtest/gtest.h>

namespace tender {
namespace {

std::variant<node_config, config_error> parse(const std::string& text) {
  return parse_node_toml(text, "node.toml", "/etc/tender");
}

std::string error_of(const std::string& text) {
  auto r = parse(text);
  if (auto* e = std::get_if<config_error>(&r))
    return e->to_string();
  return "(parsed)";
}

const std::string key40 = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";

TEST(security_config, keys_paths_and_flags) {
  auto r = parse("[security]\nkey = \"keys/node.key\"\nallow = [\"alice.key.pub\", \"" + key40 +
                 "\", \"/abs/bob.pub\"]\nallow_dir = \"clients\"\ninsecure = true\n");
  ASSERT_TRUE(std::holds_alternative<node_config>(r)) << std::get<config_error>(r).to_string();
  auto& s = std::get<node_config>(r).security;
  EXPECT_EQ(s.key, "/etc/tender/keys/node.key");
  EXPECT_EQ(s.allow,
            (std::vector<std::string>{"/etc/tender/alice.key.pub", key40, "/abs/bob.pub"}));
  EXPECT_EQ(s.allow_dir, "/etc/tender/clients");
  EXPECT_TRUE(s.insecure);

  auto none = std::get<node_config>(parse(""));
  EXPECT_EQ(none.security.key, "");
  EXPECT_TRUE(none.security.allow.empty());
  EXPECT_FALSE(none.security.insecure);
}

TEST(security_config, mistakes_name_the_key) {
  EXPECT_EQ(error_of("[security]\nkey = \"n.key\"\nallow = [\"" + key40 + "\", \"alice\"]\n"),
            "node.toml: security.allow[1]: expected a 40-character Z85 public key or a path "
            "ending in .pub, got 'alice'");
  EXPECT_NE(error_of("[security]\ninsecure = \"yes\"\n").find("security.insecure"),
            std::string::npos);
  EXPECT_NE(error_of("[security]\nkeys = \"n.key\"\n").find("security.keys: unknown key"),
            std::string::npos);
  EXPECT_NE(error_of("[security]\nkey = \"\"\n").find("security.key: must not be empty"),
            std::string::npos);
}

} // namespace
} // namespace tender
