#pragma once
// The interface the engine calls once per applied event. Implementations run
// on shard worker threads: evaluate() must not block, throw or share mutable
// state between shards (per-customer state lives in the profile, which the
// calling worker owns). Replay calls it too, with the same events in the same
// order, so guardrail state written to the profile comes back identical.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "storepulse/profile/profile.hpp"
#include "storepulse/protocol/codec.hpp"

namespace storepulse::rules {

class RuleSet {
 public:
  virtual ~RuleSet() = default;
  /// Appends the actions this event fires for this customer. `p` has already
  /// absorbed the event.
  virtual void evaluate(const protocol::Event& ev, profile::CustomerProfile& p,
                        std::vector<protocol::Action>& out) = 0;
  /// A timer this rule set armed in `p.timers` is due (the shard's watermark
  /// passed `fire_at`); the engine has already removed it from `p.timers`.
  /// Appends the actions it fires (after guardrails). Called on replay too.
  virtual void fire_timer(const std::string& rule, TimeUs fire_at, profile::CustomerProfile& p,
                          std::vector<protocol::Action>& out) {
    (void)rule, (void)fire_at, (void)p, (void)out;
  }
  /// Whether an `Order Completed` cancels the timer `timer_key` (a rule name, or
  /// `rule#channel`) armed. Identity merges ask it: an order by the member that
  /// came before the visitor's timer reached the member still cancels it.
  virtual bool order_cancels(std::string_view timer_key) const {
    (void)timer_key;
    return false;
  }
  /// Rule names, for logs and `/v1/rules`.
  virtual std::vector<std::string> rule_names() const = 0;
  /// JSON array describing each rule and its live counters, for `GET /v1/rules`.
  virtual std::string describe_json() const {
    std::string out = "[";
    for (const auto& n : rule_names()) {
      if (out.size() > 1) out.push_back(',');
      out += "{\"rule\":";
      protocol::append_json_string(out, n);
      out += "}";
    }
    return out + "]";
  }
  /// Appends per-rule Prometheus series (`storepulse_rule_*`) for `/metrics`.
  virtual void append_prometheus(std::string& out) const { (void)out; }
};

/// Birthday greeting at the till: on a POS `Card Swiped` (or POS order) on the
/// member's birthday (event date), once per year, a `pos` action for the cashier.
struct BirthdayGreetingOptions {
  bool enabled = true;
  std::string text =
      "Happy birthday, {traits.firstName|there}! A small gift is waiting at the till.";
  std::string offer_json = R"({"code":"BDAY","kind":"gift"})";
};

class BirthdayGreeting final : public RuleSet {
 public:
  explicit BirthdayGreeting(BirthdayGreetingOptions opts = {}) : opts_(std::move(opts)) {}
  void evaluate(const protocol::Event& ev, profile::CustomerProfile& p,
                std::vector<protocol::Action>& out) override;
  std::vector<std::string> rule_names() const override { return {"birthday-greeting"}; }

 private:
  BirthdayGreetingOptions opts_;
};

/// Loads the rule set from a rules folder (every `*.yaml`, one rule each; see
/// rule_book.hpp). Throws std::runtime_error listing every problem as
/// `file:line:col: message`, one a line; `notes` gets one line per rule loaded.
std::shared_ptr<RuleSet> load_rule_set(const std::string& dir, std::vector<std::string>& notes);

/// Expands `{path|fallback}` placeholders against a profile (traits.firstName,
/// traits.lastName, profile.homeStore, profile.points).
std::string render_template(std::string_view tmpl, const profile::CustomerProfile& p);

}  // namespace storepulse::rules
