#include "storepulse/engine/engine.hpp"

#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "storepulse/common/bytes.hpp"
#include "storepulse/protocol/event_binary.hpp"
#include "support/events.hpp"
#include "support/temp_dir.hpp"

using namespace storepulse;
using namespace std::chrono_literals;

namespace {

class Collector : public engine::ReplyTarget {
 public:
  void deliver(std::string m) override {
    std::lock_guard<std::mutex> lk(mu_);
    replies_.push_back(std::move(m));
    cv_.notify_all();
  }
  std::vector<std::string> wait_for(std::size_t n) {
    std::unique_lock<std::mutex> lk(mu_);
    REQUIRE(cv_.wait_for(lk, 10s, [&] { return replies_.size() >= n; }));
    return replies_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> replies_;
};

struct Harness {
  explicit Harness(const std::string& dir, int shards = 4) {
    engine::EngineOptions o;
    o.shards = shards;
    o.data_dir = dir;
    o.fsync = store::FsyncPolicy::kAlways;
    o.snapshot_interval_us = 50'000;
    o.snapshot_min_records = 5;
    engine =
        std::make_unique<engine::Engine>(o, std::make_shared<rules::BirthdayGreeting>(), metrics);
    engine->start();
  }
  void send(const std::string& json) {
    std::string raw = json;
    auto ev = test::decode_event(json);
    REQUIRE(engine->submit(std::move(ev), std::move(raw), wall_clock_us(), replies).is_ok());
  }
  std::pair<int, std::string> profile(const std::string& id) {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<std::pair<int, std::string>> got;
    engine->query_profile(id, [&](int st, std::string body) {
      std::lock_guard<std::mutex> lk(mu);
      got.emplace(st, std::move(body));
      cv.notify_all();
    });
    std::unique_lock<std::mutex> lk(mu);
    REQUIRE(cv.wait_for(lk, 10s, [&] { return got.has_value(); }));
    return *got;
  }
  Metrics metrics;
  std::unique_ptr<engine::Engine> engine;
  std::shared_ptr<Collector> replies = std::make_shared<Collector>();
};

std::string order(int i, const std::string& user, double total) {
  return fmt::format(
      R"({{"type":"track","event":"Order Completed","messageId":"ord-{}","userId":"{}",
    "context":{{"channel":"pos"}},"properties":{{"total":{},"products":[{{"productId":"p{}","category":"Food","price":{},"quantity":1}}]}}}})",
      i, user, total, i % 5, total);
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("every event gets exactly one reply and a re-sent messageId is applied once") {
  test::TempDir dir;
  Harness h(dir.str());
  for (int i = 0; i < 20; ++i) h.send(order(i, "C" + std::to_string(i % 4), 10));
  h.send(order(3, "C3", 10));  // duplicate of ord-3
  auto replies = h.replies->wait_for(21);
  CHECK(replies.size() == 21);
  int acks = 0;
  for (auto& r : replies) acks += contains(r, R"("type":"ack")");
  CHECK(acks == 21);
  auto [st, body] = h.profile("C3");
  CHECK(st == 200);
  CHECK(contains(body, R"("frequency":5)"));
  CHECK(h.metrics.duplicates.load() == 1);
  CHECK(h.profile("nobody").first == 404);
}

TEST_CASE("alias merges a visitor's profile from another shard into the member's") {
  test::TempDir dir;
  Harness h(dir.str(), 8);
  // Pick a visitor id that lives on another shard than the member.
  std::string visitor = "v0";
  for (int i = 0; h.engine->shard_of(visitor) == h.engine->shard_of("M1"); ++i)
    visitor = "v" + std::to_string(i);
  h.send(R"({"type":"track","event":"Product Added","messageId":"a1","anonymousId":")" + visitor +
         R"(","properties":{"productId":"boots","name":"Boots","category":"Shoes","price":80}})");
  h.send(R"({"type":"identify","messageId":"i1","userId":"M1","traits":{"firstName":"Mia"}})");
  h.replies->wait_for(2);
  h.send(R"({"type":"alias","messageId":"al1","userId":"M1","previousId":")" + visitor + R"("})");
  h.replies->wait_for(3);
  // Later visitor events route to the member.
  for (int tries = 0; tries < 100; ++tries) {
    if (contains(h.profile("M1").second, R"("absorbed":true)")) break;
    std::this_thread::sleep_for(20ms);
  }
  h.send(R"({"type":"track","event":"Product Viewed","messageId":"pv1","anonymousId":")" + visitor +
         R"(","properties":{"productId":"hat"}})");
  h.replies->wait_for(4);
  auto body = h.profile("M1").second;
  CHECK(contains(body, R"("linkedIds":[")" + visitor + "\"]"));
  CHECK(contains(body, R"("absorbed":true)"));
  CHECK(contains(body, R"("productId":"boots")"));
  CHECK(contains(body, R"("webViews":1)"));
  CHECK(contains(body, R"("firstName":"Mia")"));
  // Looking the visitor up finds the member.
  CHECK(contains(h.profile(visitor).second, R"("userId":"M1")"));
}

TEST_CASE("state and dedupe survive a restart on the same data folder") {
  test::TempDir dir;
  {
    Harness h(dir.str());
    for (int i = 0; i < 200; ++i) h.send(order(i, "C" + std::to_string(i % 10), 1));
    h.replies->wait_for(200);
    std::this_thread::sleep_for(120ms);  // let a background snapshot happen mid-stream
    for (int i = 200; i < 260; ++i) h.send(order(i, "C" + std::to_string(i % 10), 1));
    h.replies->wait_for(260);
  }
  Harness h(dir.str());
  for (int i = 0; i < 10; ++i)
    CHECK(contains(h.profile("C" + std::to_string(i)).second, R"("frequency":26)"));
  h.send(order(5, "C5", 1));  // re-sent after restart
  h.replies->wait_for(1);
  CHECK(contains(h.profile("C5").second, R"("frequency":26)"));
  CHECK(h.metrics.duplicates.load() == 1);
}

namespace {
// A one-shard data folder whose journal holds `records` (type, payload), unsealed,
// as an older or newer build would have left it.
void write_journal(const test::TempDir& dir,
                   const std::vector<std::pair<store::RecordType, std::string>>& records) {
  {
    std::ofstream meta(dir / "storepulse.meta");
    meta << "shards 1\n";
  }
  store::JournalOptions jo;
  jo.dir = dir / "shard-000";
  auto j = store::Journal::open(jo);
  REQUIRE(j.is_ok());
  store::RecoveryReport rep;
  REQUIRE((*j)->replay(
                  0, [](const store::JournalRecord&) {}, rep)
              .is_ok());
  for (const auto& [type, payload] : records) (*j)->append(type, wall_clock_us(), payload);
  REQUIRE((*j)->commit().is_ok());
}

std::string keyed(std::string_view key, std::string_view rest) {
  std::string out;
  ByteWriter w(out);
  w.str(key);
  out.append(rest);
  return out;
}
}  // namespace

TEST_CASE("the journal keeps decoded events, and a restart from the journal alone rebuilds them") {
  test::TempDir dir;
  {
    Harness h(dir.str(), 1);
    for (int i = 0; i < 30; ++i) h.send(order(i, "C" + std::to_string(i % 3), 2));
    h.replies->wait_for(30);
  }
  // Every event record is the binary form, sealed (privacy.encrypt_journal is on).
  std::size_t events = 0, other = 0;
  store::RecoveryReport rep;
  REQUIRE(store::scan_journal(
              dir / "shard-000",
              [&](const store::JournalRecord& r) {
                const auto t = static_cast<std::uint8_t>(r.type);
                if (t == (static_cast<std::uint8_t>(store::RecordType::kEventBinary) |
                          store::kSealedBit))
                  ++events;
                else
                  ++other;
              },
              rep)
              .is_ok());
  CHECK(events == 30);
  CHECK(other == 0);
  std::filesystem::remove(dir / "shard-000/snapshot.bin");
  Harness h(dir.str(), 1);
  for (int i = 0; i < 3; ++i) {
    const auto body = h.profile("C" + std::to_string(i)).second;
    CHECK(contains(body, R"("frequency":10)"));
    CHECK(contains(body, R"("monetary":20.00)"));
  }
  h.send(order(7, "C1", 2));  // the dedupe window came back from the records too
  h.replies->wait_for(1);
  CHECK(h.metrics.duplicates.load() == 1);
}

TEST_CASE("a journal of wire-JSON event records (older builds) still replays") {
  test::TempDir dir;
  const std::string json = order(1, "C7", 12.5);
  const char pos = static_cast<char>(protocol::Channel::kPos);
  write_journal(dir, {{store::RecordType::kEventOnChannel, keyed("C7", std::string(1, pos) + json)},
                      {store::RecordType::kEvent, keyed("C7", order(2, "C7", 7.5))}});
  Harness h(dir.str(), 1);
  const auto body = h.profile("C7").second;
  CHECK(contains(body, R"("frequency":2)"));
  CHECK(contains(body, R"("monetary":20.00)"));
}

TEST_CASE("a journal record this build cannot read stops recovery with an error naming it") {
  test::TempDir dir;
  std::string bin;
  protocol::encode_event_binary(test::decode_event(order(1, "C7", 1)), bin);
  SECTION("a binary event of a newer format version") {
    bin[0] = static_cast<char>(protocol::kEventBinaryVersion + 1);
    write_journal(dir, {{store::RecordType::kEventBinary, keyed("C7", bin)}});
    REQUIRE_THROWS_WITH(Harness(dir.str(), 1),
                        Catch::Contains("record 1") && Catch::Contains("version 2"));
  }
  SECTION("a record type it does not know") {
    write_journal(dir, {{store::RecordType::kEventBinary, keyed("C7", bin)},
                        {static_cast<store::RecordType>(42), "?"}});
    REQUIRE_THROWS_WITH(Harness(dir.str(), 1),
                        Catch::Contains("record 2") && Catch::Contains("type 42"));
  }
  SECTION("a damaged binary event is skipped and reported, the rest applies") {
    std::string cut = bin.substr(0, bin.size() - 3);
    std::string good;
    protocol::encode_event_binary(test::decode_event(order(2, "C7", 4)), good);
    write_journal(dir, {{store::RecordType::kEventBinary, keyed("C7", cut)},
                        {store::RecordType::kEventBinary, keyed("C7", good)}});
    Harness h(dir.str(), 1);
    CHECK(contains(h.profile("C7").second, R"("frequency":1)"));
    bool reported = false;
    for (const auto& line : h.engine->recovery_lines())
      reported |= contains(line, "record 1 does not decode");
    CHECK(reported);
  }
}

TEST_CASE("a full shard queue sheds with rate_limited instead of growing") {
  test::TempDir dir;
  engine::EngineOptions o;
  o.shards = 1;
  o.data_dir = dir.str();
  o.queue_capacity = 16;
  o.fsync = store::FsyncPolicy::kAlways;
  Metrics m;
  engine::Engine e(o, nullptr, m);
  e.start();
  auto c = std::make_shared<Collector>();
  int limited = 0;
  for (int i = 0; i < 2000; ++i) {
    auto json = order(i, "C1", 1);
    std::string raw = json;
    if (!e.submit(test::decode_event(json), std::move(raw), wall_clock_us(), c).is_ok()) ++limited;
  }
  auto replies = c->wait_for(2000);
  int errors = 0;
  for (auto& r : replies) errors += contains(r, R"("code":"rate_limited")");
  CHECK(limited > 0);
  CHECK(errors == limited);
  CHECK(e.queue_depth(0) <= 16);
}

namespace {
// Arms a 1.5 s timer on Product Added, cancelled by an order; fires an sms.
class NudgeRules : public rules::RuleSet {
 public:
  void evaluate(const protocol::Event& ev, profile::CustomerProfile& p,
                std::vector<protocol::Action>&) override {
    if (ev.name == protocol::EventName::kProductAdded) {
      p.timers.clear();
      p.timers.push_back({p.names->intern("nudge"), ev.timestamp + 1'500'000});
    } else if (ev.name == protocol::EventName::kOrderCompleted) {
      p.timers.clear();
    }
  }
  void fire_timer(const std::string& rule, TimeUs, profile::CustomerProfile& p,
                  std::vector<protocol::Action>& out) override {
    protocol::Action a;
    a.rule = rule;
    a.channel = "sms";
    a.text = "your cart is waiting";
    a.customer = p.user_id;
    out.push_back(a);
    p.contacts.push_back({p.names->intern(rule), p.names->intern("sms"), 0});
  }
  std::vector<std::string> rule_names() const override { return {"nudge"}; }
};
}  // namespace

TEST_CASE("event-time timers fire once - are cancelled by a purchase - and survive a restart") {
  test::TempDir dir;
  std::mutex mu;
  std::vector<std::string> fired;
  auto make = [&](Metrics& m) {
    engine::EngineOptions o;
    o.shards = 2;
    o.data_dir = dir.str();
    o.fsync = store::FsyncPolicy::kAlways;
    auto e = std::make_unique<engine::Engine>(o, std::make_shared<NudgeRules>(), m);
    e->set_action_sink([&](const protocol::Action& a) {
      std::lock_guard<std::mutex> lk(mu);
      fired.push_back(a.customer);
    });
    e->start();
    return e;
  };
  auto now_iso = [] { return format_iso8601(wall_clock_us()); };
  auto add = [&](const std::string& user, int i) {
    return fmt::format(
        R"({{"type":"track","event":"Product Added","messageId":"add-{}-{}","userId":"{}","timestamp":"{}","properties":{{"productId":"p1","price":5}}}})",
        user, i, user, now_iso());
  };
  {
    Metrics m;
    auto e = make(m);
    auto c = std::make_shared<Collector>();
    auto submit = [&](const std::string& json) {
      std::string raw = json;
      REQUIRE(e->submit(test::decode_event(json), std::move(raw), wall_clock_us(), c).is_ok());
    };
    submit(add("A", 1));  // will fire
    submit(add("B", 1));  // cancelled by an order
    submit(fmt::format(
        R"({{"type":"track","event":"Order Completed","messageId":"o-B","userId":"B","timestamp":"{}","properties":{{"total":5}}}})",
        now_iso()));
    c->wait_for(3);
    std::this_thread::sleep_for(std::chrono::milliseconds(2200));
    {
      std::lock_guard<std::mutex> lk(mu);
      CHECK(fired == std::vector<std::string>{"A"});
    }
    submit(add("C", 1));  // armed, then the process "crashes" before it is due
    c->wait_for(4);
    e->stop();  // graceful stop, but the timer is not due yet
  }
  fired.clear();
  Metrics m2;
  auto e2 = make(m2);
  std::this_thread::sleep_for(std::chrono::milliseconds(2200));
  std::lock_guard<std::mutex> lk(mu);
  CHECK(fired == std::vector<std::string>{"C"});  // A is not fired again after restart
}

TEST_CASE("a visitor who identifies with a member's phone number is linked to the member") {
  test::TempDir dir;
  Harness h(dir.str(), 8);
  h.send(
      R"({"type":"identify","messageId":"m-1","userId":"M7","traits":{"firstName":"Ola","phone":"+46 70 123 45 67"}})");
  h.replies->wait_for(1);
  h.send(
      R"({"type":"track","event":"Product Added","messageId":"v-1","anonymousId":"visitor-77","properties":{"productId":"scarf","price":20}})");
  h.send(
      R"({"type":"identify","messageId":"v-2","anonymousId":"visitor-77","traits":{"phone":"+46701234567"}})");
  h.replies->wait_for(3);
  std::string body;
  for (int i = 0; i < 200; ++i) {
    body = h.profile("M7").second;
    if (contains(body, R"("absorbed":true)")) break;
    std::this_thread::sleep_for(10ms);
  }
  CHECK(contains(body, R"("linkedIds":["visitor-77"])"));
  CHECK(contains(body, R"("via":"phone")"));
  CHECK(contains(body, R"("productId":"scarf")"));
  // Two members sharing a phone (a household) are not merged.
  h.send(
      R"({"type":"identify","messageId":"m-2","userId":"M8","traits":{"phone":"+46701234567"}})");
  h.replies->wait_for(4);
  std::this_thread::sleep_for(100ms);
  CHECK(contains(h.profile("M8").second, R"("linkedIds":[])"));
}

// Thread-per-core (engine/shard_loop.cpp): the caller's threads are the cores.
TEST_CASE(
    "external cores: an event for the thread's own shard is applied in its turn - one for "
    "another core's shard wakes that core once per batch") {
  test::TempDir dir;
  engine::EngineOptions o;
  o.shards = 2;
  o.data_dir = dir.str();
  o.fsync = store::FsyncPolicy::kNever;
  Metrics metrics;
  engine::Engine e(o, std::make_shared<rules::BirthdayGreeting>(), metrics);
  std::atomic<int> wakes[2] = {0, 0};
  e.use_external_cores({[&] { ++wakes[0]; }, [&] { ++wakes[1]; }});
  REQUIRE(e.core_count() == 2);
  e.start();
  CHECK(e.core_of_shard(0) == 0);
  CHECK(e.core_of_shard(1) == 1);
  auto id_on = [&](int shard) {
    for (int k = 0;; ++k)
      if (std::string id = fmt::format("C{}", k); e.shard_of(id) == shard) return id;
  };
  const std::string local = id_on(0), remote = id_on(1);
  auto replies = std::make_shared<Collector>();
  auto swipe = [&](const std::string& user, int i) {
    std::string json = fmt::format(
        R"({{"type":"track","event":"Card Swiped","messageId":"sw-{}-{}","userId":"{}"}})", user, i,
        user);
    auto ev = test::decode_event(json);
    REQUIRE(e.submit(std::move(ev), std::string(), wall_clock_us(), replies).is_ok());
  };

  e.enter_core(0);
  e.run_turn(0);  // start-up work: each shard's resend of pending links, on its own core
  const int woken0 = wakes[0], woken1 = wakes[1];  // start() woke each core
  swipe(local, 0);
  // Queued in this thread's batch: nothing applied, nobody woken, until the turn.
  CHECK(e.core_has_local_work(0));
  CHECK(wakes[0] == woken0);
  CHECK(e.queue_depth(0) == 1);
  CHECK(e.run_turn(0));
  CHECK(replies->wait_for(1).size() == 1);
  CHECK(e.queue_depth(0) == 0);
  CHECK_FALSE(e.core_has_local_work(0));

  // Core 1's shard from this thread: through the inbox, one wake-up for the burst.
  auto turn_on_core1 = [&] {
    std::thread core1([&] {
      e.enter_core(1);
      e.run_turn(1);
    });
    core1.join();
  };
  turn_on_core1();  // clears the wake start() posted
  for (int i = 0; i < 100; ++i) swipe(remote, i);
  CHECK(wakes[1] == woken1 + 1);
  CHECK(e.queue_depth(1) == 100);
  CHECK_FALSE(e.run_turn(0));  // not this core's work
  turn_on_core1();
  const auto got = replies->wait_for(101);
  CHECK(got.size() == 101);
  for (const auto& r : got) CHECK(r.rfind(R"({"type":"ack")", 0) == 0);
  // The next burst wakes the core again.
  swipe(remote, 100);
  CHECK(wakes[1] == woken1 + 2);
  e.enter_core(-1);
  e.stop();  // applies what is still queued, on this thread
  CHECK(replies->wait_for(102).size() == 102);
}

TEST_CASE("a memory log (backtest scratch runs): same replies and merges, nothing on disk") {
  test::TempDir dir;
  engine::EngineOptions o;
  o.shards = 4;
  o.data_dir = dir.str() + "/data";
  o.store_kind = "memory";
  o.seal_records = false;
  o.snapshot_interval_us = 1;  // would snapshot at once on a durable log
  o.snapshot_min_records = 1;
  Metrics metrics;
  auto replies = std::make_shared<Collector>();
  std::string visitor = "v0";
  {
    engine::Engine eng(o, std::make_shared<rules::BirthdayGreeting>(), metrics);
    for (int i = 0; eng.shard_of(visitor) == eng.shard_of("M1"); ++i)
      visitor = "v" + std::to_string(i);
    eng.use_external_cores({[] {}});
    eng.start();
    eng.enter_core(0);
    auto send = [&](const std::string& json) {
      REQUIRE(
          eng.submit(test::decode_event(json), std::string(), wall_clock_us(), replies).is_ok());
    };
    for (int i = 0; i < 10; ++i) send(order(i, "C1", 10));
    send(order(4, "C1", 10));  // a duplicate, still caught without a journal
    send(R"({"type":"track","event":"Product Added","messageId":"a1","anonymousId":")" + visitor +
         R"(","properties":{"productId":"boots","category":"Shoes","price":80}})");
    send(R"({"type":"alias","messageId":"al1","userId":"M1","previousId":")" + visitor + R"("})");
    eng.run_until_idle();
    std::optional<std::string> body;
    eng.query_profile("M1", [&](int, std::string b) { body = std::move(b); });
    eng.run_until_idle();
    REQUIRE(body);
    CHECK(contains(*body, R"("linkedIds":[")" + visitor + "\"]"));
    CHECK(contains(*body, R"("productId":"boots")"));
    eng.enter_core(-1);
    eng.stop();
  }
  CHECK(replies->wait_for(13).size() == 13);
  CHECK(metrics.duplicates.load() == 1);
  CHECK(metrics.snapshots.load() == 0);
  // No journal segment, snapshot or key file: only the folder's marker, if any.
  std::size_t files = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(o.data_dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec))
    if (it->is_regular_file() && it->path().filename() != "storepulse.meta") ++files;
  CHECK(files == 0);
}
