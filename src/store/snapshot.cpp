#include "storepulse/store/snapshot.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "storepulse/common/bytes.hpp"
#include "storepulse/store/journal.hpp"

namespace storepulse::store {
namespace {
constexpr char kMagic[8] = {'S', 'P', 'S', 'N', 'A', 'P', '0', '1'};
}

Status write_snapshot(const std::string& dir, std::uint64_t seq, const std::string& body) {
  std::string head(kMagic, sizeof kMagic);
  ByteWriter w(head);
  w.u64(seq);
  w.u64(body.size());
  w.u32(crc32_of(body));
  const std::string tmp = dir + "/snapshot.bin.tmp";
  const std::string final_path = dir + "/snapshot.bin";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0)
    return Status(ErrorCode::kUnavailable,
                  fmt::format("cannot create {}: {}", tmp, std::strerror(errno)));
  auto write_all = [&](const std::string& s) {
    const char* p = s.data();
    std::size_t left = s.size();
    while (left) {
      ssize_t n = ::write(fd, p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      p += n;
      left -= static_cast<std::size_t>(n);
    }
    return true;
  };
  if (!write_all(head) || !write_all(body) || ::fsync(fd) != 0) {
    Status s(ErrorCode::kUnavailable,
             fmt::format("cannot write {}: {}", tmp, std::strerror(errno)));
    ::close(fd);
    ::unlink(tmp.c_str());
    return s;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), final_path.c_str()) != 0)
    return Status(ErrorCode::kUnavailable,
                  fmt::format("cannot rename {}: {}", tmp, std::strerror(errno)));
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return Status::ok();
}

Result<bool> read_snapshot(const std::string& dir, std::uint64_t& seq, std::string& body) {
  seq = 0;
  body.clear();
  const std::string path = dir + "/snapshot.bin";
  // One read into a buffer of the file's size (it was an ifstream into a
  // stringstream and three whole copies: a visible part of a restart).
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return false;
    return Status(ErrorCode::kUnavailable,
                  fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  }
  struct stat st {};
  // One byte more than the file, so the read that finds its end needs no
  // growth (growing would reallocate and copy the whole buffer once more).
  if (::fstat(fd, &st) == 0 && st.st_size > 0)
    body.resize(static_cast<std::size_t>(st.st_size) + 1);
  std::size_t have = 0;
  for (;;) {
    if (have == body.size()) body.resize(std::max<std::size_t>(body.size() * 2, 1 << 16));
    const ssize_t n = ::read(fd, body.data() + have, body.size() - have);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Status st_err(ErrorCode::kUnavailable,
                    fmt::format("cannot read {}: {}", path, std::strerror(errno)));
      ::close(fd);
      body.clear();
      return st_err;
    }
    if (n == 0) break;
    have += static_cast<std::size_t>(n);
  }
  ::close(fd);
  body.resize(have);
  constexpr std::size_t kHead = sizeof kMagic + 20;
  if (body.size() < kHead || std::memcmp(body.data(), kMagic, sizeof kMagic) != 0) {
    body.clear();
    return Status(ErrorCode::kInternal, fmt::format("{}: not a StorePulse snapshot", path));
  }
  ByteReader r(std::string_view(body).substr(sizeof kMagic, 20));
  const std::uint64_t s = r.u64();
  const std::uint64_t len = r.u64();
  const std::uint32_t crc = r.u32();
  if (body.size() - kHead != len) {
    body.clear();
    return Status(ErrorCode::kInternal, fmt::format("{}: truncated snapshot", path));
  }
  body.erase(0, kHead);
  if (crc32_of(body) != crc) {
    body.clear();
    return Status(ErrorCode::kInternal, fmt::format("{}: snapshot checksum mismatch", path));
  }
  seq = s;
  return true;
}

}  // namespace storepulse::store
