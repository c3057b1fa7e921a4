// Event time drives timers: a customer's timer that is due fires before that
// customer's next (later) event is applied, live and on journal replay, so a
// replayed history gives the actions a real-time server would have given.
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <condition_variable>
#include <filesystem>
#include <mutex>

#include "storepulse/engine/engine.hpp"
#include "storepulse/rules/rule_book.hpp"
#include "support/events.hpp"
#include "support/temp_dir.hpp"

using namespace storepulse;
using namespace std::chrono_literals;

namespace {

class Replies : public engine::ReplyTarget {
 public:
  void deliver(std::string) override {
    std::lock_guard<std::mutex> lk(mu_);
    ++n_;
    cv_.notify_all();
  }
  void wait_for(std::size_t n) {
    std::unique_lock<std::mutex> lk(mu_);
    REQUIRE(cv_.wait_for(lk, 10s, [&] { return n_ >= n; }));
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::size_t n_ = 0;
};

const char* kNudge = R"(rule: nudge
on: Product Added
wait: 1h
cancel_on: [Order Completed]
then:
  - pos: "Your cart is waiting"
)";

std::shared_ptr<rules::RuleBook> nudge_book() {
  auto res = rules::load_rules_from_sources({{"nudge.yaml", kNudge}});
  REQUIRE(res.rules);
  return res.rules;
}

struct Run {
  std::vector<std::string> fired;  // "customer@time"
  std::shared_ptr<rules::RuleBook> book = nudge_book();
};

std::unique_ptr<engine::Engine> make_engine(const std::string& dir, Run& run, Metrics& m) {
  engine::EngineOptions o;
  o.shards = 2;
  o.data_dir = dir;
  o.fsync = store::FsyncPolicy::kNever;
  o.watermark_clock = [] { return TimeUs{0}; };  // event time only
  auto e = std::make_unique<engine::Engine>(o, run.book, m);
  e->set_action_observer([&run](const protocol::Action& a) {
    run.fired.push_back(fmt::format("{}:{}@{}", a.rule, a.customer, format_iso8601(a.at)));
  });
  e->start();
  return e;
}

std::string ev(const char* name, const char* user, const char* iso, int n, const char* props = "") {
  return fmt::format(
      R"({{"type":"track","event":"{}","messageId":"{}-{}","userId":"{}","timestamp":"{}"{}}})",
      name, user, n, user, iso, props);
}

}  // namespace

TEST_CASE(
    "a due timer fires before the customer's later event - live and on replay - counted the same") {
  test::TempDir dir;
  const std::vector<std::string> events = {
      ev("Product Added", "A", "2026-01-05T10:00:00Z", 1,
         R"(,"properties":{"productId":"p1","price":5})"),
      ev("Product Added", "B", "2026-01-05T10:00:00Z", 2,
         R"(,"properties":{"productId":"p1","price":5})"),
      // B buys within the hour: the nudge is cancelled.
      ev("Order Completed", "B", "2026-01-05T10:30:00Z", 3, R"(,"properties":{"total":5})"),
      // A buys two hours later: by then the nudge was due, so it went out first
      // (and this order is its conversion), although no other event moved the
      // watermark in between.
      ev("Order Completed", "A", "2026-01-05T12:00:00Z", 4, R"(,"properties":{"total":12})"),
  };
  Run live;
  {
    Metrics m;
    auto e = make_engine(dir.str(), live, m);
    auto replies = std::make_shared<Replies>();
    // All in one go: the shard may batch them, the result must not depend on it.
    for (const auto& json : events) {
      std::string raw = json;
      REQUIRE(e->submit(test::decode_event(json, *parse_iso8601("2026-01-05T12:00:00Z")),
                        std::move(raw), wall_clock_us(), replies)
                  .is_ok());
    }
    replies->wait_for(events.size());
    e->stop();
  }
  CHECK(live.fired == std::vector<std::string>{"nudge:A@2026-01-05T11:00:00Z"});
  const auto& c = live.book->find("nudge")->counters;
  CHECK(c.fired == 1);
  CHECK(c.timers_cancelled == 1);
  CHECK(c.converted[rules::kGroupTreated] == 1);
  CHECK(c.revenue[rules::kGroupTreated] == 1200);

  // Recover from the journal alone (snapshots removed): the replay fires the
  // same timer at the same point, delivers nothing, and counts the same.
  for (const auto& shard : std::filesystem::directory_iterator(dir.str()))
    if (shard.is_directory()) std::filesystem::remove(shard.path() / "snapshot.bin");
  Run replay;
  Metrics m2;
  auto e2 = make_engine(dir.str(), replay, m2);
  e2->stop();
  CHECK(replay.fired.empty());
  const auto& c2 = replay.book->find("nudge")->counters;
  CHECK(c2.fired == 1);
  CHECK(c2.timers_armed == c.timers_armed.load());
  CHECK(c2.timers_cancelled == 1);
  CHECK(c2.converted[rules::kGroupTreated] == 1);
  CHECK(c2.revenue[rules::kGroupTreated] == 1200);
}
