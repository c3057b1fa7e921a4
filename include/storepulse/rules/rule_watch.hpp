#pragma once
// Notices that the rule files of a folder (`*.yaml`, `*.yml`) changed: a file
// edited, added, deleted or renamed. Load path only, nothing here runs per event.
//
// inotify (Linux) wakes the caller as soon as a rule file is written and
// closed, moved or deleted. A scan of the rule files' names, inodes, sizes and
// modification times runs on every wait as well, so a change is still noticed
// where inotify is missing or says nothing: a folder replaced whole (its watch
// goes with the old folder), rule files that are symlinks into a folder that
// is swapped (a Kubernetes ConfigMap), a network file system, a full queue.
//
// Threads: one owner thread (the server's main loop); not thread-safe.
#include <chrono>
#include <cstdint>
#include <string>

namespace storepulse::rules {

class RuleFolderWatch {
 public:
  enum class Mode : std::uint8_t {
    kInotify,  // inotify where the system has it, plus the scan
    kScan,     // the scan alone (tests, and systems without inotify)
  };
  explicit RuleFolderWatch(std::string dir, Mode mode = Mode::kInotify);
  ~RuleFolderWatch();
  RuleFolderWatch(const RuleFolderWatch&) = delete;
  RuleFolderWatch& operator=(const RuleFolderWatch&) = delete;

  /// Waits at most `timeout` (less when inotify reports a change) and returns
  /// true when the rule files changed since construction or since the last
  /// call that returned true. A change is followed until the folder has been
  /// quiet for kSettle (a file being written is then read whole), at most
  /// kMaxSettle, so the caller learns of it well within a second.
  bool wait_for_change(std::chrono::milliseconds timeout);
  /// Whether inotify is in use (else the scan alone).
  bool inotify() const { return fd_ >= 0; }

  static constexpr std::chrono::milliseconds kSettle{60};
  static constexpr std::chrono::milliseconds kMaxSettle{400};

 private:
  std::uint64_t scan() const;
  // Reads every queued inotify event; true if one concerned a rule file or the
  // watch itself (folder deleted or moved, queue overflow).
  bool drain();
  bool poll_events(std::chrono::milliseconds timeout);
  void add_watch();

  std::string dir_;
  int fd_ = -1;
  int wd_ = -1;
  std::uint64_t fingerprint_ = 0;
};

}  // namespace storepulse::rules
