#pragma once
// Personal data routes (admin token required, checked by the caller):
//   DELETE /v1/profiles/{id}         erasure ("right to be forgotten")
//   GET    /v1/profiles/{id}/export  everything held about one customer
// Rare traffic: clarity over allocation counting. `done` runs once, on a shard
// worker thread; the caller posts the answer to its own executor.
#include <functional>
#include <string>

#include "storepulse/actions/sms_outbox.hpp"
#include "storepulse/engine/engine.hpp"

namespace storepulse::net {

using PrivacyDone = std::function<void(int status, std::string body)>;

/// Erases the profile and every id linked to it on all shards (engine), then
/// the SMS outbox entries for them; destroys their keys. 200 with counts, 404
/// when nothing was held, 503 when a store write failed (safe to retry).
void erase_customer(engine::Engine& engine, actions::SmsOutbox* outbox, std::string id,
                    PrivacyDone done);

/// `{"exportedAt","profile":{...},"sms":{...}}`: the profile as the lookup shows
/// it (traits, consent, orders, affinities, links, timers, recent events) and
/// the SMS messages and phone states, unmasked. 404 when nothing is held.
void export_customer(engine::Engine& engine, actions::SmsOutbox* outbox, std::string id,
                     PrivacyDone done);

}  // namespace storepulse::net
