#pragma once
// The rule set the server runs: rules loaded from `rules/*.yaml`, compiled once,
// evaluated per event with arbitration and guardrails.
//
// Threads: a RuleBook is immutable after loading and shared by every shard
// worker; evaluate() and fire_timer() may run concurrently on different
// profiles. Per-customer state (contacts, timers) lives in the profile, owned
// by the calling worker; the only shared mutable state is the per-rule
// counters, relaxed atomics read by describe_json() from any thread.
#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "storepulse/rules/compiler.hpp"
#include "storepulse/rules/diagnostics.hpp"
#include "storepulse/rules/quiet_hours.hpp"
#include "storepulse/rules/rule_set.hpp"

namespace storepulse::rules {

enum class Suppression : std::uint8_t {
  kCooldown,
  kCap,
  kConsent,
  kQuietHours,
  kPriority,
  kHoldout
};
inline constexpr std::size_t kSuppressionCount = 6;
std::string_view suppression_name(Suppression s);

enum class ActionChannel : std::uint8_t { kPos, kWeb, kSms };
inline constexpr std::size_t kChannelCount = 3;
std::string_view channel_str(ActionChannel c);

/// Per-rule decision counters (relaxed: they are statistics, not synchronisation).
struct RuleCounters {
  std::atomic<std::uint64_t> evaluated{0};  // the rule's trigger event (or timer) came in
  std::atomic<std::uint64_t> matched{0};    // ... and its `if` held
  std::atomic<std::uint64_t> fired{0};      // at least one action delivered
  std::atomic<std::uint64_t> held_out{0};   // would have fired, customer in the holdout group
  std::atomic<std::uint64_t> timers_armed{0};
  std::atomic<std::uint64_t> timers_cancelled{0};
  std::atomic<std::uint64_t> timers_dropped{0};  // profile already held kMaxTimers
  std::array<std::atomic<std::uint64_t>, kSuppressionCount> suppressed{};
  // Outcomes, per group (kTreated: contacted, kHoldout: would have been): an
  // order by the customer within the attribution window after the contact.
  // `converted` counts contacts followed by at least one order, `revenue` the
  // order totals (cents) of every such order.
  std::array<std::atomic<std::uint64_t>, 2> converted{};
  std::array<std::atomic<std::int64_t>, 2> revenue{};
};

inline constexpr std::size_t kGroupTreated = 0;  // index into RuleCounters::converted / revenue
inline constexpr std::size_t kGroupHoldout = 1;

/// Conversion and lift of one rule, from its counters. Rates are per contact:
/// treated contacts are `fired`, holdout contacts are `held_out`.
struct RuleOutcome {
  std::uint64_t contacts[2] = {0, 0};
  std::uint64_t converted[2] = {0, 0};
  std::int64_t revenue[2] = {0, 0};  // cents
  double rate(std::size_t g) const {
    return contacts[g] ? double(converted[g]) / double(contacts[g]) : 0.0;
  }
  double revenue_per_contact(std::size_t g) const {
    return contacts[g] ? double(revenue[g]) / 100.0 / double(contacts[g]) : 0.0;
  }
  /// Relative lift of treated over holdout (0.25 = +25 %); nullopt when the
  /// holdout has no contacts or a zero base to compare with.
  std::optional<double> conversion_lift() const;
  std::optional<double> revenue_lift() const;
};
RuleOutcome rule_outcome(const RuleCounters& c);

/// At most `max` contacts on a channel (from any rule) within `window`.
struct ChannelCap {
  ActionChannel channel = ActionChannel::kSms;
  std::uint32_t max = 0;
  TimeUs window = 0;
};

/// One action of `then:`: channel, templated text and an optional offer whose
/// text values may be templates too.
struct ActionSpec {
  ActionChannel channel = ActionChannel::kPos;
  Template text;
  struct OfferPart {
    std::string json;               // literal JSON
    std::optional<Template> value;  // rendered and quoted as a JSON string
  };
  std::vector<OfferPart> offer;  // empty: no offer
};

struct Rule {
  std::string name;
  std::string description;
  std::string file;
  std::vector<std::string> on;  // event names, for describe_json
  std::uint32_t on_mask = 0;
  std::uint32_t cancel_mask = 0;
  TimeUs wait = 0;    // a fixed wait; 0 with wait_expr set: the wait is computed
  Program wait_expr;  // `wait: max(14d, 4 * profile.purchaseIntervalDays)`: days, per customer
  std::string wait_source;  // wait_expr's text, for describe_json
  Program condition;        // empty: always
  std::vector<ActionSpec> actions;
  int priority = 0;
  TimeUs cooldown = 0;
  std::vector<ChannelCap> caps;
  std::optional<QuietHours> quiet_hours;
  std::string timezone = "UTC";
  const TimeZone* zone = nullptr;
  std::uint32_t holdout_basis_points = 0;  // of 10 000 customers
  TimeUs attribution = 7 * kUsPerDay;      // orders this long after a contact count for the rule
  bool enabled = true;
  mutable RuleCounters counters;
};

/// Bounds of a computed wait (`wait:` as an expression): a result outside is
/// clamped; a null or non-number result arms no timer (counted as dropped).
inline constexpr TimeUs kMinComputedWait = 60 * kUsPerSecond;
inline constexpr TimeUs kMaxComputedWait = 3650 * kUsPerDay;

/// Bit of an event in `on_mask` / `cancel_mask`.
std::uint32_t event_bit(const protocol::Event& ev);

class RuleBook final : public RuleSet {
 public:
  /// `rules` in any order; they are kept by descending priority, then name.
  explicit RuleBook(std::vector<std::unique_ptr<Rule>> rules);

  void evaluate(const protocol::Event& ev, profile::CustomerProfile& p,
                std::vector<protocol::Action>& out) override;
  void fire_timer(const std::string& rule, TimeUs fire_at, profile::CustomerProfile& p,
                  std::vector<protocol::Action>& out) override;
  bool order_cancels(std::string_view timer_key) const override;
  std::vector<std::string> rule_names() const override;
  std::string describe_json() const override;
  void append_prometheus(std::string& out) const override;

  const std::vector<std::unique_ptr<Rule>>& rules() const { return rules_; }
  const Rule* find(std::string_view name) const;

  /// The rules folder changed and its new content does not load: this book
  /// keeps running, and describe_json() / append_prometheus() report `errors`
  /// until a book loaded from the repaired folder replaces it. An empty list
  /// clears the report. Admin path, any thread.
  void set_rejected_change(std::vector<Diagnostic> errors);
  std::vector<Diagnostic> rejected_change() const;

  /// Whether `customer` is in `rule`'s holdout group: a hash of both, so the
  /// same customer is always in or out for a rule, on every node and replay.
  static bool in_holdout(const Rule& rule, std::string_view customer);

 private:
  /// An order: credits every rule whose attribution window for this customer
  /// it falls in (counters converted / revenue), drops closed windows.
  void credit_order(const protocol::Event& ev, profile::CustomerProfile& p) const;
  void decide(const Rule& r, const EvalContext& ctx, profile::CustomerProfile& p,
              std::string_view tz, int only_channel, bool deferred, unsigned& taken,
              std::vector<protocol::Action>& out) const;

  std::vector<std::unique_ptr<Rule>> rules_;
  std::map<std::string, const Rule*, std::less<>> by_name_;
  mutable std::mutex rejected_mu_;  // admin path only: never taken per event
  std::vector<Diagnostic> rejected_;
};

/// Loads every `*.yaml` / `*.yml` in `dir` (sorted by name). Never throws for
/// a bad rule: problems are returned as diagnostics, and `rules` is null when
/// there is any error.
struct RuleLoadResult {
  std::shared_ptr<RuleBook> rules;
  std::vector<Diagnostic> errors;
  std::vector<std::string> files;
};
RuleLoadResult load_rules(const std::string& dir);

/// The same from in-memory sources: (file name, YAML text) pairs.
RuleLoadResult load_rules_from_sources(
    const std::vector<std::pair<std::string, std::string>>& sources);

}  // namespace storepulse::rules
