#include "storepulse/store/memory_log.hpp"

#include <catch2/catch.hpp>

using namespace storepulse;

TEST_CASE("memory log: numbers records, commits, keeps nothing and has no snapshot") {
  store::MemoryLog log;
  store::RecoveryReport rep;
  int replayed = 0;
  REQUIRE(log.replay(
                 0, [&](const store::JournalRecord&) { ++replayed; }, rep)
              .is_ok());
  CHECK(replayed == 0);
  CHECK_FALSE(log.durable());
  CHECK(log.append(store::RecordType::kEventBinary, 1, "abc") == 1);
  CHECK(log.append(store::RecordType::kEventBinary, 2, "de") == 2);
  CHECK(log.last_seq() == 0);  // not committed yet
  REQUIRE(log.commit().is_ok());
  CHECK(log.last_seq() == 2);
  CHECK(log.records() == 2);
  CHECK(log.bytes() == 5);
  std::uint64_t seq = 7;
  std::string body = "x";
  auto snap = log.read_snapshot(seq, body);
  REQUIRE(snap.is_ok());
  CHECK_FALSE(*snap);
  CHECK(seq == 0);
  CHECK(body.empty());
  REQUIRE(log.write_snapshot(2, "state").is_ok());
  CHECK_FALSE(*log.read_snapshot(seq, body));  // still none: nothing is kept
}
