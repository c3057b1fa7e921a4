#include "storepulse/profile/names.hpp"

namespace storepulse::profile {

NameTable::NameTable(std::size_t max_names, std::size_t max_bytes)
    : max_names_(max_names), max_bytes_(max_bytes) {
  names_.emplace_back();  // id 0: the empty name
}

NameId NameTable::intern(std::string_view name) {
  return add(name, max_names_, max_bytes_);
}

NameId NameTable::intern_guardrail(std::string_view name) {
  return add(name, max_names_ + kGuardrailRoom, max_bytes_ + kGuardrailBytes);
}

NameId NameTable::add(std::string_view name, std::size_t max_names, std::size_t max_bytes) {
  if (name.empty()) return kNoName;
  const std::uint64_t h = hash_string(name);
  if (auto id = lookup(name, h)) return *id;
  if (size() >= max_names || bytes_ + name.size() > max_bytes) {
    ++refused_;
    return kNoName;
  }
  const auto id = static_cast<NameId>(names_.size());
  names_.emplace_back(name);
  ids_.insert(h, id);
  bytes_ += name.size();
  return id;
}

NameId NameTable::find(std::string_view name) const {
  if (name.empty()) return kNoName;
  return lookup(name, hash_string(name)).value_or(kNoName);
}

std::optional<NameId> NameTable::lookup(std::string_view name, std::uint64_t h) const {
  return ids_.find(h, [&](std::uint32_t id) { return names_[id] == name; });
}

NameTable& NameTable::thread_default() {
  thread_local NameTable table;
  return table;
}

}  // namespace storepulse::profile
