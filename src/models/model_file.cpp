#include "storepulse/models/model_file.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "storepulse/protocol/codec.hpp"

namespace storepulse::models {

std::string meta_json_fields(std::string_view format, const ModelMeta& meta) {
  std::string o = "\"format\":";
  protocol::append_json_string(o, format);
  o += ",\"fitted_on\":";
  protocol::append_json_string(o, meta.fitted_on);
  o += ",\"fitted_at\":";
  protocol::append_json_string(o, meta.fitted_at ? format_iso8601(meta.fitted_at) : std::string());
  o += fmt::format(",\"subjects\":{}", meta.subjects);
  return o;
}

Status check_format(std::string_view found, bool present, std::string_view expected) {
  if (!present)
    return Status(
        ErrorCode::kBadField,
        fmt::format("no \"format\" tag (expected \"{}\"; files from before versioned models: "
                    "re-run storepulse analyze ... --model-out)",
                    expected));
  if (found == expected) return Status::ok();
  const auto slash = expected.rfind('/');
  const std::string_view kind = expected.substr(0, slash + 1);
  if (found.substr(0, kind.size()) == kind)
    return Status(
        ErrorCode::kBadField,
        fmt::format("format \"{}\" is a version this build does not read (it reads \"{}\")", found,
                    expected));
  return Status(ErrorCode::kBadField,
                fmt::format("format \"{}\" is not a {} model (expected \"{}\")", found,
                            expected.substr(0, slash), expected));
}

Status write_file_atomic(const std::string& path, std::string_view text) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return Status(ErrorCode::kInternal,
                  fmt::format("cannot write {}: {}", tmp, std::strerror(errno)));
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int e = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return Status(ErrorCode::kInternal,
                    fmt::format("write to {} failed: {}", tmp, std::strerror(e)));
    }
    done += static_cast<std::size_t>(n);
  }
  // fsync before rename: after a crash the folder holds the old or the new file, never a torn one.
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(tmp.c_str());
    return Status(ErrorCode::kInternal,
                  fmt::format("cannot flush {}: {}", tmp, std::strerror(errno)));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    return Status(ErrorCode::kInternal,
                  fmt::format("cannot rename {} to {}: {}", tmp, path, std::strerror(e)));
  }
  return Status::ok();
}

Result<std::string> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return Status(ErrorCode::kNotFound, fmt::format("cannot read {}", path));
  std::stringstream ss;
  ss << f.rdbuf();
  if (f.bad()) return Status(ErrorCode::kInternal, fmt::format("read of {} failed", path));
  return ss.str();
}

}  // namespace storepulse::models
