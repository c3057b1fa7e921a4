#include "storepulse/analytics/event_reader.hpp"

#include <catch2/catch.hpp>
#include <fstream>

using namespace storepulse;
using namespace storepulse::analytics;

namespace {
std::string write_temp(const std::string& name, const std::string& body) {
  std::string path = "/tmp/storepulse_event_reader_test_" + name;
  std::ofstream(path, std::ios::binary) << body;
  return path;
}
const char* kOrder1997 =
    R"({"type":"track","event":"Order Completed","messageId":"m1","userId":"7","timestamp":"1997-01-02T00:00:00Z","properties":{"total":10}})";
const char* kOrder1996 =
    R"({"type":"track","event":"Order Completed","messageId":"m0","userId":"7","timestamp":"1996-01-02T00:00:00Z","properties":{"total":5}})";
}  // namespace

TEST_CASE("event file: historic events are accepted and sorted by time") {
  auto path = write_temp("ok.ndjson", std::string(kOrder1997) + "\n\n" + kOrder1996 + "\n");
  auto log = read_event_file(path);
  REQUIRE(log.is_ok());
  REQUIRE(log->events.size() == 2);
  CHECK(log->events[0].message_id == "m0");
  CHECK(log->events[1].total == 1000);
}

TEST_CASE(
    "event file: a bad line fails with file:line in strict mode - is counted in lenient mode") {
  auto path = write_temp("bad.ndjson", std::string(kOrder1997) + "\n{\"type\":\"track\"\n");
  auto log = read_event_file(path);
  REQUIRE_FALSE(log.is_ok());
  CHECK(log.status().detail().rfind(path + ":2:", 0) == 0);
  EventReadOptions lenient;
  lenient.strict = false;
  auto log2 = read_event_file(path, lenient);
  REQUIRE(log2.is_ok());
  CHECK(log2->events.size() == 1);
  CHECK(log2->bad_lines == 1);
}

TEST_CASE("a missing journal folder is reported by name") {
  auto r = read_journal_dir("/tmp/nowhere");
  REQUIRE_FALSE(r.is_ok());
  CHECK(r.status().detail().find("/tmp/nowhere: no such folder") != std::string::npos);
}

TEST_CASE("missing event file is reported by name") {
  auto r = read_event_file("/tmp/storepulse_no_such_file.ndjson");
  REQUIRE_FALSE(r.is_ok());
  CHECK(r.status().detail().find("/tmp/storepulse_no_such_file.ndjson") != std::string::npos);
}
