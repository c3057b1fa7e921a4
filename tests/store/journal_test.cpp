#include "storepulse/store/journal.hpp"

#include <zlib.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <random>

#include "storepulse/store/snapshot.hpp"
#include "support/temp_dir.hpp"

using namespace storepulse;
using namespace storepulse::store;
namespace fs = std::filesystem;

namespace {
std::unique_ptr<Journal> open_journal(const std::string& dir,
                                      std::uint64_t segment_bytes = 1 << 20) {
  JournalOptions o;
  o.dir = dir;
  o.segment_bytes = segment_bytes;
  o.fsync = FsyncPolicy::kAlways;
  auto j = Journal::open(o);
  REQUIRE(j.is_ok());
  return std::move(j.value());
}

std::vector<std::string> replay_all(const std::string& dir, RecoveryReport& rep,
                                    std::uint64_t after = 0,
                                    std::uint64_t segment_bytes = 1 << 20) {
  auto j = open_journal(dir, segment_bytes);
  std::vector<std::string> out;
  REQUIRE(j->replay(
               after, [&](const JournalRecord& r) { out.emplace_back(r.payload); }, rep)
              .is_ok());
  return out;
}

void write_n(const std::string& dir, int n, std::uint64_t segment_bytes = 1 << 20) {
  auto j = open_journal(dir, segment_bytes);
  RecoveryReport rep;
  REQUIRE(j->replay(
               0, [](const JournalRecord&) {}, rep)
              .is_ok());
  for (int i = 0; i < n; ++i) {
    j->append(RecordType::kEvent, i, "event-" + std::to_string(i));
    if (i % 7 == 6) REQUIRE(j->commit().is_ok());
  }
  REQUIRE(j->commit().is_ok());
}

std::vector<fs::path> segments(const std::string& dir) {
  std::vector<fs::path> v;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".log") v.push_back(e.path());
  std::sort(v.begin(), v.end());
  return v;
}
}  // namespace

TEST_CASE("journal replays what was committed - in order - across reopen") {
  test::TempDir dir;
  write_n(dir.str(), 50);
  write_n(dir.str(), 10);  // appends after the first 50
  RecoveryReport rep;
  auto got = replay_all(dir.str(), rep);
  REQUIRE(got.size() == 60);
  CHECK(got[0] == "event-0");
  CHECK(got[49] == "event-49");
  CHECK(got[50] == "event-0");
  CHECK(rep.problems.empty());
  CHECK(rep.bytes_dropped == 0);
}

TEST_CASE("a torn last record is truncated and reported with the bytes dropped") {
  test::TempDir dir;
  write_n(dir.str(), 20);
  auto seg = segments(dir.str()).back();
  const auto size = fs::file_size(seg);
  fs::resize_file(seg, size - 5);  // cut into the last record
  RecoveryReport rep;
  auto got = replay_all(dir.str(), rep);
  CHECK(got.size() == 19);
  REQUIRE(rep.problems.size() == 1);
  CHECK(rep.problems[0].find("torn") != std::string::npos);
  CHECK(rep.bytes_dropped == 25 + std::string("event-19").size() - 5);  // header 25 bytes
  // After truncation the journal appends cleanly after record 19.
  write_n(dir.str(), 1);
  RecoveryReport rep2;
  auto again = replay_all(dir.str(), rep2);
  CHECK(again.size() == 20);
  CHECK(rep2.problems.empty());
}

TEST_CASE("a flipped byte in the middle stops recovery at the last good record") {
  test::TempDir dir;
  write_n(dir.str(), 30);
  auto seg = segments(dir.str()).back();
  {
    std::fstream f(seg, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(seg) / 2));
    char c;
    f.read(&c, 1);
    f.seekp(static_cast<std::streamoff>(fs::file_size(seg) / 2));
    c = static_cast<char>(c ^ 0x40);
    f.write(&c, 1);
  }
  RecoveryReport rep;
  auto got = replay_all(dir.str(), rep);
  CHECK(got.size() < 30);
  CHECK(got.size() >= 13);
  for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i] == "event-" + std::to_string(i));
  REQUIRE_FALSE(rep.problems.empty());
  CHECK(rep.bytes_dropped > 0);
}

TEST_CASE("a missing segment stops recovery before the gap and sets later segments aside") {
  test::TempDir dir;
  write_n(dir.str(), 200, 256);  // many small segments
  auto segs = segments(dir.str());
  REQUIRE(segs.size() >= 4);
  fs::remove(segs[1]);
  RecoveryReport rep;
  auto got = replay_all(dir.str(), rep, 0, 256);
  CHECK(got.size() > 0);
  CHECK(got.size() < 200);
  for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i] == "event-" + std::to_string(i));
  bool said_missing = false;
  for (const auto& p : rep.problems) said_missing |= p.find("missing") != std::string::npos;
  CHECK(said_missing);
  int damaged = 0;
  for (const auto& e : fs::directory_iterator(dir.str()))
    damaged += e.path().extension() == ".damaged";
  CHECK(damaged == static_cast<int>(segs.size()) - 2);
}

TEST_CASE("a failed write leaves nothing of the batch and sequence numbers are reused") {
  test::TempDir dir;
  auto j = open_journal(dir.str());
  RecoveryReport rep;
  REQUIRE(j->replay(
               0, [](const JournalRecord&) {}, rep)
              .is_ok());
  j->append(RecordType::kEvent, 0, "a");
  REQUIRE(j->commit().is_ok());
  j->append(RecordType::kEvent, 0, "lost-1");
  j->append(RecordType::kEvent, 0, "lost-2");
  j->inject_write_failure();
  Status s = j->commit();
  REQUIRE_FALSE(s.is_ok());
  CHECK(s.code() == ErrorCode::kUnavailable);
  CHECK(j->last_seq() == 1);
  CHECK(j->append(RecordType::kEvent, 0, "b") == 2);
  REQUIRE(j->commit().is_ok());
  j.reset();
  RecoveryReport rep2;
  auto got = replay_all(dir.str(), rep2);
  CHECK(got == std::vector<std::string>{"a", "b"});
}

TEST_CASE("segments covered by a snapshot are removed - replay resumes after it") {
  test::TempDir dir;
  write_n(dir.str(), 100, 200);
  auto before = segments(dir.str()).size();
  {
    auto j = open_journal(dir.str(), 200);
    RecoveryReport rep;
    REQUIRE(j->replay(
                 0, [](const JournalRecord&) {}, rep)
                .is_ok());
    j->remove_segments_through(60);
  }
  CHECK(segments(dir.str()).size() < before);
  RecoveryReport rep;
  auto got = replay_all(dir.str(), rep, 60, 200);
  REQUIRE(got.size() == 40);
  CHECK(got.front() == "event-60");
  CHECK(rep.problems.empty());
}

TEST_CASE("snapshot round-trips and detects damage") {
  test::TempDir dir;
  REQUIRE(write_snapshot(dir.str(), 42, "profiles...").is_ok());
  std::uint64_t seq;
  std::string body;
  auto r = read_snapshot(dir.str(), seq, body);
  REQUIRE(r.is_ok());
  CHECK(*r);
  CHECK(seq == 42);
  CHECK(body == "profiles...");
  {
    std::fstream f(dir / "snapshot.bin", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-2, std::ios::end);
    f.put('X');
  }
  auto bad = read_snapshot(dir.str(), seq, body);
  REQUIRE_FALSE(bad.is_ok());
  CHECK(bad.status().detail().find("checksum") != std::string::npos);
  test::TempDir empty;
  auto none = read_snapshot(empty.str(), seq, body);
  REQUIRE(none.is_ok());
  CHECK_FALSE(*none);
}

TEST_CASE(
    "read_committed reads on from a cursor across segments, bounded per call, while appending") {
  test::TempDir dir;
  auto j = open_journal(dir.str(), 200);  // a few records per segment
  RecoveryReport rep;
  REQUIRE(j->replay(
               0, [](const JournalRecord&) {}, rep)
              .is_ok());
  for (int i = 0; i < 30; ++i) {
    j->append(RecordType::kEvent, i, "event-" + std::to_string(i));
    if (i % 3 == 2) REQUIRE(j->commit().is_ok());  // segments roll after a commit
  }
  j->append(RecordType::kEvent, 99, "buffered, not committed");
  REQUIRE(segments(dir.str()).size() > 3);
  std::vector<std::string> got;
  std::uint64_t after = 0;
  int calls = 0;
  for (; calls < 100; ++calls) {
    std::size_t before = got.size();
    REQUIRE(j->read_committed(after, 1 << 20, 4, [&](const JournalRecord& r) {
               CHECK(r.seq == after + 1);
               after = r.seq;
               got.emplace_back(r.payload);
             }).is_ok());
    CHECK(got.size() - before <= 4);
    if (got.size() == before) break;
    if (calls == 2) j->remove_segments_through(after);  // a drain forgets what it pushed
  }
  REQUIRE(got.size() == 30);  // the buffered record is not read
  CHECK(got.front() == "event-0");
  CHECK(got.back() == "event-29");
  // Repositioning: any seq, also after the cursor moved on.
  std::vector<std::uint64_t> seqs;
  REQUIRE(j->read_committed(25, 1 << 20, 100, [&](const JournalRecord& r) {
             seqs.push_back(r.seq);
           }).is_ok());
  CHECK(seqs == std::vector<std::uint64_t>{26, 27, 28, 29, 30});
  CHECK(j->disk_bytes() > 0);
  REQUIRE(j->remove_all().is_ok());
  CHECK(segments(dir.str()).empty());
  CHECK(j->disk_bytes() == 0);
}

TEST_CASE("crc32_of is zlib's CRC-32 for every length, alignment and seed") {
  // The fast path (PCLMULQDQ, 64 bytes and longer) must give exactly the
  // checksum zlib gives: journals written before it are checked with it.
  std::mt19937_64 rng(7);
  std::string buf(3000, '\0');
  for (auto& c : buf) c = static_cast<char>(rng());
  for (std::size_t len = 0; len <= 1100; ++len) {
    const std::size_t off = rng() % 32;
    const auto seed = static_cast<std::uint32_t>(len % 3 == 0 ? 0 : rng());
    const std::string_view d(buf.data() + off, len);
    const auto want = static_cast<std::uint32_t>(
        ::crc32(seed, reinterpret_cast<const Bytef*>(d.data()), static_cast<uInt>(d.size())));
    INFO("length " << len << " offset " << off << " seed " << seed);
    REQUIRE(crc32_of(d, seed) == want);
  }
  CHECK(crc32_of("123456789") == 0xCBF43926u);  // the standard check value of CRC-32
}

TEST_CASE("a segment larger than any read buffer is replayed whole") {
  test::TempDir dir;
  JournalOptions o;
  o.dir = dir.str();
  const std::string big(200'000, 'x');
  {
    auto j = Journal::open(o);
    REQUIRE(j.is_ok());
    RecoveryReport rep;
    REQUIRE((*j)->replay(
                    0, [](const JournalRecord&) {}, rep)
                .is_ok());
    for (int i = 0; i < 5; ++i) (*j)->append(RecordType::kEvent, i, big + std::to_string(i));
    REQUIRE((*j)->commit().is_ok());
  }
  auto j = Journal::open(o);
  REQUIRE(j.is_ok());
  RecoveryReport rep;
  std::vector<std::string> got;
  REQUIRE((*j)->replay(
                  0, [&](const JournalRecord& r) { got.emplace_back(r.payload); }, rep)
              .is_ok());
  REQUIRE(got.size() == 5);
  CHECK(got[4] == big + "4");
  CHECK(rep.problems.empty());
}

TEST_CASE("a snapshot larger than any read buffer round-trips, and a truncated one is refused") {
  test::TempDir dir;
  std::string body(3'000'000, '\0');
  std::mt19937_64 rng(3);
  for (auto& c : body) c = static_cast<char>(rng());
  REQUIRE(write_snapshot(dir.str(), 7, body).is_ok());
  std::uint64_t seq = 0;
  std::string got;
  auto r = read_snapshot(dir.str(), seq, got);
  REQUIRE(r.is_ok());
  CHECK(*r);
  CHECK(seq == 7);
  CHECK(got == body);
  fs::resize_file(dir / "snapshot.bin", fs::file_size(dir / "snapshot.bin") - 1);
  auto bad = read_snapshot(dir.str(), seq, got);
  REQUIRE_FALSE(bad.is_ok());
  CHECK(bad.status().detail().find("truncated") != std::string::npos);
}

TEST_CASE("fsync interval: syncs run on a helper thread while commits go on, segments roll") {
  test::TempDir dir;
  {
    JournalOptions o;
    o.dir = dir.str();
    o.segment_bytes = 4096;  // rolls every few dozen records, while syncs run
    o.fsync = FsyncPolicy::kInterval;
    o.fsync_interval_us = 1;
    auto j = Journal::open(o);
    REQUIRE(j.is_ok());
    RecoveryReport rep;
    REQUIRE(j.value()
                ->replay(
                    0, [](const JournalRecord&) {}, rep)
                .is_ok());
    StoredKey k = Sealer::new_key("C1");
    j.value()->stage_key(k);
    for (int i = 0; i < 500; ++i) {
      j.value()->append(RecordType::kEvent, i, "record " + std::to_string(i));
      REQUIRE(j.value()->commit().is_ok());
      REQUIRE(j.value()->tick().is_ok());  // hands the fds to the helper, never waits
    }
    REQUIRE(j.value()->sync().is_ok());  // waits for the helper, then syncs the rest
  }
  RecoveryReport rep;
  const auto got = replay_all(dir.str(), rep, 0, 4096);
  REQUIRE(got.size() == 500);
  for (int i = 0; i < 500; ++i)
    CHECK(got[static_cast<std::size_t>(i)] == "record " + std::to_string(i));
  CHECK(rep.problems.empty());
}
