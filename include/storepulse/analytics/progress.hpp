#pragma once
// A progress bar for long analytics runs. It draws on stderr only when stderr is
// a terminal, so piped / CI runs stay quiet and their logs stay clean.
// Thread ownership: one thread (the one running the analysis) calls update().
#include <cstdint>
#include <string>

namespace storepulse::analytics {

class ProgressBar {
 public:
  /// `total` is in whatever unit update() reports (bytes, rows, items); 0 = unknown.
  ProgressBar(std::string label, std::uint64_t total);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  void update(std::uint64_t done);
  void finish();
  /// Forces the bar on or off (tests, --quiet); default follows isatty(stderr).
  static void set_enabled_override(int on_off_or_minus1);

 private:
  std::string label_;
  std::uint64_t total_;
  std::int64_t last_draw_ns_ = 0;
  bool enabled_;
  bool drawn_ = false;
};

}  // namespace storepulse::analytics
