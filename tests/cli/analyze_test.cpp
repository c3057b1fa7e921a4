#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "cli_run.hpp"
#include "storepulse/analytics/importers.hpp"
#include "storepulse/models/basket_model.hpp"
#include "storepulse/models/clv_model.hpp"
#include "storepulse/models/segment_model.hpp"

using storepulse::testing::run_cli;
using storepulse::testing::slurp;

namespace {
const std::string kData = std::string(STOREPULSE_SHARED_DIR) + "/data";

// A CSV file as rows of fields, read with the importers' RFC-4180 splitter
// (a reader written for retailer files, not for our own output).
std::vector<std::vector<std::string>> read_csv(const std::string& path) {
  std::vector<std::vector<std::string>> rows;
  std::ifstream f(path, std::ios::binary);
  std::string line;
  while (std::getline(f, line)) {
    std::vector<std::string> fields;
    REQUIRE(storepulse::analytics::split_csv_line(line, fields));
    rows.push_back(std::move(fields));
  }
  return rows;
}

std::string order_line(const std::string& user, const std::string& day, double total, int n) {
  std::string id;
  for (char c : user) {
    if (c == '"') id += '\\';
    id += c;
  }
  return fmt::format(
      R"({{"type":"track","event":"Order Completed","messageId":"m{}","userId":"{}",)"
      R"("timestamp":"{}T10:00:00Z","properties":{{"total":{}}}}})",
      n, id, day, total);
}
}  // namespace

TEST_CASE("analyze baskets from imported Groceries events: 463 rules (arules)") {
  REQUIRE(run_cli("import baskets " + kData +
                      "/groceries/groceries.csv --out /tmp/storepulse_cli_an_groc.ndjson",
                  "an0")
              .code == 0);
  auto r = run_cli(
      "analyze baskets --events /tmp/storepulse_cli_an_groc.ndjson --min-support 0.006 "
      "--min-confidence 0.25 "
      "--min-len 2 --format json --limit 1 --model-out /tmp/storepulse_cli_models/",
      "an1");
  REQUIRE(r.code == 0);
  CHECK(r.out.find("\"rules\":463") != std::string::npos);
  CHECK(slurp("/tmp/storepulse_cli_models/baskets.json")
            .find("\"format\":\"storepulse.model.baskets/1\"") != std::string::npos);
}

TEST_CASE("analyze clv on the CDNOW summary prints the published BG/NBD fit and writes the model") {
  auto r = run_cli("analyze clv --summary " + kData +
                       "/cdnow/cdnow_customers_summary_with_transactions.csv "
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
  REQUIRE(run_cli("import cdnow " + kData +
                      "/cdnow/CDNOW_sample.txt --out /tmp/storepulse_cli_cdnow.ndjson",
                  "an7")
              .code == 0);
  auto r = run_cli(
      "analyze report --events /tmp/storepulse_cli_cdnow.ndjson --calibration-end 1997-09-30 "
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
  REQUIRE(run_cli("import online-retail " + kData +
                      "/online_retail/online_retail.csv.gz --out /tmp/storepulse_cli_an_or.ndjson",
                  "an9")
              .code == 0);
  auto r = run_cli("analyze rfm --events /tmp/storepulse_cli_an_or.ndjson --format json --limit 0",
                   "an10");
  REQUIRE(r.code == 0);
  CHECK(r.out.find("\"customers\":4338") != std::string::npos);
  CHECK(r.out.find("\"orders\":18532") != std::string::npos);
  CHECK(r.out.find("\"revenue\":8911407.90") != std::string::npos);
  CHECK(r.out.find(
            "{\"customer\":\"12346\",\"recency_days\":326,\"frequency\":1,\"monetary\":77183.60") !=
        std::string::npos);
}

TEST_CASE("analyze --model-out writes versioned model files the engine loads") {
  const std::string dir = "/tmp/storepulse_cli_model_out/";
  std::filesystem::remove_all(dir);
  // CLV from the CDNOW summary: the published fit, loadable, with fitted-on metadata.
  auto r = run_cli("analyze clv --summary " + kData +
                       "/cdnow/cdnow_customers_summary_with_transactions.csv "
                       "--format csv --limit 1 --months 6 --model-out " +
                       dir,
                   "mo1");
  REQUIRE(r.code == 0);
  auto clv = storepulse::models::parse_clv_model_json(slurp(dir + "clv.json"));
  REQUIRE(clv.is_ok());
  CHECK(clv->bgnbd.r == Approx(0.2425945).epsilon(1e-3));
  CHECK(clv->gamma_gamma.p > 0);
  CHECK(clv->valuation.clv_months == 6);
  CHECK(clv->meta.subjects == 2357);
  CHECK(clv->meta.fitted_on.find("cdnow_customers_summary_with_transactions.csv") !=
        std::string::npos);
  CHECK(clv->meta.fitted_at > 0);
  CHECK_FALSE(std::filesystem::exists(dir + "clv.json.tmp"));

  // Baskets from the Groceries basket file: rules keyed by item name.
  r = run_cli("analyze baskets --baskets " + kData +
                  "/groceries/groceries.csv --min-support 0.006 "
                  "--min-confidence 0.25 --min-len 2 --format csv --limit 1 --model-out " +
                  dir,
              "mo2");
  REQUIRE(r.code == 0);
  auto bk = storepulse::models::parse_basket_model_json(slurp(dir + "baskets.json"));
  REQUIRE(bk.is_ok());
  CHECK(bk->rules().size() == 463);  // arules: supp 0.006 conf 0.25 minlen 2
  CHECK(bk->item_key == "name");
  CHECK(bk->meta.subjects == 9835);

  // Segments from simulated shoppers.
  REQUIRE(
      run_cli(
          "simulate --customers 300 --days 120 --seed 7 --out /tmp/storepulse_cli_mo_sim.ndjson",
          "mo3")
          .code == 0);
  r = run_cli(
      "analyze segments --events /tmp/storepulse_cli_mo_sim.ndjson --format csv --limit 1 "
      "--model-out " +
          dir,
      "mo4");
  REQUIRE(r.code == 0);
  auto seg = storepulse::models::parse_segment_model_json(slurp(dir + "segments.json"));
  REQUIRE(seg.is_ok());
  CHECK(seg->segment_names.size() >= 2);
  CHECK(seg->meta.fitted_on == "/tmp/storepulse_cli_mo_sim.ndjson");

  // A version this build does not know is refused with the tag in the message.
  auto text = slurp(dir + "clv.json");
  text.replace(text.find("clv/1"), 5, "clv/3");
  auto bad = storepulse::models::parse_clv_model_json(text);
  REQUIRE_FALSE(bad.is_ok());
  CHECK(bad.status().detail().find("storepulse.model.clv/3") != std::string::npos);
}

TEST_CASE("analyze segments --members-out writes userId,segment for every segmented member") {
  const std::string ev = "/tmp/storepulse_cli_members_sim.ndjson",
                    csv = "/tmp/storepulse_cli_members_seg.csv",
                    model = "/tmp/storepulse_cli_members_seg.json";
  std::filesystem::remove(csv);
  REQUIRE(run_cli("simulate --customers 300 --days 120 --seed 7 --out " + ev, "mem0").code == 0);
  auto r = run_cli("analyze segments --events " + ev + " --format json --members-out " + csv +
                       " --model-out " + model,
                   "mem1");
  REQUIRE(r.code == 0);
  auto rows = read_csv(csv);
  REQUIRE(rows.size() > 1);
  CHECK(rows[0] == std::vector<std::string>{"userId", "segment"});
  auto seg = storepulse::models::parse_segment_model_json(slurp(model));
  REQUIRE(seg.is_ok());
  std::set<std::string> names(seg->segment_names.begin(), seg->segment_names.end());
  std::set<std::string> ids;
  for (std::size_t i = 1; i < rows.size(); ++i) {
    REQUIRE(rows[i].size() == 2);
    CHECK(names.count(rows[i][1]) == 1);
    ids.insert(rows[i][0]);
  }
  CHECK(ids.size() == rows.size() - 1);  // one row per member
  // as many rows as the report says members were segmented
  CHECK(r.out.find(fmt::format("\"members_segmented\":{}", rows.size() - 1)) != std::string::npos);
}

TEST_CASE("analyze rfm --members-out: one row per customer - ids with commas and quotes quoted") {
  const std::string ev = "/tmp/storepulse_cli_members_rfm.ndjson",
                    csv = "/tmp/storepulse_cli_members_rfm.csv";
  {
    std::ofstream f(ev, std::ios::binary);
    f << order_line("Smith, \"Jr\"", "2024-01-01", 10, 1) << '\n'
      << order_line("Smith, \"Jr\"", "2024-01-09", 30, 2) << '\n'
      << order_line("b", "2024-01-05", 100, 3) << '\n'
      << order_line("c", "2024-01-10", 5, 4) << '\n';
  }
  auto r = run_cli("analyze rfm --events " + ev + " --members-out " + csv, "mem2");
  REQUIRE(r.code == 0);
  auto text = slurp(csv);
  CHECK(text.rfind("userId,recency,frequency,monetary,grade\n", 0) == 0);
  CHECK(text.find("\"Smith, \"\"Jr\"\"\",2,2,40.00,") != std::string::npos);
  auto rows = read_csv(csv);
  REQUIRE(rows.size() == 4);
  // Snapshot 2024-01-11. Scores by rank (5 = best): recency c > Smith > b,
  // frequency Smith > b = c, monetary b > Smith > c.
  CHECK(rows[1] == std::vector<std::string>{"Smith, \"Jr\"", "2", "2", "40.00", "353"});
  CHECK(rows[2] == std::vector<std::string>{"b", "6", "1", "100.00", "115"});
  CHECK(rows[3] == std::vector<std::string>{"c", "1", "1", "5.00", "511"});
}

TEST_CASE("analyze clv --members-out on the CDNOW summary: every customer - P(alive) in 0..1") {
  const std::string csv = "/tmp/storepulse_cli_members_clv.csv";
  auto r = run_cli("analyze clv --summary " + kData +
                       "/cdnow/cdnow_customers_summary_with_transactions.csv --format json "
                       "--limit 1 --members-out " +
                       csv,
                   "mem3");
  REQUIRE(r.code == 0);
  auto rows = read_csv(csv);
  REQUIRE(rows.size() == 2357 + 1);  // the summary's customers
  CHECK(rows[0] ==
        std::vector<std::string>{"userId", "p_alive", "expected_purchases", "expected_value"});
  std::size_t below_one = 0;
  for (std::size_t i = 1; i < rows.size(); ++i) {
    REQUIRE(rows[i].size() == 4);
    double p = std::stod(rows[i][1]);
    CHECK(p >= 0);
    CHECK(p <= 1);
    below_one += p < 0.999;
    CHECK(std::stod(rows[i][2]) >= 0);
  }
  CHECK(below_one > 100);  // a real fit: many customers are probably gone
}

TEST_CASE("analyze --members-out: a file that cannot be written is a clear error") {
  auto r = run_cli("analyze clv --summary " + kData +
                       "/cdnow/cdnow_customers_summary_with_transactions.csv --format json "
                       "--members-out /tmp/storepulse_no_such_dir/m.csv",
                   "mem4");
  CHECK(r.code == 1);
  CHECK(r.err.find("--members-out /tmp/storepulse_no_such_dir/m.csv") != std::string::npos);
  CHECK(r.err.find("No such file or directory") != std::string::npos);
  r = run_cli("analyze clv --summary " + kData +
                  "/cdnow/cdnow_customers_summary_with_transactions.csv --format json "
                  "--members-out /tmp",
              "mem5");
  CHECK(r.code == 1);
  CHECK(r.err.find("--members-out /tmp: is a directory") != std::string::npos);
}

TEST_CASE("analyze --format csv --out DIR writes one plain CSV per table into a new folder") {
  namespace fs = std::filesystem;
  const std::string ev = "/tmp/storepulse_cli_csvdir.ndjson",
                    dir = "/tmp/storepulse_cli_csvdir/nested/rfm";
  fs::remove_all("/tmp/storepulse_cli_csvdir");
  {
    std::ofstream f(ev, std::ios::binary);
    f << order_line("a", "2024-01-01", 10, 1) << '\n'
      << order_line("a", "2024-01-09", 30, 2) << '\n'
      << order_line("b", "2024-01-05", 100, 3) << '\n'
      << order_line("c", "2024-01-10", 5, 4) << '\n';
  }
  auto r = run_cli("analyze rfm --events " + ev + " --format csv --out " + dir, "csv0");
  REQUIRE(r.code == 0);
  CHECK(r.out.empty());
  std::set<std::string> files;
  for (const auto& e : fs::directory_iterator(dir)) files.insert(e.path().filename().string());
  CHECK(files == std::set<std::string>{"rfm.csv", "pareto.csv", "rfm_figures.csv"});
  for (const auto& name : files) {
    auto rows = read_csv(dir + "/" + name);
    REQUIRE(rows.size() > 1);
    for (const auto& row : rows) {
      CHECK(row.size() == rows[0].size());  // a plain table: every row as wide as the header
      CHECK(row[0].rfind('#', 0) != 0);     // no section lines
    }
  }
  auto rfm = read_csv(dir + "/rfm.csv");
  CHECK(rfm[0][0] == "customer");
  CHECK(rfm.size() == 3 + 1);
  CHECK(rfm[1][0] == "b");  // by monetary
  auto fig = read_csv(dir + "/rfm_figures.csv");
  CHECK(fig[0] == std::vector<std::string>{"key", "value"});
  CHECK(fig[1] == std::vector<std::string>{"customers", "3"});
}

TEST_CASE("analyze baskets --format csv --out DIR: rules.csv holds the 463 arules rules") {
  const std::string dir = "/tmp/storepulse_cli_csvdir_baskets";
  std::filesystem::remove_all(dir);
  auto r = run_cli("analyze baskets --baskets " + kData +
                       "/groceries/groceries.csv --min-support 0.006 --min-confidence 0.25 "
                       "--min-len 2 --format csv --out " +
                       dir,
                   "csv1");
  REQUIRE(r.code == 0);
  auto rules = read_csv(dir + "/rules.csv");
  REQUIRE(rules.size() == 463 + 1);
  CHECK(rules[0] ==
        std::vector<std::string>{"lhs", "rhs", "support", "confidence", "lift", "count"});
  CHECK(std::filesystem::exists(dir + "/baskets_figures.csv"));
}

TEST_CASE("analyze --format csv --out: a file in the way is a clear error - json stays one file") {
  const std::string ev = "/tmp/storepulse_cli_csvdir_err.ndjson",
                    file = "/tmp/storepulse_cli_csvdir_file";
  {
    std::ofstream f(ev, std::ios::binary);
    f << order_line("a", "2024-01-01", 10, 1) << '\n'
      << order_line("b", "2024-01-05", 100, 2) << '\n';
  }
  std::ofstream(file) << "x";
  auto r = run_cli("analyze rfm --events " + ev + " --format csv --out " + file, "csv2");
  CHECK(r.code == 1);
  CHECK(r.err.find("--out " + file + ": is a file") != std::string::npos);
  CHECK(slurp(file) == "x");  // left alone
  std::filesystem::remove("/tmp/storepulse_cli_csvdir_one.csv");
  r = run_cli(
      "analyze rfm --events " + ev + " --format csv --out /tmp/storepulse_cli_csvdir_one.csv",
      "csv3");
  CHECK(r.code == 1);
  CHECK(r.err.find("not one file") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists("/tmp/storepulse_cli_csvdir_one.csv"));
  // JSON: one document in the named file, as before
  r = run_cli("analyze rfm --events " + ev + " --format json --out " + file, "csv4");
  REQUIRE(r.code == 0);
  auto json = slurp(file);
  CHECK(json.rfind("{\"analysis\":\"rfm\"", 0) == 0);
  CHECK(json.find("\"tables\":{\"pareto\":") != std::string::npos);
  // csv on stdout: still every table in one stream
  r = run_cli("analyze rfm --events " + ev + " --format csv", "csv5");
  REQUIRE(r.code == 0);
  CHECK(r.out.find("# figures\nkey,value\n") == 0);
}

TEST_CASE("analyze help: --journal is described as the working input it is") {
  for (const char* sub : {"rfm", "grades", "segments", "baskets", "clv", "channels", "report"}) {
    auto r = run_cli(std::string("analyze ") + sub + " --help", std::string("help_") + sub);
    REQUIRE(r.code == 0);
    CHECK(r.out.find("--journal") != std::string::npos);
    CHECK(r.out.find("server data folder") != std::string::npos);
    CHECK(r.out.find("not supported") == std::string::npos);
  }
}

TEST_CASE("analyze clv on storepulse simulate data flags the degenerate BG/NBD fit") {
  const std::string ev = "/tmp/storepulse_cli_degenerate_sim.ndjson";
  REQUIRE(run_cli("simulate --customers 300 --days 120 --seed 7 --out " + ev, "deg0").code == 0);
  auto r = run_cli("analyze clv --events " + ev + " --format json --limit 1", "deg1");
  REQUIRE(r.code == 0);
  // the simulator has no dropout: a -> 0, every P(alive) = 1 (issue 20)
  CHECK(r.err.find("warning: degenerate BG/NBD fit") != std::string::npos);
  CHECK(r.out.find("\"bgnbd_fit\":\"degenerate: ") != std::string::npos);
  // the published CDNOW fit is not flagged
  r = run_cli("analyze clv --summary " + kData +
                  "/cdnow/cdnow_customers_summary_with_transactions.csv --format json --limit 1",
              "deg2");
  REQUIRE(r.code == 0);
  CHECK(r.err.find("degenerate") == std::string::npos);
  CHECK(r.out.find("\"bgnbd_fit\":\"ok\"") != std::string::npos);
}

TEST_CASE("analyze report: every chart label lies inside its chart in headless Chromium",
          "[browser]") {
  namespace fs = std::filesystem;
  const fs::path chromium = "/usr/bin/chromium";
  if (!fs::exists(chromium)) {
    WARN("SKIPPED: needs " << chromium << " (scripts/deps installs it)");
    return;
  }
  const std::string ev = "/tmp/storepulse_cli_labels_sim.ndjson",
                    html = "/tmp/storepulse_cli_labels.html",
                    page = "/tmp/storepulse_cli_labels_check.html";
  // simulate: store and web orders, so the category bar charts are drawn, with
  // revenue in the hundreds of thousands (the y labels that were clipped)
  REQUIRE(run_cli("simulate --customers 300 --days 120 --seed 7 --out " + ev, "lab0").code == 0);
  REQUIRE(run_cli("analyze report --events " + ev + " --html " + html, "lab1").code == 0);
  std::string text = slurp(html);
  REQUIRE(text.find("aria-label=\"Revenue by channel\"") != std::string::npos);
  const std::string script =
      slurp(std::string(STOREPULSE_SOURCE_DIR) + "/tests/cli/report_label_check.js");
  REQUIRE_FALSE(script.empty());
  text.replace(text.rfind("</body>"), 7, "<script>\n" + script + "</script></body>");
  std::ofstream(page, std::ios::binary) << text;
  const std::string dom = "/tmp/storepulse_cli_labels_dom.html";
  const std::string cmd = "timeout 120 " + chromium.string() +
                          " --headless --no-sandbox --disable-gpu --dump-dom file://" + page +
                          " >" + dom + " 2>/dev/null";
  REQUIRE(std::system(cmd.c_str()) == 0);
  auto out = slurp(dom);
  auto at = out.rfind("<pre id=\"label-check\">");  // the last element of the body
  REQUIRE(at != std::string::npos);
  auto verdict = out.substr(at, out.find("</pre>", at) - at);
  INFO(verdict);
  CHECK(verdict.find(" clipped 0\n") != std::string::npos);
  CHECK(verdict.find("labels 0 ") == std::string::npos);  // there were charts to check
}

TEST_CASE("analyze segments: k chosen by BIC - every criterion scored per k - --k-criterion") {
  const std::string ev = "/tmp/storepulse_cli_kcrit_sim.ndjson";
  REQUIRE(run_cli("simulate --customers 300 --days 120 --seed 7 --out " + ev, "kc0").code == 0);
  auto r = run_cli("analyze segments --events " + ev + " --format json", "kc1");
  REQUIRE(r.code == 0);
  CHECK(r.out.find("\"k_criterion\":\"BIC of a Gaussian mixture") != std::string::npos);
  for (const char* column : {"\"silhouette\":", "\"gap\":", "\"gap_s\":", "\"bic\":"})
    CHECK(r.out.find(column) != std::string::npos);
  CHECK(r.out.find("\"lda_cv_accuracy_new_member\":") != std::string::npos);
  r = run_cli("analyze segments --events " + ev + " --format json --k-criterion silhouette", "kc2");
  REQUIRE(r.code == 0);
  CHECK(r.out.find("\"k_criterion\":\"highest mean silhouette\"") != std::string::npos);
  r = run_cli("analyze segments --events " + ev + " --k-criterion elbow", "kc3");
  CHECK(r.code == 1);
  CHECK(r.err.find("--k-criterion 'elbow': expected bic, gap or silhouette") != std::string::npos);
}
