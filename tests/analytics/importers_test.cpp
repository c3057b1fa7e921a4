#include "storepulse/analytics/importers.hpp"

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <set>

using namespace storepulse;
using namespace storepulse::analytics;

namespace {
const std::string kData = std::string(STOREPULSE_SHARED_DIR) + "/data";

std::string write_temp(const std::string& name, const std::string& body) {
  std::string path = "/tmp/storepulse_importers_test_" + name;
  std::ofstream(path, std::ios::binary) << body;
  return path;
}
}  // namespace

TEST_CASE("split_csv_line handles RFC-4180 quoting") {
  std::vector<std::string> f;
  REQUIRE(split_csv_line(R"(a,"b, c","say ""hi""",,e)", f));
  REQUIRE(f.size() == 5);
  CHECK(f[1] == "b, c");
  CHECK(f[2] == "say \"hi\"");
  CHECK(f[3].empty());
  CHECK_FALSE(split_csv_line(R"(a,"open)", f));
}

TEST_CASE("online-retail import reproduces the data README's counts on the full file") {
  std::vector<protocol::Event> orders;
  std::size_t refunds = 0;
  auto r = import_online_retail(kData + "/online_retail/online_retail.csv.gz",
                                [&](const protocol::Event& ev) {
                                  if (ev.name == protocol::EventName::kOrderRefunded) ++refunds;
                                });
  REQUIRE(r.is_ok());
  // README "Known reference figures"
  CHECK(r->rows == 541909);
  CHECK(r->invoices == 25900);
  CHECK(r->customers_any == 4372);
  CHECK(r->rows_without_customer == 135080);
  CHECK(r->cancellation_rows == 9288);
  CHECK(r->cancellation_invoices == 3836);
  CHECK(r->adjustment_rows == 3);
  CHECK(r->nonpositive_price_rows == 2515);
  // README "Cleaned figures": CustomerID, Quantity > 0, UnitPrice > 0
  CHECK(r->member_order_lines == 397884);
  CHECK(r->members == 4338);
  CHECK(r->member_orders == 18532);
  CHECK(r->member_revenue == 891140790);  // 8,911,407.90
  CHECK(refunds == r->refunds_emitted);
  CHECK(r->refunds_emitted == 3836);
  CHECK(format_iso8601(r->last_time) == "2011-12-09T12:50:00Z");
}

TEST_CASE(
    "online-retail import keeps guest rows as anonymous orders or skips them - counted either "
    "way") {
  std::string path = write_temp(
      "or.csv",
      "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
      "1,A,\"Mug, red\",2,2011-01-01 10:00:00,1.50,17.0,UK\n"
      "1,B,Plate,1,2011-01-01 10:00:00,3.00,17.0,UK\n"
      "2,A,Mug,1,2011-01-02 10:00:00,1.50,,UK\n"
      "C3,A,Mug,-1,2011-01-03 10:00:00,1.50,17.0,UK\n");
  std::vector<protocol::Event> evs;
  auto r = import_online_retail(path, [&](const protocol::Event& e) { evs.push_back(e); });
  REQUIRE(r.is_ok());
  REQUIRE(evs.size() == 3);
  CHECK(evs[0].user_id == "17");
  CHECK(evs[0].total == 600);
  CHECK(evs[0].products[0].name == "Mug, red");
  CHECK(evs[1].anonymous_id == "guest-2");
  CHECK(evs[2].name == protocol::EventName::kOrderRefunded);
  CHECK(evs[2].products[0].quantity == 1);
  CHECK(r->rows_without_customer == 1);
  CHECK(r->guest_orders_emitted == 1);

  OnlineRetailImportOptions o;
  o.skip_guests = true;
  evs.clear();
  r = import_online_retail(
      path, [&](const protocol::Event& e) { evs.push_back(e); }, o);
  REQUIRE(r.is_ok());
  CHECK(evs.size() == 2);
  CHECK(r->rows_without_customer == 1);
}

TEST_CASE("online-retail import names the file and line of a bad row") {
  std::string path = write_temp(
      "bad.csv",
      "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
      "1,A,Mug,two,2011-01-01 10:00:00,1.50,17.0,UK\n");
  auto r = import_online_retail(path, [](const protocol::Event&) {});
  REQUIRE_FALSE(r.is_ok());
  CHECK(r.status().detail().find(path + ":2:") != std::string::npos);
  CHECK(r.status().detail().find("Quantity") != std::string::npos);
}

TEST_CASE("cdnow import reads both layouts with the README's counts") {
  std::set<std::string> ids;
  auto s = import_cdnow(kData + "/cdnow/CDNOW_sample.txt",
                        [&](const protocol::Event& e) { ids.insert(e.user_id); });
  REQUIRE(s.is_ok());
  CHECK(s->sample_layout);
  CHECK(s->rows == 6919);
  CHECK(s->customers == 2357);
  CHECK(s->revenue == 24409194);
  CHECK(ids.count("1") == 1);  // sample ids without zero padding, as in the summary CSV
  auto m = import_cdnow(kData + "/cdnow/CDNOW_master.txt", [](const protocol::Event&) {});
  REQUIRE(m.is_ok());
  CHECK_FALSE(m->sample_layout);
  CHECK(m->rows == 69659);
  CHECK(m->customers == 23570);
  CHECK(m->revenue == 250031563);
}

TEST_CASE("basket import: Groceries has 9 - 835 baskets and 169 items") {
  std::size_t whole_milk = 0;
  auto r = import_baskets(
      kData + "/groceries/groceries.csv",
      [&](const protocol::Event& e) {
        for (const auto& p : e.products) whole_milk += p.product_id == "whole milk";
      },
      0);
  REQUIRE(r.is_ok());
  CHECK(r->baskets == 9835);
  CHECK(r->distinct_items == 169);
  CHECK(r->items == 43367);
  CHECK(whole_milk == 2513);
}
