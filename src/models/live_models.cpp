#include "storepulse/models/live_models.hpp"

#include <fmt/format.h>

#include <filesystem>

#include "storepulse/profile/profile.hpp"
#include "storepulse/protocol/event.hpp"

namespace storepulse::models {

namespace {
thread_local const ModelSet* t_active = nullptr;

template <typename Model, typename Parse>
std::shared_ptr<const Model> load_one(const std::string& dir, std::string_view file, Parse parse,
                                      std::shared_ptr<const Model> previous,
                                      std::vector<std::string>& notes,
                                      std::vector<std::string>& errors, const char* what) {
  const std::string path = (std::filesystem::path(dir) / file).string();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return nullptr;
  auto text = read_file(path);
  if (!text) {
    errors.push_back(fmt::format("{}: {}{}", path, text.status().detail(),
                                 previous ? "; the previous model keeps running" : ""));
    return previous;
  }
  auto parsed = parse(*text);
  if (!parsed) {
    errors.push_back(fmt::format("{}: {}{}", path, parsed.status().detail(),
                                 previous ? "; the previous model keeps running" : ""));
    return previous;
  }
  auto m = std::make_shared<const Model>(std::move(*parsed));
  notes.push_back(fmt::format("{} model {} (fitted on {}{}, {} subjects)", what, path,
                              m->meta.fitted_on.empty() ? "?" : m->meta.fitted_on,
                              m->meta.fitted_at ? " at " + format_iso8601(m->meta.fitted_at) : "",
                              m->meta.subjects));
  return m;
}
}  // namespace

std::shared_ptr<const ModelSet> load_models(const std::string& dir, const ModelSet* previous,
                                            std::vector<std::string>& notes,
                                            std::vector<std::string>& errors) {
  auto set = std::make_shared<ModelSet>();
  set->dir = dir;
  if (dir.empty()) return set;
  set->clv = load_one<ClvModel>(dir, kClvFile, parse_clv_model_json,
                                previous ? previous->clv : nullptr, notes, errors, "clv");
  set->segments =
      load_one<SegmentModel>(dir, kSegmentsFile, parse_segment_model_json,
                             previous ? previous->segments : nullptr, notes, errors, "segments");
  set->baskets =
      load_one<BasketModel>(dir, kBasketsFile, parse_basket_model_json,
                            previous ? previous->baskets : nullptr, notes, errors, "baskets");
  if (set->baskets)
    notes.push_back(fmt::format("baskets: {} rules over {} items (key {})",
                                set->baskets->rules().size(), set->baskets->item_count(),
                                set->baskets->item_key));
  return set;
}

std::int64_t models_stamp(const std::string& dir) {
  namespace fs = std::filesystem;
  std::int64_t stamp = 0;
  std::error_code ec;
  for (std::string_view f : {kClvFile, kSegmentsFile, kBasketsFile}) {
    const auto t = fs::last_write_time(fs::path(dir) / f, ec);
    if (ec) continue;
    const auto ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
    // Sum of stamps + presence: a file appearing, disappearing or being replaced changes it.
    stamp += static_cast<std::int64_t>(ns % 1'000'000'000'000'000LL) + 1;
  }
  return stamp;
}

void update_profile(const ModelSet& models, profile::CustomerProfile& p,
                    const protocol::Event& ev) {
  if (ev.name != protocol::EventName::kOrderCompleted) return;
  if (models.clv) score_profile_clv(*models.clv, p, ev.timestamp);
  if (models.segments) classify_profile(*models.segments, p);
}

const ModelSet* active_models() {
  return t_active;
}
void set_active_models(const ModelSet* models) {
  t_active = models;
}

}  // namespace storepulse::models
