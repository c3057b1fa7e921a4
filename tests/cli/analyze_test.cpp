#include <catch2/catch.hpp>

#include "cli_run.hpp"

using storepulse::testing::run_cli;
using storepulse::testing::slurp;

namespace {
const std::string kData = std::string(STOREPULSE_SHARED_DIR) + "/data";
}

TEST_CASE("analyze baskets from imported Groceries events: 463 rules (arules)") {
  REQUIRE(run_cli("import baskets " + kData + "/groceries/groceries.csv --out /tmp/storepulse_cli_an_groc.ndjson", "an0").code == 0);
  auto r = run_cli("analyze baskets --events /tmp/storepulse_cli_an_groc.ndjson --min-support 0.006 --min-confidence 0.25 "
                   "--min-len 2 --format json --limit 1 --model-out /tmp/storepulse_cli_models/",
                   "an1");
  REQUIRE(r.code == 0);
  CHECK(r.out.find("\"rules\":463") != std::string::npos);
  CHECK(slurp("/tmp/storepulse_cli_models/baskets.json").find("\"model\":\"basket_rules\"") != std::string::npos);
}

TEST_CASE("analyze clv on the CDNOW summary prints the published BG/NBD fit and writes the model") {
  auto r = run_cli("analyze clv --summary " + kData + "/cdnow/cdnow_customers_summary_with_transactions.csv "
                   "--format csv --limit 2 --model-out /tmp/storepulse_cli_clv.json",
                   "an2");
  REQUIRE(r.code == 0);
  CHECK(r.out.find("bgnbd_r,0.2425") != std::string::npos);
  CHECK(r.out.find("bgnbd_alpha,4.413") != std::string::npos);
  auto model = slurp("/tmp/storepulse_cli_clv.json");
  CHECK(model.find("\"bgnbd\":{\"r\":0.2425") != std::string::npos);
}

TEST_CASE("analyze: clear errors for a missing input - a bad flag value - and the journal hook") {
  auto r = run_cli("analyze rfm", "an3");
  CHECK(r.code != 0);
  CHECK(r.err.find("--events") != std::string::npos);
  r = run_cli("analyze rfm --events /tmp/storepulse_cli_an_groc.ndjson --format xml", "an4");
  CHECK(r.code != 0);
  CHECK(r.err.find("--format 'xml'") != std::string::npos);
  r = run_cli("analyze grades --journal /tmp/somewhere", "an5");
  CHECK(r.code != 0);
  CHECK(r.err.find("/tmp/somewhere: no such folder") != std::string::npos);
  r = run_cli("analyze baskets --events /tmp/storepulse_cli_an_groc.ndjson --min-support 2", "an6");
  CHECK(r.code != 0);
  CHECK(r.err.find("--min-support") != std::string::npos);
}

TEST_CASE("analyze report writes one self-contained HTML page with inline SVG") {
  REQUIRE(run_cli("import cdnow " + kData + "/cdnow/CDNOW_sample.txt --out /tmp/storepulse_cli_cdnow.ndjson", "an7").code == 0);
  auto r = run_cli("analyze report --events /tmp/storepulse_cli_cdnow.ndjson --calibration-end 1997-09-30 "
                   "--min-support 0.01 --html /tmp/storepulse_cli_report.html",
                   "an8");
  REQUIRE(r.code == 0);
  auto html = slurp("/tmp/storepulse_cli_report.html");
  CHECK(html.rfind("<!DOCTYPE html>", 0) == 0);
  CHECK(html.find("<svg") != std::string::npos);
  CHECK(html.find("Pareto") != std::string::npos);
  CHECK(html.find("P(alive)") != std::string::npos);
  // no network resources: the only URL is the SVG namespace
  CHECK(html.find("<script") == std::string::npos);
  CHECK(html.find("src=") == std::string::npos);
  CHECK(html.find("https://") == std::string::npos);
}

TEST_CASE("analyze rfm on Online Retail: README cleaned totals") {
  REQUIRE(run_cli("import online-retail " + kData + "/online_retail/online_retail.csv.gz --out /tmp/storepulse_cli_an_or.ndjson", "an9").code == 0);
  auto r = run_cli("analyze rfm --events /tmp/storepulse_cli_an_or.ndjson --format json --limit 0", "an10");
  REQUIRE(r.code == 0);
  CHECK(r.out.find("\"customers\":4338") != std::string::npos);
  CHECK(r.out.find("\"orders\":18532") != std::string::npos);
  CHECK(r.out.find("\"revenue\":8911407.90") != std::string::npos);
  CHECK(r.out.find("{\"customer\":\"12346\",\"recency_days\":326,\"frequency\":1,\"monetary\":77183.60") != std::string::npos);
}
