#include <algorithm>
#include <catch2/catch.hpp>

#include "cli_run.hpp"

using storepulse::testing::run_cli;
using storepulse::testing::slurp;

namespace {
const std::string kData = std::string(STOREPULSE_SHARED_DIR) + "/data";
}

TEST_CASE("import baskets writes one event per basket and a summary") {
  auto r = run_cli(
      "import baskets " + kData + "/groceries/groceries.csv --out /tmp/storepulse_cli_groc.ndjson",
      "imp1");
  REQUIRE(r.code == 0);
  CHECK(r.err.find("9835 baskets") != std::string::npos);
  CHECK(r.err.find("169 distinct items") != std::string::npos);
  auto body = slurp("/tmp/storepulse_cli_groc.ndjson");
  CHECK(std::count(body.begin(), body.end(), '\n') == 9835);
}

TEST_CASE("import online-retail summary names rows without a customer id") {
  auto r = run_cli("import online-retail " + kData +
                       "/online_retail/online_retail.csv.gz --out /tmp/storepulse_cli_or.ndjson",
                   "imp2");
  REQUIRE(r.code == 0);
  CHECK(r.err.find("rows without CustomerID   135080") != std::string::npos);
  CHECK(r.err.find("member revenue            8911407.90") != std::string::npos);
}

TEST_CASE("import errors name the file") {
  auto r = run_cli("import cdnow /tmp/storepulse_no_such.txt", "imp3");
  CHECK(r.code != 0);
  CHECK(r.err.find("/tmp/storepulse_no_such.txt") != std::string::npos);
}
