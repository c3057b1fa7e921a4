#include "storepulse/store/journal.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <immintrin.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <thread>
#include <utility>

#include "storepulse/common/bytes.hpp"
#include "storepulse/store/snapshot.hpp"

namespace fs = std::filesystem;

namespace storepulse::store {
namespace {
constexpr std::size_t kHeader = 4 + 4 + 8 + 1 + 8;
constexpr std::uint32_t kMaxPayload = 16u << 20;

std::string segment_name(std::uint64_t first_seq) {
  return fmt::format("{:020}.log", first_seq);
}

Status io_error(std::string_view what, const std::string& path) {
  return Status(ErrorCode::kUnavailable,
                fmt::format("{} {}: {}", what, path, std::strerror(errno)));
}

bool read_file(const std::string& path, std::string& out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  out.clear();
  // Read straight into a buffer of the file's size (a 64 MB segment read in
  // 64 KB appends was reallocated and copied ~10 times).
  struct stat st {};
  // One byte more than the file, so the read that finds its end needs no
  // growth (growing would reallocate and copy the whole buffer once more).
  if (::fstat(fd, &st) == 0 && st.st_size > 0) out.resize(static_cast<std::size_t>(st.st_size) + 1);
  std::size_t have = 0;
  for (;;) {
    if (have == out.size()) out.resize(std::max<std::size_t>(out.size() * 2, 1 << 16));
    ssize_t n = ::read(fd, out.data() + have, out.size() - have);
    if (n < 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      return false;
    }
    if (n == 0) break;
    have += static_cast<std::size_t>(n);
  }
  out.resize(have);
  ::close(fd);
  return true;
}

/// A segment mapped read-only for replay: the records are parsed where the
/// page cache holds them, with no buffer to zero and no copy (reading a 64 MB
/// segment into a string was half of a restart from the journal). Only for the
/// journal's owner, which holds its lock: nobody else truncates the file while
/// it is mapped (the owner's own repair truncates after its last read of it).
/// The trade-off: a disk read error inside the mapping is a SIGBUS, not a
/// "cannot read" status; a server that cannot read its journal cannot start
/// either way, and the message is the kernel's I/O error in the system log.
class MappedSegment {
 public:
  MappedSegment() = default;
  MappedSegment(const MappedSegment&) = delete;
  MappedSegment& operator=(const MappedSegment&) = delete;
  ~MappedSegment() { unmap(); }
  /// False with errno set when the file cannot be opened, sized or mapped.
  bool map(const std::string& path) {
    unmap();
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const int e = errno;
      ::close(fd);
      errno = e;
      return false;
    }
    size_ = static_cast<std::size_t>(st.st_size);
    if (size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        const int e = errno;
        ::close(fd);
        size_ = 0;
        errno = e;
        return false;
      }
      // Advice values, not flags: one call each.
      ::madvise(p, size_, MADV_SEQUENTIAL);
      ::madvise(p, size_, MADV_WILLNEED);
      addr_ = p;
    }
    ::close(fd);  // the mapping keeps the file
    return true;
  }
  std::string_view view() const {
    return addr_ ? std::string_view(static_cast<const char*>(addr_), size_) : std::string_view();
  }
  void unmap() {
    if (addr_) ::munmap(addr_, size_);
    addr_ = nullptr;
    size_ = 0;
  }

 private:
  void* addr_ = nullptr;
  std::size_t size_ = 0;
};

/// The record at data[off..] when it is whole, checksummed and numbered
/// `expect_seq`: fills `rec` (payload points into `data`) and `size`. Otherwise
/// `why` says what is wrong. The one reader of the record layout: replay,
/// scan_journal and read_committed all go through it.
bool parse_record(std::string_view data, std::size_t off, std::uint64_t expect_seq,
                  JournalRecord& rec, std::size_t& size, std::string* why) {
  if (data.size() - off < kHeader) {
    if (why) *why = "torn record header";
    return false;
  }
  ByteReader r(data.substr(off, kHeader));
  const std::uint32_t len = r.u32();
  const std::uint32_t crc = r.u32();
  const std::uint64_t rseq = r.u64();
  const auto type = static_cast<RecordType>(r.u8());
  const TimeUs recv = r.i64();
  if (len > kMaxPayload || data.size() - off - kHeader < len) {
    if (why) *why = "torn record (length past the end of the segment)";
    return false;
  }
  if (crc32_of(data.substr(off + 8, kHeader - 8 + len)) != crc) {
    if (why) *why = "checksum mismatch";
    return false;
  }
  if (rseq != expect_seq) {
    if (why) *why = fmt::format("record {} found where {} was expected", rseq, expect_seq);
    return false;
  }
  rec = JournalRecord{rseq, type, recv, data.substr(off + kHeader, len)};
  size = kHeader + len;
  return true;
}
}  // namespace

namespace {
// CRC-32 (the zlib polynomial, so records written before stay readable) by
// carry-less multiplication: folds 64 bytes per step with PCLMULQDQ, then
// reduces with Barrett (Gopal et al., "Fast CRC Computation for Generic
// Polynomials Using PCLMULQDQ", Intel 2009; the constants are the reflected
// ones of that paper, as in Chromium's zlib). zlib 1.2.13's table-driven
// crc32 was 12 % of a restart from the journal; this runs several times faster on
// records of a few hundred bytes. `len` >= 64 and a multiple of 16; `crc` is
// the pre-inverted register (~crc), as is the result.
__attribute__((target("pclmul,sse4.1"))) std::uint32_t crc32_clmul(const unsigned char* buf,
                                                                   std::size_t len,
                                                                   std::uint32_t crc) {
  alignas(16) static const std::uint64_t k1k2[] = {0x0154442bd4, 0x01c6e41596};
  alignas(16) static const std::uint64_t k3k4[] = {0x01751997d0, 0x00ccaa009e};
  alignas(16) static const std::uint64_t k5k0[] = {0x0163cd6124, 0x0000000000};
  alignas(16) static const std::uint64_t poly[] = {0x01db710641, 0x01f7011641};
  auto load = [](const unsigned char* p) {
    return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  };
  __m128i x1 = load(buf), x2 = load(buf + 16), x3 = load(buf + 32), x4 = load(buf + 48);
  x1 = _mm_xor_si128(x1, _mm_cvtsi32_si128(static_cast<int>(crc)));
  __m128i x0 = _mm_load_si128(reinterpret_cast<const __m128i*>(k1k2));
  buf += 64;
  len -= 64;
  while (len >= 64) {
    const __m128i x5 = _mm_clmulepi64_si128(x1, x0, 0x00), x6 = _mm_clmulepi64_si128(x2, x0, 0x00),
                  x7 = _mm_clmulepi64_si128(x3, x0, 0x00), x8 = _mm_clmulepi64_si128(x4, x0, 0x00);
    x1 = _mm_clmulepi64_si128(x1, x0, 0x11);
    x2 = _mm_clmulepi64_si128(x2, x0, 0x11);
    x3 = _mm_clmulepi64_si128(x3, x0, 0x11);
    x4 = _mm_clmulepi64_si128(x4, x0, 0x11);
    x1 = _mm_xor_si128(_mm_xor_si128(x1, x5), load(buf));
    x2 = _mm_xor_si128(_mm_xor_si128(x2, x6), load(buf + 16));
    x3 = _mm_xor_si128(_mm_xor_si128(x3, x7), load(buf + 32));
    x4 = _mm_xor_si128(_mm_xor_si128(x4, x8), load(buf + 48));
    buf += 64;
    len -= 64;
  }
  // Fold the four lanes into one.
  x0 = _mm_load_si128(reinterpret_cast<const __m128i*>(k3k4));
  for (const __m128i next : {x2, x3, x4}) {
    const __m128i x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
    x1 = _mm_clmulepi64_si128(x1, x0, 0x11);
    x1 = _mm_xor_si128(_mm_xor_si128(x1, next), x5);
  }
  while (len >= 16) {
    const __m128i x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
    x1 = _mm_clmulepi64_si128(x1, x0, 0x11);
    x1 = _mm_xor_si128(_mm_xor_si128(x1, load(buf)), x5);
    buf += 16;
    len -= 16;
  }
  // 128 -> 64 bits.
  __m128i x2b = _mm_clmulepi64_si128(x1, x0, 0x10);
  const __m128i mask = _mm_setr_epi32(~0, 0, ~0, 0);
  x1 = _mm_xor_si128(_mm_srli_si128(x1, 8), x2b);
  x0 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(k5k0));
  x2b = _mm_srli_si128(x1, 4);
  x1 = _mm_xor_si128(_mm_clmulepi64_si128(_mm_and_si128(x1, mask), x0, 0x00), x2b);
  // Barrett reduction to 32 bits.
  x0 = _mm_load_si128(reinterpret_cast<const __m128i*>(poly));
  x2b = _mm_clmulepi64_si128(_mm_and_si128(x1, mask), x0, 0x10);
  x2b = _mm_clmulepi64_si128(_mm_and_si128(x2b, mask), x0, 0x00);
  x1 = _mm_xor_si128(x1, x2b);
  return static_cast<std::uint32_t>(_mm_extract_epi32(x1, 1));
}

const bool kHaveClmul = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
}  // namespace

std::uint32_t crc32_of(std::string_view data, std::uint32_t seed) {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  std::size_t n = data.size();
  if (kHaveClmul && n >= 64) {
    const std::size_t chunk = n & ~std::size_t{15};
    seed = ~crc32_clmul(p, chunk, ~seed);
    p += chunk;
    n -= chunk;
  }
  return static_cast<std::uint32_t>(::crc32(seed, p, static_cast<uInt>(n)));
}

std::string_view fsync_policy_name(FsyncPolicy p) {
  switch (p) {
    case FsyncPolicy::kAlways: return "always";
    case FsyncPolicy::kInterval: return "interval";
    case FsyncPolicy::kNever: return "never";
  }
  return "interval";
}

bool parse_fsync_policy(std::string_view s, FsyncPolicy& out) {
  if (s == "always")
    out = FsyncPolicy::kAlways;
  else if (s == "interval")
    out = FsyncPolicy::kInterval;
  else if (s == "never")
    out = FsyncPolicy::kNever;
  else
    return false;
  return true;
}

// The helper thread of fsync `interval`: tick() hands it the dirty fds at most
// once per interval and goes on; a commit never waits for it (an `interval`
// ack never waited for the disk). One request at a time: while one runs, the
// next tick skips and the one after retries. A failed fdatasync is reported by
// the next tick(), and the fds stay dirty.
struct Journal::BackgroundSync {
  std::mutex mu;
  std::condition_variable cv;
  int fd = -1, keys_fd = -1;
  bool requested = false, busy = false, stop = false;
  int error = 0;  // errno of the last failed fdatasync, until tick() reports it
  std::thread th;

  BackgroundSync() : th([this] { run(); }) {}
  ~BackgroundSync() {
    {
      std::lock_guard lk(mu);
      stop = true;
    }
    cv.notify_all();
    th.join();
  }
  void run() {
    std::unique_lock lk(mu);
    for (;;) {
      cv.wait(lk, [&] { return requested || stop; });
      if (!requested) return;
      requested = false;
      busy = true;
      const int f = fd, k = keys_fd;
      lk.unlock();
      int err = 0;
      if (k >= 0 && ::fdatasync(k) != 0) err = errno;
      if (f >= 0 && ::fdatasync(f) != 0) err = errno;
      lk.lock();
      busy = false;
      if (err) error = err;
      cv.notify_all();
    }
  }
};

bool Journal::take_sync_error() {
  if (!bg_->error) return false;
  errno = std::exchange(bg_->error, 0);
  dirty_ = fd_ >= 0;  // not known to be on disk: synced again
  keys_dirty_ = keys_fd_ >= 0;
  return true;
}

void Journal::quiesce_sync() {
  if (!bg_) return;
  std::unique_lock lk(bg_->mu);
  bg_->cv.wait(lk, [&] { return !bg_->busy && !bg_->requested; });
}

Journal::Journal(JournalOptions opts) : opts_(std::move(opts)) {}

Journal::~Journal() {
  bg_.reset();  // joins the helper: it uses our fds
  if (fd_ >= 0) {
    if (dirty_) ::fdatasync(fd_);
    ::close(fd_);
  }
  if (keys_fd_ >= 0) {
    if (keys_dirty_) ::fdatasync(keys_fd_);
    ::close(keys_fd_);
  }
}

// ---- customer keys (keys.bin) -------------------------------------------------

namespace {
constexpr std::size_t kKeyHeader = 4 + 8 + 32 + 4;  // crc, kid, key, subject length
constexpr std::uint32_t kMaxSubject = 4096;

void encode_key(const StoredKey& k, std::string& out) {
  const std::size_t at = out.size();
  ByteWriter w(out);
  w.u32(0);
  w.u64(k.kid);
  out.append(reinterpret_cast<const char*>(k.key.data()), k.key.size());
  w.str(k.subject);
  const std::uint32_t crc = crc32_of(std::string_view(out).substr(at + 4));
  std::memcpy(out.data() + at, &crc, 4);
}

bool fsync_dir(const std::string& dir) {
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return false;
  const bool ok = ::fsync(dfd) == 0;
  ::close(dfd);
  return ok;
}

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}
}  // namespace

void Journal::stage_key(const StoredKey& key) {
  encode_key(key, key_buffer_);
}

Status Journal::write_keys() {
  if (key_buffer_.empty()) return Status::ok();
  const std::string path = opts_.dir + "/keys.bin";
  if (keys_fd_ < 0) {
    keys_fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (keys_fd_ < 0) return io_error("cannot open", path);
    fsync_dir(opts_.dir);
  }
  struct stat st {};
  const off_t before = ::fstat(keys_fd_, &st) == 0 ? st.st_size : -1;
  if (!write_all(keys_fd_, key_buffer_)) {
    Status s = io_error("cannot write", path);
    // Keep the keys staged for the next commit; drop any partial record.
    if (before >= 0 && ::ftruncate(keys_fd_, before) != 0)
      spdlog::error("journal: cannot truncate {} after failed write: {}", path,
                    std::strerror(errno));
    return s;
  }
  keys_bytes_ += key_buffer_.size();
  key_buffer_.clear();
  keys_dirty_ = true;
  // A key must be on disk no later than the first record sealed under it.
  if (opts_.fsync == FsyncPolicy::kAlways) {
    if (::fdatasync(keys_fd_) != 0) return io_error("cannot fsync", path);
    keys_dirty_ = false;
  }
  return Status::ok();
}

Status scan_keys(const std::string& dir, const std::function<void(StoredKey&&)>& fn,
                 RecoveryReport& report, std::size_t* good_bytes) {
  const std::string path = dir + "/keys.bin";
  std::string data;
  if (good_bytes) *good_bytes = 0;
  if (!read_file(path, data)) {
    if (errno == ENOENT) return Status::ok();
    return io_error("cannot read", path);
  }
  std::size_t off = 0;
  std::uint64_t n_keys = 0;
  while (off < data.size()) {
    if (data.size() - off < kKeyHeader) break;
    ByteReader r(std::string_view(data).substr(off));
    const std::uint32_t crc = r.u32();
    StoredKey k;
    k.kid = r.u64();
    std::memcpy(k.key.data(), data.data() + off + 12, 32);
    ByteReader rs(std::string_view(data).substr(off + 44));
    const std::uint32_t n = rs.u32();
    if (n > kMaxSubject || data.size() - off < kKeyHeader + n) break;
    const std::size_t len = kKeyHeader + n;
    if (crc32_of(std::string_view(data).substr(off + 4, len - 4)) != crc) break;
    k.subject.assign(data.data() + off + kKeyHeader, n);
    fn(std::move(k));
    ++n_keys;
    off += len;
  }
  report.keys += n_keys;
  if (good_bytes) *good_bytes = off;
  if (off < data.size()) {
    report.problems.push_back(
        fmt::format("{}: {} damaged bytes after {} keys", path, data.size() - off, n_keys));
    report.bytes_dropped += data.size() - off;
  }
  return Status::ok();
}

Status Journal::load_keys(const std::function<void(StoredKey&&)>& fn, RecoveryReport& report) {
  std::size_t good = 0;
  const std::size_t problems = report.problems.size();
  if (Status s = scan_keys(opts_.dir, fn, report, &good); !s) return s;
  keys_bytes_ = good;
  if (report.problems.size() > problems) {
    // A torn tail: the key of a batch whose records never became durable
    // either (keys are written first). Truncate it so appends start clean.
    const std::string path = opts_.dir + "/keys.bin";
    if (::truncate(path.c_str(), static_cast<off_t>(good)) != 0)
      return io_error("cannot truncate", path);
  }
  return Status::ok();
}

Status Journal::erase_keys(const std::vector<std::uint64_t>& kids) {
  if (kids.empty()) return Status::ok();
  auto erased = [&](std::uint64_t kid) {
    return std::find(kids.begin(), kids.end(), kid) != kids.end();
  };
  // Staged keys first: those never reached the disk.
  std::string staged;
  {
    std::size_t off = 0;
    while (off + kKeyHeader <= key_buffer_.size()) {
      std::uint64_t kid = 0;
      std::memcpy(&kid, key_buffer_.data() + off + 4, 8);
      std::uint32_t n = 0;
      std::memcpy(&n, key_buffer_.data() + off + 44, 4);
      const std::size_t len = kKeyHeader + n;
      if (!erased(kid)) staged.append(key_buffer_, off, len);
      off += len;
    }
  }
  key_buffer_.swap(staged);
  // Rewrite keys.bin without the erased keys: the old file is replaced as a
  // whole, so no byte of it stays reachable through the file system.
  std::string kept;
  RecoveryReport rep;
  if (Status s = load_keys(
          [&](StoredKey&& k) {
            if (!erased(k.kid)) encode_key(k, kept);
          },
          rep);
      !s)
    return s;
  const std::string path = opts_.dir + "/keys.bin";
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return io_error("cannot create", tmp);
  if (!write_all(fd, kept) || ::fsync(fd) != 0) {
    Status s = io_error("cannot write", tmp);
    ::close(fd);
    ::unlink(tmp.c_str());
    return s;
  }
  ::close(fd);
  quiesce_sync();
  if (keys_fd_ >= 0) {
    ::close(keys_fd_);
    keys_fd_ = -1;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) return io_error("cannot replace", path);
  if (!fsync_dir(opts_.dir)) return io_error("cannot fsync", opts_.dir);
  keys_dirty_ = false;
  keys_bytes_ = kept.size();
  return Status::ok();
}

Result<std::unique_ptr<Journal>> Journal::open(const JournalOptions& opts) {
  std::error_code ec;
  fs::create_directories(opts.dir, ec);
  if (ec)
    return Status(ErrorCode::kUnavailable,
                  fmt::format("cannot create journal directory {}: {}", opts.dir, ec.message()));
  return std::unique_ptr<Journal>(new Journal(opts));
}

std::vector<std::pair<std::uint64_t, std::string>> Journal::list_segments() const {
  std::vector<std::pair<std::uint64_t, std::string>> segs;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(opts_.dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() != 24 || name.substr(20) != ".log") continue;
    std::uint64_t first = 0;
    bool digits = true;
    for (std::size_t i = 0; i < 20; ++i) {
      if (name[i] < '0' || name[i] > '9')
        digits = false;
      else
        first = first * 10 + static_cast<std::uint64_t>(name[i] - '0');
    }
    if (digits) segs.emplace_back(first, e.path().string());
  }
  std::sort(segs.begin(), segs.end());
  return segs;
}

Status Journal::replay(std::uint64_t after_seq, const std::function<void(const JournalRecord&)>& fn,
                       RecoveryReport& report) {
  auto segs = list_segments();
  std::uint64_t expect = 0;  // next expected seq (0 = unknown yet)
  MappedSegment segment;
  bool damaged = false;
  std::size_t i = 0;
  for (; i < segs.size() && !damaged; ++i) {
    const auto& [first, path] = segs[i];
    if (expect != 0 && first != expect) {
      report.problems.push_back(fmt::format(
          "segment {} starts at record {} but record {} was expected: a segment is missing; "
          "recovery stops at record {}",
          path, first, expect, expect - 1));
      damaged = true;
      break;
    }
    if (!segment.map(path)) return io_error("cannot read", path);
    const std::string_view data = segment.view();
    ++report.segments;
    std::size_t off = 0;
    std::uint64_t seq = first;
    while (off < data.size()) {
      JournalRecord rec;
      std::size_t size = 0;
      std::string why;
      if (parse_record(data, off, seq, rec, size, &why)) {
        if (rec.seq > after_seq) fn(rec);
        ++report.records;
        off += size;
        ++seq;
        continue;
      }
      const std::uint64_t dropped = data.size() - off;
      report.bytes_dropped += dropped;
      report.problems.push_back(fmt::format(
          "{} at byte {} of {} ({}): truncated to the last good record {}, {} bytes dropped", why,
          off, path, segment_name(first), seq - 1, dropped));
      segment.unmap();  // before the file shrinks under the mapping
      if (::truncate(path.c_str(), static_cast<off_t>(off)) != 0)
        return io_error("cannot truncate", path);
      damaged = true;
      break;
    }
    disk_bytes_ += off;
    expect = seq;
    segment_first_seq_ = first;
    segment_size_ = off;
    last_seq_ = seq - 1;
  }
  // Segments after the damage would be applied on top of a gap: set them aside.
  for (std::size_t j = i; j < segs.size(); ++j) {
    const std::string aside = segs[j].second + ".damaged";
    std::error_code ec;
    fs::rename(segs[j].second, aside, ec);
    report.problems.push_back(
        fmt::format("segment {} set aside as {} (after the damage)", segs[j].second, aside));
  }
  if (segs.empty() || segment_first_seq_ == 0) {
    last_seq_ = std::max(last_seq_, after_seq);
    committed_seq_ = last_seq_;
    return open_segment(last_seq_ + 1);
  }
  if (last_seq_ < after_seq) {
    // The snapshot is ahead of the journal (segments already removed): start fresh after it.
    last_seq_ = after_seq;
    committed_seq_ = last_seq_;
    return open_segment(last_seq_ + 1);
  }
  committed_seq_ = last_seq_;
  const std::string path = opts_.dir + "/" + segment_name(segment_first_seq_);
  fd_ = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd_ < 0) return io_error("cannot open", path);
  return Status::ok();
}

Status Journal::open_segment(std::uint64_t first_seq) {
  quiesce_sync();  // the helper may be syncing the fd closed here
  if (fd_ >= 0) {
    if (dirty_ && ::fdatasync(fd_) != 0) return io_error("cannot fsync", opts_.dir);
    ::close(fd_);
    fd_ = -1;
  }
  const std::string path = opts_.dir + "/" + segment_name(first_seq);
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd_ < 0) return io_error("cannot create", path);
  // The new file's directory entry must be durable too, or a crash can lose it.
  int dfd = ::open(opts_.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  segment_first_seq_ = first_seq;
  segment_size_ = 0;
  dirty_ = false;
  return Status::ok();
}

std::uint64_t Journal::append(RecordType type, TimeUs recv_time, std::string_view payload) {
  const std::uint64_t seq = ++last_seq_;
  const std::size_t at = buffer_.size();
  ByteWriter w(buffer_);
  w.u32(static_cast<std::uint32_t>(payload.size()));
  w.u32(0);  // crc, filled below
  w.u64(seq);
  w.u8(static_cast<std::uint8_t>(type));
  w.i64(recv_time);
  buffer_.append(payload.data(), payload.size());
  const std::uint32_t crc = crc32_of(std::string_view(buffer_).substr(at + 8));
  std::memcpy(buffer_.data() + at + 4, &crc, 4);
  return seq;
}

Status Journal::commit() {
  if (buffer_.empty()) return Status::ok();
  auto rollback = [&](Status s) {
    // Undo a partial write so the file never holds half a batch we did not ack.
    if (fd_ >= 0) {
      if (::ftruncate(fd_, static_cast<off_t>(segment_size_)) != 0) {
        spdlog::error("journal: cannot truncate after failed write: {}", std::strerror(errno));
      }
    }
    buffer_.clear();
    last_seq_ = committed_seq_;
    return s;
  };
  if (fail_next_write_) {
    fail_next_write_ = false;
    errno = ENOSPC;
    return rollback(io_error("cannot write", opts_.dir));
  }
  if (Status s = write_keys(); !s) return rollback(s);
  const char* p = buffer_.data();
  std::size_t left = buffer_.size();
  while (left > 0) {
    ssize_t n = ::write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return rollback(io_error("cannot write journal in", opts_.dir));
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  segment_size_ += buffer_.size();
  disk_bytes_ += buffer_.size();
  buffer_.clear();
  committed_seq_ = last_seq_;
  dirty_ = true;
  if (opts_.fsync == FsyncPolicy::kAlways) {
    Status s = sync();
    if (!s) return s;
  }
  if (segment_size_ >= opts_.segment_bytes) return open_segment(last_seq_ + 1);
  return Status::ok();
}

Status Journal::sync() {
  quiesce_sync();  // then a foreground sync of whatever is still dirty
  if (bg_) {
    std::lock_guard lk(bg_->mu);
    take_sync_error();  // the helper's last sync failed: this one redoes it
  }
  if (keys_dirty_ && keys_fd_ >= 0) {
    if (::fdatasync(keys_fd_) != 0) return io_error("cannot fsync keys in", opts_.dir);
    keys_dirty_ = false;
  }
  if (!dirty_ || fd_ < 0) return Status::ok();
  if (::fdatasync(fd_) != 0) return io_error("cannot fsync journal in", opts_.dir);
  dirty_ = false;
  last_sync_ns_ = mono_ns();
  return Status::ok();
}

Status Journal::tick() {
  if (opts_.fsync != FsyncPolicy::kInterval || (!dirty_ && !keys_dirty_)) return Status::ok();
  const std::int64_t now = mono_ns();
  if (now - last_sync_ns_ < opts_.fsync_interval_us * 1000) return Status::ok();
  if (!bg_) bg_ = std::make_unique<BackgroundSync>();
  std::lock_guard lk(bg_->mu);
  if (take_sync_error()) return io_error("cannot fsync journal in", opts_.dir);
  if (bg_->busy || bg_->requested) return Status::ok();  // the last one still runs
  bg_->fd = dirty_ ? fd_ : -1;
  bg_->keys_fd = keys_dirty_ ? keys_fd_ : -1;
  dirty_ = keys_dirty_ = false;
  last_sync_ns_ = now;
  bg_->requested = true;
  bg_->cv.notify_all();
  return Status::ok();
}

Status Journal::roll_segment() {
  if (Status s = commit(); !s) return s;
  if (fd_ >= 0 && segment_size_ == 0) return Status::ok();  // already a fresh segment
  return open_segment(last_seq_ + 1);
}

void Journal::remove_segments_through(std::uint64_t seq) {
  auto segs = list_segments();
  for (std::size_t i = 0; i + 1 < segs.size(); ++i) {
    // Segment i holds [first_i, first_{i+1} - 1]; never remove the open one.
    if (segs[i + 1].first - 1 <= seq && segs[i].first != segment_first_seq_) {
      std::error_code ec;
      const auto size = fs::file_size(segs[i].second, ec);
      if (!ec) disk_bytes_ -= std::min<std::uint64_t>(disk_bytes_, size);
      if (opts_.archive_segments) {
        fs::create_directories(opts_.dir + "/archive", ec);
        fs::rename(segs[i].second,
                   opts_.dir + "/archive/" + fs::path(segs[i].second).filename().string(), ec);
      } else {
        fs::remove(segs[i].second, ec);
      }
    }
  }
}

Status Journal::read_committed(std::uint64_t after_seq, std::size_t max_bytes,
                               std::size_t max_records,
                               const std::function<void(const JournalRecord&)>& fn) {
  if (after_seq >= committed_seq_) return Status::ok();
  if (read_next_seq_ != after_seq + 1 || read_seg_first_ == 0) {
    // (Re)position: the segment that holds after_seq + 1, from its start.
    const auto segs = list_segments();
    read_seg_first_ = 0;
    for (const auto& [first, path] : segs)
      if (first <= after_seq + 1) read_seg_first_ = first;
    if (read_seg_first_ == 0)
      return Status(ErrorCode::kInternal,
                    fmt::format("{}: no segment holds record {}", opts_.dir, after_seq + 1));
    read_off_ = 0;
    read_next_seq_ = read_seg_first_;
  }
  std::size_t delivered = 0, count = 0;
  std::string chunk;
  while (delivered < max_bytes && count < max_records && read_next_seq_ <= committed_seq_) {
    const std::string path = opts_.dir + "/" + segment_name(read_seg_first_);
    std::uint64_t end = 0;
    if (read_seg_first_ == segment_first_seq_) {
      end = segment_size_;
    } else {
      std::error_code ec;
      end = fs::file_size(path, ec);
      if (ec) {
        // Removed under the cursor (every record in it was read and dropped):
        // find the segment that holds the next record.
        read_seg_first_ = 0;
        return read_committed(read_next_seq_ - 1, max_bytes - delivered, max_records - count, fn);
      }
    }
    if (read_off_ >= end) {
      if (read_seg_first_ == segment_first_seq_) break;
      read_seg_first_ = read_next_seq_;  // the next segment starts where this one ended
      read_off_ = 0;
      continue;
    }
    // One pread of at most max_bytes (or one whole record when it is larger).
    std::size_t want =
        static_cast<std::size_t>(std::min<std::uint64_t>(end - read_off_, max_bytes - delivered));
    want =
        std::max(want, std::min<std::size_t>(kHeader, static_cast<std::size_t>(end - read_off_)));
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return io_error("cannot open", path);
    auto read_at = [&](std::size_t n) {
      chunk.resize(n);
      std::size_t got = 0;
      while (got < n) {
        ssize_t r = ::pread(fd, chunk.data() + got, n - got, static_cast<off_t>(read_off_ + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        got += static_cast<std::size_t>(r);
      }
      return true;
    };
    bool ok = read_at(want);
    if (ok && want >= kHeader) {
      std::uint32_t len = 0;
      std::memcpy(&len, chunk.data(), 4);
      if (kHeader + std::size_t{len} > want && read_off_ + kHeader + len <= end)
        ok = read_at(kHeader + len);
    }
    ::close(fd);
    if (!ok) return io_error("cannot read", path);
    std::size_t off = 0;
    JournalRecord rec;
    std::size_t size = 0;
    std::string why;
    while (off < chunk.size() && count < max_records &&
           parse_record(chunk, off, read_next_seq_, rec, size, &why)) {
      if (rec.seq > after_seq) {
        fn(rec);
        delivered += size;
        ++count;
      }
      off += size;
      ++read_next_seq_;
    }
    if (off == 0 && count < max_records)
      return Status(ErrorCode::kInternal, fmt::format("{} at byte {} of {}", why, read_off_, path));
    read_off_ += off;
  }
  return Status::ok();
}

Status Journal::remove_all() {
  quiesce_sync();
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  if (keys_fd_ >= 0) {
    ::close(keys_fd_);
    keys_fd_ = -1;
  }
  // Oldest first, keys last: a crash part-way leaves a readable tail.
  for (const auto& [first, path] : list_segments()) {
    std::error_code ec;
    if (!fs::remove(path, ec) && ec)
      return Status(ErrorCode::kUnavailable,
                    fmt::format("cannot remove {}: {}", path, ec.message()));
  }
  std::error_code ec;
  fs::remove(opts_.dir + "/keys.bin", ec);
  fsync_dir(opts_.dir);
  buffer_.clear();
  key_buffer_.clear();
  disk_bytes_ = keys_bytes_ = 0;
  dirty_ = keys_dirty_ = false;
  read_seg_first_ = 0;
  return Status::ok();
}

Status scan_journal(const std::string& dir, const std::function<void(const JournalRecord&)>& fn,
                    RecoveryReport& report) {
  std::vector<std::pair<std::uint64_t, std::string>> segs;
  for (const std::string& d : {dir + "/archive", dir}) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(d, ec)) {
      const std::string name = e.path().filename().string();
      if (name.size() != 24 || name.substr(20) != ".log") continue;
      segs.emplace_back(std::stoull(name.substr(0, 20)), e.path().string());
    }
  }
  std::sort(segs.begin(), segs.end());
  std::string data;
  std::uint64_t expect = 0;
  for (const auto& [first, path] : segs) {
    if (expect != 0 && first != expect)
      report.problems.push_back(
          fmt::format("{}: records {} to {} are missing", path, expect, first - 1));
    if (!read_file(path, data)) return io_error("cannot read", path);
    ++report.segments;
    std::size_t off = 0;
    std::uint64_t seq = first;
    JournalRecord rec;
    std::size_t size = 0;
    while (off < data.size() && parse_record(data, off, seq, rec, size, nullptr)) {
      fn(rec);
      ++report.records;
      off += size;
      ++seq;
    }
    if (off != data.size()) {
      report.bytes_dropped += data.size() - off;
      report.problems.push_back(
          fmt::format("{}: damaged at byte {}, {} bytes not read", path, off, data.size() - off));
    }
    expect = seq;
  }
  return Status::ok();
}

Result<bool> Journal::read_snapshot(std::uint64_t& seq, std::string& body) {
  return store::read_snapshot(opts_.dir, seq, body);
}

Status Journal::write_snapshot(std::uint64_t seq, const std::string& body) {
  return store::write_snapshot(opts_.dir, seq, body);
}

}  // namespace storepulse::store
