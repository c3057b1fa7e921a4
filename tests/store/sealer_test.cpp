// Per-customer keys: sealing records (AES-256-GCM) and the journal's key file.
#include "storepulse/store/sealer.hpp"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "storepulse/store/journal.hpp"
#include "support/temp_dir.hpp"

using namespace storepulse;
using namespace storepulse::store;
using storepulse::test::TempDir;
namespace fs = std::filesystem;

namespace {
std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

std::unique_ptr<Journal> open_journal(const std::string& dir) {
  JournalOptions o;
  o.dir = dir;
  o.fsync = FsyncPolicy::kAlways;
  auto j = Journal::open(o);
  REQUIRE(j.is_ok());
  return std::move(j.value());
}

/// An opened journal that has replayed (so it can append), with `keys` staged
/// and written by one commit of a record.
std::unique_ptr<Journal> ready_journal(const std::string& dir,
                                       const std::vector<StoredKey>& keys = {}) {
  auto j = open_journal(dir);
  RecoveryReport rep;
  REQUIRE(j->replay(
               0, [](const JournalRecord&) {}, rep)
              .is_ok());
  if (keys.empty()) return j;
  for (const auto& k : keys) j->stage_key(k);
  j->append(RecordType::kEvent, 1, "x");
  REQUIRE(j->commit().is_ok());
  return j;
}

std::map<std::uint64_t, StoredKey> load(Journal& j, RecoveryReport& rep) {
  std::map<std::uint64_t, StoredKey> keys;
  REQUIRE(j.load_keys([&](StoredKey&& k) { keys.emplace(k.kid, std::move(k)); }, rep).is_ok());
  return keys;
}
}  // namespace

TEST_CASE("sealer: a sealed record opens with its key and type only") {
  Sealer s;
  const StoredKey a = Sealer::new_key("C1");
  const StoredKey b = Sealer::new_key("C2");
  CHECK(a.kid != 0);
  CHECK(a.kid != b.kid);
  CHECK(a.key != b.key);
  const std::string plain = R"({"userId":"C1","traits":{"phone":"+46700000001"}})";
  std::string sealed;
  s.seal(a, 0x81, plain, sealed);
  CHECK(sealed.size() == plain.size() + kSealOverhead);
  CHECK(Sealer::kid_of(sealed) == a.kid);
  CHECK(sealed.find("+4670") == std::string::npos);
  CHECK(sealed.find("C1") == std::string::npos);

  std::string out;
  REQUIRE(s.open(a.key, 0x81, sealed, out).is_ok());
  CHECK(out == plain);
  CHECK_FALSE(s.open(b.key, 0x81, sealed, out).is_ok());  // another customer's key
  CHECK(out.empty());
  CHECK_FALSE(s.open(a.key, 0x82, sealed, out).is_ok());  // the type byte is authenticated
  std::string flipped = sealed;
  flipped[30] ^= 1;
  CHECK_FALSE(s.open(a.key, 0x81, flipped, out).is_ok());
  CHECK_FALSE(s.open(a.key, 0x81, sealed.substr(0, 20), out).is_ok());
  CHECK(Sealer::kid_of("short") == 0);
}

TEST_CASE("sealer: the same plaintext never seals to the same bytes") {
  Sealer s1, s2;
  const StoredKey k = Sealer::new_key("C1");
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    std::string a, b;
    s1.seal(k, 0x81, "same", a);
    s2.seal(k, 0x81, "same", b);  // a second sealer (a restart) draws a new nonce prefix
    seen.insert(a);
    seen.insert(b);
  }
  CHECK(seen.size() == 200);
}

TEST_CASE("journal keys: staged keys are written by commit and loaded back") {
  TempDir dir;
  const StoredKey a = Sealer::new_key("member-1");
  const StoredKey b = Sealer::new_key("visitor-2");
  ready_journal(dir.str(), {a, b});
  auto j = open_journal(dir.str());
  RecoveryReport rep;
  auto keys = load(*j, rep);
  REQUIRE(keys.size() == 2);
  CHECK(rep.keys == 2);
  CHECK(keys.at(a.kid).subject == "member-1");
  CHECK(keys.at(a.kid).key == a.key);
  CHECK(keys.at(b.kid).subject == "visitor-2");
}

TEST_CASE("journal keys: erase_keys leaves no trace of the subject in the folder") {
  TempDir dir;
  const StoredKey a = Sealer::new_key("ERASED-SUBJECT");
  const StoredKey b = Sealer::new_key("KEPT-SUBJECT");
  const StoredKey c = Sealer::new_key("STAGED-ONLY");
  auto j = ready_journal(dir.str(), {a, b});
  CHECK(slurp(dir / "keys.bin").find("ERASED-SUBJECT") != std::string::npos);
  j->stage_key(c);
  REQUIRE(j->erase_keys({a.kid, c.kid}).is_ok());
  j->append(RecordType::kEvent, 2, "y");
  REQUIRE(j->commit().is_ok());  // the erased staged key is not written either
  const std::string data = slurp(dir / "keys.bin");
  CHECK(data.find("ERASED-SUBJECT") == std::string::npos);
  CHECK(data.find("STAGED-ONLY") == std::string::npos);
  CHECK(data.find("KEPT-SUBJECT") != std::string::npos);
  CHECK_FALSE(fs::exists(dir / "keys.bin.tmp"));
  // Appending goes on in the new file.
  const StoredKey d = Sealer::new_key("LATER");
  j->stage_key(d);
  j->append(RecordType::kEvent, 3, "z");
  REQUIRE(j->commit().is_ok());
  RecoveryReport rep2;
  auto keys = load(*j, rep2);
  CHECK(keys.size() == 2);
  CHECK(keys.count(b.kid) == 1);
  CHECK(keys.count(d.kid) == 1);
}

TEST_CASE(
    "journal keys: a torn key record is reported and truncated and a failed commit keeps keys "
    "staged") {
  TempDir dir;
  const StoredKey a = Sealer::new_key("A");
  const StoredKey b = Sealer::new_key("B");
  {
    auto j = ready_journal(dir.str());
    j->stage_key(a);
    j->append(RecordType::kEvent, 1, "x");
    j->inject_write_failure();
    CHECK_FALSE(j->commit().is_ok());
    // The retry writes the key that the failed batch needed.
    j->append(RecordType::kEvent, 1, "x");
    REQUIRE(j->commit().is_ok());
    j->stage_key(b);
    j->append(RecordType::kEvent, 2, "y");
    REQUIRE(j->commit().is_ok());
  }
  const auto size = fs::file_size(dir / "keys.bin");
  fs::resize_file(dir / "keys.bin", size - 3);  // torn last key
  auto j = open_journal(dir.str());
  RecoveryReport rep;
  auto keys = load(*j, rep);
  CHECK(keys.size() == 1);
  CHECK(keys.count(a.kid) == 1);
  REQUIRE(rep.problems.size() == 1);
  CHECK_THAT(rep.problems[0], Catch::Contains("damaged bytes after 1 keys"));
  CHECK(fs::file_size(dir / "keys.bin") < size - 3);
}

TEST_CASE("sealer: key schedules of recent customers are cached, and forget() drops one") {
  Sealer s;
  const StoredKey a = Sealer::new_key("C1");
  const StoredKey b = Sealer::new_key("C2");
  std::string sa, sb, out;
  for (int i = 0; i < 10; ++i) {
    sa.clear();
    sb.clear();
    s.seal(a, 1, "record of C1 " + std::to_string(i), sa);
    s.seal(b, 1, "record of C2 " + std::to_string(i), sb);
    REQUIRE(s.open(a.key, 1, sa, out).is_ok());
    CHECK(out == "record of C1 " + std::to_string(i));
    REQUIRE(s.open(b.key, 1, sb, out).is_ok());
    CHECK(out == "record of C2 " + std::to_string(i));
  }
  // The first seal and open of each customer made a schedule (or two, when both
  // kids share a slot); every later one found it.
  CHECK(s.cache_misses() <= 8);
  CHECK(s.cache_hits() >= 32);
  // Same kid, another key (never given out by new_key, but a damaged key file
  // could): the cached schedule must not be used for it.
  StoredKey other = a;
  other.key[0] ^= 1;
  CHECK_FALSE(s.open(other.key, 1, sa, out).is_ok());
  REQUIRE(s.open(a.key, 1, sa, out).is_ok());
  // After forget() a record still opens with its key (a new schedule is made),
  // and a record sealed before is not opened by another key in its slot.
  const auto misses = s.cache_misses();
  s.forget(a.kid);
  REQUIRE(s.open(a.key, 1, sa, out).is_ok());
  CHECK(s.cache_misses() == misses + 1);
  // A nonce is never reused across records of one key, cached context or not.
  std::string r1, r2;
  s.seal(a, 1, "same", r1);
  s.seal(a, 1, "same", r2);
  CHECK(r1.substr(8, 12) != r2.substr(8, 12));
  CHECK(r1 != r2);
}

TEST_CASE("sealer: many customers through the bounded cache all open correctly") {
  Sealer s;
  std::vector<StoredKey> keys;
  std::vector<std::string> sealed;
  for (int i = 0; i < 3 * static_cast<int>(Sealer::kCacheSlots); ++i) {
    keys.push_back(Sealer::new_key("C" + std::to_string(i)));
    sealed.emplace_back();
    s.seal(keys.back(), 1, "payload " + std::to_string(i), sealed.back());
  }
  std::string out;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    REQUIRE(s.open(keys[i].key, 1, sealed[i], out).is_ok());
    CHECK(out == "payload " + std::to_string(i));
    // Opening with a neighbour's key fails even when its schedule is cached.
    if (i > 0) CHECK_FALSE(s.open(keys[i - 1].key, 1, sealed[i], out).is_ok());
  }
  // Contexts re-keyed in place (a slot reused by another customer) seal what a
  // fresh sealer, which set each context up from scratch, opens, and back.
  Sealer fresh;
  for (std::size_t i = 0; i < keys.size(); i += 7) {
    REQUIRE(fresh.open(keys[i].key, 1, sealed[i], out).is_ok());
    CHECK(out == "payload " + std::to_string(i));
    std::string again;
    fresh.seal(keys[i], 1, "again " + std::to_string(i), again);
    REQUIRE(s.open(keys[i].key, 1, again, out).is_ok());
    CHECK(out == "again " + std::to_string(i));
  }
}
