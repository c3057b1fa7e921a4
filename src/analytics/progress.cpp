#include "storepulse/analytics/progress.hpp"

#include <unistd.h>

#include <cstdio>

#include "storepulse/common/time.hpp"

namespace storepulse::analytics {

namespace {
int g_override = -1;
constexpr std::int64_t kRedrawNs = 100'000'000;  // 10 redraws a second is plenty for a human
constexpr int kBarWidth = 30;
}  // namespace

void ProgressBar::set_enabled_override(int on_off_or_minus1) {
  g_override = on_off_or_minus1;
}

ProgressBar::ProgressBar(std::string label, std::uint64_t total)
    : label_(std::move(label)),
      total_(total),
      enabled_(g_override >= 0 ? g_override == 1 : ::isatty(STDERR_FILENO) == 1) {}

ProgressBar::~ProgressBar() {
  finish();
}

void ProgressBar::update(std::uint64_t done) {
  if (!enabled_) return;
  std::int64_t now = mono_ns();
  if (drawn_ && now - last_draw_ns_ < kRedrawNs) return;
  last_draw_ns_ = now;
  drawn_ = true;
  if (total_ == 0) {
    std::fprintf(stderr, "\r%s %llu", label_.c_str(), static_cast<unsigned long long>(done));
  } else {
    double f = done >= total_ ? 1.0 : static_cast<double>(done) / static_cast<double>(total_);
    int fill = static_cast<int>(f * kBarWidth);
    char bar[kBarWidth + 1];
    for (int i = 0; i < kBarWidth; ++i) bar[i] = i < fill ? '#' : '.';
    bar[kBarWidth] = 0;
    std::fprintf(stderr, "\r%s [%s] %3d%%", label_.c_str(), bar, static_cast<int>(f * 100));
  }
  std::fflush(stderr);
}

void ProgressBar::finish() {
  if (!enabled_ || !drawn_) return;
  // Clear the line so the next output starts clean.
  std::fprintf(stderr, "\r\033[K");
  std::fflush(stderr);
  drawn_ = false;
  enabled_ = false;
}

}  // namespace storepulse::analytics
