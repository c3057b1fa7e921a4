#pragma once
// Status / Result<T>: the hot path reports failure by value, never by exception.
// An error carries a wire code (the `code` of an `error` reply) and a detail
// that names what was wrong, e.g. "properties.total: expected a number".
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace storepulse {

enum class ErrorCode : unsigned char {
  kOk = 0,
  kBadJson,       // not JSON, or not an object
  kBadField,      // a field has the wrong type / value, or a required field is missing
  kUnknownEvent,  // event / type name not in the protocol
  kTooLarge,      // message over the size limit
  kRateLimited,   // over a rate or queue limit: retry later
  kUnavailable,   // the store cannot make the event durable right now
  kUnauthorized,  // missing / wrong key
  kNotFound,
  kInternal,
  kWrongNode,  // the customer's shard is served by another node (several nodes, one Redis)
};

/// Wire name of an error code, as used in `{"type":"error","code":…}`.
constexpr std::string_view error_code_name(ErrorCode c) {
  switch (c) {
    case ErrorCode::kOk: return "ok";
    case ErrorCode::kBadJson: return "bad_json";
    case ErrorCode::kBadField: return "bad_field";
    case ErrorCode::kUnknownEvent: return "unknown_event";
    case ErrorCode::kTooLarge: return "too_large";
    case ErrorCode::kRateLimited: return "rate_limited";
    case ErrorCode::kUnavailable: return "unavailable";
    case ErrorCode::kUnauthorized: return "unauthorized";
    case ErrorCode::kNotFound: return "not_found";
    case ErrorCode::kInternal: return "internal";
    case ErrorCode::kWrongNode: return "wrong_node";
  }
  return "internal";
}

inline constexpr ErrorCode kAllWireErrors[] = {ErrorCode::kBadJson,      ErrorCode::kBadField,
                                               ErrorCode::kUnknownEvent, ErrorCode::kTooLarge,
                                               ErrorCode::kRateLimited,  ErrorCode::kUnavailable,
                                               ErrorCode::kUnauthorized, ErrorCode::kWrongNode};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(ErrorCode code, std::string detail) : code_(code), detail_(std::move(detail)) {}
  static Status ok() { return {}; }

  bool is_ok() const { return code_ == ErrorCode::kOk; }
  explicit operator bool() const { return is_ok(); }
  ErrorCode code() const { return code_; }
  const std::string& detail() const { return detail_; }

 private:
  ErrorCode code_ = ErrorCode::kOk;
  std::string detail_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}       // NOLINT: implicit by design
  Result(Status error) : v_(std::move(error)) {}  // NOLINT

  bool is_ok() const { return v_.index() == 0; }
  explicit operator bool() const { return is_ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }
  const Status& status() const { return std::get<1>(v_); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace storepulse
