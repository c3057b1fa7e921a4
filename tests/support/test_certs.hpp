#pragma once
// Certificates made at test time with the openssl CLI (nothing secret in the tree).
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <string>

#include "support/temp_dir.hpp"

namespace storepulse::test {

struct CertFiles {
  std::string cert, key;
};

/// A self-signed P-256 certificate for 127.0.0.1 with the given common name.
inline CertFiles make_cert(const TempDir& dir, const std::string& name) {
  CertFiles f{dir / (name + ".crt"), dir / (name + ".key")};
  const std::string cmd = fmt::format(
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
      "-subj /CN={} -addext subjectAltName=IP:127.0.0.1 -keyout {} -out {} 2>/dev/null",
      name, f.key, f.cert);
  REQUIRE(std::system(cmd.c_str()) == 0);
  return f;
}

}  // namespace storepulse::test
