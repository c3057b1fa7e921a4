#include "storepulse/rules/rule_watch.hpp"

#include <dirent.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string_view>
#include <thread>

#if defined(__linux__)
#include <sys/inotify.h>
#endif

namespace storepulse::rules {
namespace {

// The files load_rules() reads; editors' swap and backup files (.x.yaml.swp,
// x.yaml~, 4913) are not rule files and do not trigger a reload.
bool rule_file_name(std::string_view name) {
  const auto ends = [&](std::string_view ext) {
    return name.size() > ext.size() && name.substr(name.size() - ext.size()) == ext;
  };
  return ends(".yaml") || ends(".yml");
}

std::uint64_t fnv1a(std::uint64_t h, const void* data, std::size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

}  // namespace

RuleFolderWatch::RuleFolderWatch(std::string dir, Mode mode) : dir_(std::move(dir)) {
#if defined(__linux__)
  if (mode == Mode::kInotify) {
    fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    add_watch();
  }
#else
  (void)mode;
#endif
  fingerprint_ = scan();
}

RuleFolderWatch::~RuleFolderWatch() {
  if (fd_ >= 0) ::close(fd_);
}

void RuleFolderWatch::add_watch() {
#if defined(__linux__)
  if (fd_ < 0 || wd_ >= 0) return;
  // No IN_MODIFY: a file is read once it is closed after writing (or moved in),
  // not after its first write(); a writer that keeps it open is seen by the scan.
  wd_ = ::inotify_add_watch(fd_, dir_.c_str(),
                            IN_CLOSE_WRITE | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO |
                                IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR);
#endif
}

// Order-independent: a sum of one hash per rule file, so the directory's
// listing order does not matter. The inode catches a file replaced by rename
// with the same size and time (`cp -p` to a temporary name, then `mv`).
std::uint64_t RuleFolderWatch::scan() const {
  DIR* d = ::opendir(dir_.c_str());
  if (!d) return 1;  // no folder: differs from an empty one (0)
  std::uint64_t sum = 0;
  while (const dirent* e = ::readdir(d)) {
    const std::string_view name = e->d_name;
    if (!rule_file_name(name)) continue;
    struct stat st {};
    // stat, not lstat: a symlinked rule file changes when its target does.
    if (::stat((dir_ + "/" + e->d_name).c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    std::uint64_t h = 14695981039346656037ull;
    h = fnv1a(h, name.data(), name.size());
    const std::int64_t parts[] = {static_cast<std::int64_t>(st.st_ino),
                                  static_cast<std::int64_t>(st.st_size),
                                  static_cast<std::int64_t>(st.st_mtim.tv_sec),
                                  static_cast<std::int64_t>(st.st_mtim.tv_nsec)};
    h = fnv1a(h, parts, sizeof parts);
    sum += h | 2;  // never 0 or 1 on its own
  }
  ::closedir(d);
  return sum;
}

bool RuleFolderWatch::drain() {
  bool relevant = false;
#if defined(__linux__)
  alignas(inotify_event) char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n <= 0) break;  // EAGAIN: the queue is empty
    for (ssize_t at = 0; at < n;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(buf + at);
      at += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
      if (ev->mask & (IN_Q_OVERFLOW | IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) {
        relevant = true;
        if ((ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) && ev->wd == wd_) {
          // The watch went with the folder: watch whatever folder has the name
          // now (poll_events adds it again once the folder is back).
          if (ev->mask & IN_MOVE_SELF) ::inotify_rm_watch(fd_, wd_);
          wd_ = -1;
        }
        continue;
      }
      if (ev->len > 0 && rule_file_name(ev->name)) relevant = true;
    }
  }
#endif
  return relevant;
}

bool RuleFolderWatch::poll_events(std::chrono::milliseconds timeout) {
  if (fd_ < 0) {
    std::this_thread::sleep_for(timeout);
    return false;
  }
  add_watch();  // again, if the folder was deleted or replaced since
  pollfd p{fd_, POLLIN, 0};
  const int r = ::poll(&p, 1, static_cast<int>(timeout.count()));
  return r > 0 && drain();
}

bool RuleFolderWatch::wait_for_change(std::chrono::milliseconds timeout) {
  bool changed = poll_events(timeout);
  std::uint64_t now = scan();
  if (!changed && now == fingerprint_) return false;
  // Settle: editors and `cp` write in steps, and a rename-based save deletes
  // then adds. Read the folder once it has been quiet for kSettle.
  const auto until = std::chrono::steady_clock::now() + kMaxSettle;
  while (std::chrono::steady_clock::now() < until) {
    const bool more = poll_events(kSettle);
    const std::uint64_t next = scan();
    if (!more && next == now) break;
    now = next;
  }
  fingerprint_ = now;
  return true;
}

}  // namespace storepulse::rules
