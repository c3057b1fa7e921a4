#pragma once
// One self-contained HTML page for the analyst: inline SVG charts and tables,
// no scripts, fonts or images fetched from the network (reports get mailed and
// opened offline).
#include <optional>
#include <string>
#include <vector>

#include "storepulse/analytics/basket_rules.hpp"
#include "storepulse/analytics/channels.hpp"
#include "storepulse/analytics/clv.hpp"
#include "storepulse/analytics/grades.hpp"
#include "storepulse/analytics/report_table.hpp"
#include "storepulse/analytics/rfm.hpp"

namespace storepulse::analytics {

struct HtmlReportInput {
  std::string title = "StorePulse retail report";
  std::string source;  // input file, shown in the header
  const RfmResult* rfm = nullptr;
  const GradeResult* grades = nullptr;
  const BasketSet* baskets = nullptr;
  const BasketRuleResult* rules = nullptr;
  const ClvModel* clv = nullptr;
  const std::vector<ClvCustomer>* clv_customers = nullptr;
  const std::vector<ClvCustomerResult>* clv_results = nullptr;
  const ChannelResult* channels = nullptr;
  /// Further sections rendered as tables (e.g. segment profiles).
  std::vector<Report> extra;
  std::size_t top_rules = 25;
};

std::string render_html_report(const HtmlReportInput& in);

/// A chart's tick or value label in at most ~5 characters: 3 significant
/// digits and an SI suffix (1790000 -> "1.79M", 2500 -> "2.5k", 0.25 -> "0.25").
std::string tick_label(double v);

/// Escapes &, <, >, " for HTML text and attributes.
std::string html_escape(std::string_view s);

}  // namespace storepulse::analytics
