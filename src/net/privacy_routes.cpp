#include "net/privacy_routes.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "storepulse/common/time.hpp"
#include "storepulse/protocol/codec.hpp"

namespace storepulse::net {

void erase_customer(engine::Engine& engine, actions::SmsOutbox* outbox, std::string id,
                    PrivacyDone done) {
  engine.erase_profile(std::move(id), [outbox, done = std::move(done)](engine::ErasureResult r) {
    std::size_t sms = 0;
    // Not when a store write failed (the retry does it) or another node serves the customer.
    if (outbox && (r.status == 200 || r.status == 404)) {
      auto e = outbox->erase_customer(r.subjects, r.phones);
      if (!e.is_ok()) {
        r.status = 503;
        r.error = e.status().detail();
      } else {
        sms = *e;
        if (r.status == 404 && sms > 0) r.status = 200;
      }
    }
    // The log names no customer: an erased id must not live on in it either.
    if (r.status == 200)
      spdlog::info("erasure: {} profiles and {} keys destroyed, {} SMS messages removed",
                   r.profiles, r.keys, sms);
    else
      spdlog::warn("erasure answered {}: {}", r.status, r.status == 404 ? "nothing held" : r.error);
    std::string body;
    if (r.status != 200) {
      const char* code = r.status == 404   ? "not_found"
                         : r.status == 421 ? "wrong_node"
                                           : "unavailable";
      body = fmt::format(R"({{"error":"{}","detail":)", code);
      protocol::append_json_string(body, r.error);
      body += "}";
    } else {
      body = "{\"erased\":";
      protocol::append_json_string(body, r.subjects.front());
      body += ",\"ids\":[";
      for (std::size_t i = 0; i < r.subjects.size(); ++i) {
        if (i) body.push_back(',');
        protocol::append_json_string(body, r.subjects[i]);
      }
      body +=
          fmt::format("],\"profiles\":{},\"keys\":{},\"smsMessages\":{}", r.profiles, r.keys, sms);
      if (!r.shards_not_served.empty()) {
        // Several nodes: the others hold their own shards; the caller sends them the same DELETE.
        body += ",\"shardsNotServed\":[";
        for (std::size_t i = 0; i < r.shards_not_served.size(); ++i)
          body += (i ? "," : "") + std::to_string(r.shards_not_served[i]);
        body += "]";
      }
      body += "}";
    }
    done(r.status, std::move(body));
  });
}

void export_customer(engine::Engine& engine, actions::SmsOutbox* outbox, std::string id,
                     PrivacyDone done) {
  engine.query_profile(id, [outbox, id, done = std::move(done)](int status, std::string profile) {
    std::string sms = outbox ? outbox->customer_json({id}, {}) : std::string("null");
    const bool sms_empty = sms == "null" || sms == R"({"phones":[],"messages":[]})";
    if (status != 200 && sms_empty) return done(status, std::move(profile));
    std::string body = "{\"exportedAt\":";
    protocol::append_json_string(body, format_iso8601(wall_clock_us()));
    body += ",\"id\":";
    protocol::append_json_string(body, id);
    body += ",\"profile\":";
    body += status == 200 ? profile : std::string("null");
    body += ",\"sms\":";
    body += sms;
    body += "}";
    done(200, std::move(body));
  });
}

}  // namespace storepulse::net
