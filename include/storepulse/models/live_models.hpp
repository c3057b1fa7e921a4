#pragma once
// The models the engine runs with: one immutable snapshot of a models folder
// (clv.json, segments.json, baskets.json; each optional). The server loads it
// at start and again when a file changes, and swaps the snapshot atomically
// (std::shared_ptr<const ModelSet>); shard workers take the current pointer
// once per batch and read it without locks.
//
// Rules reach the snapshot through active_models(): a thread-local pointer the
// shard worker sets for the batch it processes (the RuleSet interface stays
// model-agnostic, and evaluation stays lock-free).
#include <memory>
#include <string>
#include <vector>

#include "storepulse/models/basket_model.hpp"
#include "storepulse/models/clv_model.hpp"
#include "storepulse/models/segment_model.hpp"

namespace storepulse::protocol {
struct Event;
}

namespace storepulse::models {

struct ModelSet {
  std::string dir;
  std::shared_ptr<const ClvModel> clv;
  std::shared_ptr<const SegmentModel> segments;
  std::shared_ptr<const BasketModel> baskets;

  bool empty() const { return !clv && !segments && !baskets; }
};

/// Loads `dir`. A missing folder or file means no such model. A file that does
/// not load keeps `previous`'s model of that kind (if any) and adds an error
/// line naming the file to `errors`; `notes` gets one line per model loaded.
/// Never throws.
std::shared_ptr<const ModelSet> load_models(const std::string& dir, const ModelSet* previous,
                                            std::vector<std::string>& notes,
                                            std::vector<std::string>& errors);

/// Latest modification time (ns since epoch) over the model files in `dir`,
/// plus their count: a change in either means "reload". 0 when none.
std::int64_t models_stamp(const std::string& dir);

/// After apply_event: an order refreshes CLV figures and (from the N-th order
/// of a member on) the segment. Other events leave the profile alone. No refit,
/// closed-form arithmetic only.
void update_profile(const ModelSet& models, profile::CustomerProfile& p, const protocol::Event& ev);

/// The snapshot the current thread's rules evaluate against (nullptr: none).
const ModelSet* active_models();
/// Sets it for this thread (shard workers, per batch; recovery threads).
void set_active_models(const ModelSet* models);

}  // namespace storepulse::models
