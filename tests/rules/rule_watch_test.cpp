// RuleFolderWatch: an edit, an addition, a deletion or a rename of a rule file
// is noticed within a second, with inotify and with the scan alone; files that
// are not rule files are not.
#include "storepulse/rules/rule_watch.hpp"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "support/temp_dir.hpp"

using namespace storepulse;
using namespace storepulse::rules;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

void write(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

// Whether the watch reports a change within `limit`, polling as serve does.
bool changed_within(RuleFolderWatch& w, std::chrono::milliseconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until)
    if (w.wait_for_change(100ms)) return true;
  return false;
}

}  // namespace

TEST_CASE("rule folder watch: edits, additions, deletions and renames are seen within 1 s") {
  const auto mode = GENERATE(RuleFolderWatch::Mode::kInotify, RuleFolderWatch::Mode::kScan);
  INFO((mode == RuleFolderWatch::Mode::kInotify ? "inotify" : "scan"));
  test::TempDir tmp;
  const std::string dir = tmp / "rules";
  fs::create_directories(dir);
  write(dir + "/a.yaml", "rule: a\n");
  RuleFolderWatch w(dir, mode);
#if defined(__linux__)
  CHECK(w.inotify() == (mode == RuleFolderWatch::Mode::kInotify));
#endif
  CHECK_FALSE(changed_within(w, 300ms));

  // Same size, written in place (same inode): only the contents and time differ.
  write(dir + "/a.yaml", "rule: b\n");
  CHECK(changed_within(w, 1s));
  CHECK_FALSE(w.wait_for_change(100ms));  // reported once

  write(dir + "/b.yml", "rule: b\n");
  CHECK(changed_within(w, 1s));

  // Editors' swap files, backups and other files are not rule files.
  write(dir + "/.a.yaml.swp", "x");
  write(dir + "/a.yaml~", "x");
  write(dir + "/README", "x");
  CHECK_FALSE(changed_within(w, 400ms));

  fs::rename(dir + "/b.yml", dir + "/c.yaml");
  CHECK(changed_within(w, 1s));

  fs::remove(dir + "/a.yaml");
  CHECK(changed_within(w, 1s));

  // A save through a temporary file renamed over the rule file.
  write(dir + "/c.yaml.tmp", "rule: c2\n");
  fs::rename(dir + "/c.yaml.tmp", dir + "/c.yaml");
  CHECK(changed_within(w, 1s));
}

TEST_CASE("rule folder watch: a folder deleted and created again is followed") {
  const auto mode = GENERATE(RuleFolderWatch::Mode::kInotify, RuleFolderWatch::Mode::kScan);
  INFO((mode == RuleFolderWatch::Mode::kInotify ? "inotify" : "scan"));
  test::TempDir tmp;
  const std::string dir = tmp / "rules";
  fs::create_directories(dir);
  write(dir + "/a.yaml", "rule: a\n");
  RuleFolderWatch w(dir, mode);

  fs::remove_all(dir);
  CHECK(changed_within(w, 1s));
  // Replaced by a folder prepared elsewhere (a deploy's rename).
  fs::create_directories(tmp / "next");
  write(tmp / "next/a.yaml", "rule: a\n");
  fs::rename(tmp / "next", dir);
  CHECK(changed_within(w, 1s));
  // ... and the new folder is watched: an edit in it is seen.
  write(dir + "/a.yaml", "rule: aa\n");
  CHECK(changed_within(w, 1s));
}
