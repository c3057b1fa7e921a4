#include "storepulse/analytics/report_table.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <ostream>
#include <sstream>

#include "storepulse/protocol/codec.hpp"

namespace storepulse::analytics {

bool parse_output_format(std::string_view s, OutputFormat& out) {
  if (s == "table")
    out = OutputFormat::kTable;
  else if (s == "csv")
    out = OutputFormat::kCsv;
  else if (s == "json")
    out = OutputFormat::kJson;
  else
    return false;
  return true;
}

std::string fmt_money(long long cents) {
  bool neg = cents < 0;
  unsigned long long a =
      neg ? 0ULL - static_cast<unsigned long long>(cents) : static_cast<unsigned long long>(cents);
  return fmt::format("{}{}.{:02}", neg ? "-" : "", a / 100, a % 100);
}

std::string fmt_fixed(double v, int decimals) {
  if (!std::isfinite(v)) return std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
  return fmt::format("{:.{}f}", v, decimals);
}

std::string fmt_percent(double share, int decimals) {
  return fmt_fixed(share * 100.0, decimals);
}

namespace {

std::string csv_cell(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string o = "\"";
  for (char c : s) {
    if (c == '"')
      o += "\"\"";
    else
      o.push_back(c);
  }
  o.push_back('"');
  return o;
}

bool is_json_number(const std::string& s) {
  if (s.empty()) return false;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size() && std::isfinite(v);
}

void render_table(const Report& r, std::ostream& out, std::size_t max_rows) {
  for (const auto& [k, v] : r.figures) out << k << ": " << v << '\n';
  for (const auto& t : r.tables) {
    out << '\n' << t.title << '\n';
    std::size_t n = max_rows == 0 ? t.rows.size() : std::min(max_rows, t.rows.size());
    std::vector<std::size_t> w(t.columns.size());
    for (std::size_t c = 0; c < t.columns.size(); ++c) w[c] = t.columns[c].size();
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t c = 0; c < t.rows[i].size() && c < w.size(); ++c)
        w[c] = std::max(w[c], t.rows[i][c].size());
    auto line = [&](const std::vector<std::string>& cells) {
      for (std::size_t c = 0; c < w.size(); ++c) {
        const std::string& s = c < cells.size() ? cells[c] : std::string();
        bool right = c < t.numeric.size() && t.numeric[c];
        if (c) out << "  ";
        if (right)
          out << std::string(w[c] - s.size(), ' ') << s;
        else
          out << s << (c + 1 < w.size() ? std::string(w[c] - s.size(), ' ') : "");
      }
      out << '\n';
    };
    line(t.columns);
    std::vector<std::string> rule;
    for (auto x : w) rule.emplace_back(x, '-');
    line(rule);
    for (std::size_t i = 0; i < n; ++i) line(t.rows[i]);
    if (n < t.rows.size())
      out << "... " << (t.rows.size() - n) << " more rows (use --limit 0 or --format csv)\n";
  }
}

void render_csv(const Report& r, std::ostream& out, std::size_t max_rows) {
  if (!r.figures.empty()) {
    out << "# figures\nkey,value\n";
    for (const auto& [k, v] : r.figures) out << csv_cell(k) << ',' << csv_cell(v) << '\n';
  }
  for (const auto& t : r.tables) {
    out << "# " << t.title << '\n';
    render_csv_table(t, out, max_rows);
  }
}

void render_json(const Report& r, std::ostream& out, std::size_t max_rows) {
  std::string s = "{\"analysis\":";
  protocol::append_json_string(s, r.analysis);
  s += ",\"figures\":{";
  for (std::size_t i = 0; i < r.figures.size(); ++i) {
    if (i) s.push_back(',');
    protocol::append_json_string(s, r.figures[i].first);
    s.push_back(':');
    if (is_json_number(r.figures[i].second))
      s += r.figures[i].second;
    else
      protocol::append_json_string(s, r.figures[i].second);
  }
  s += "},\"tables\":{";
  for (std::size_t ti = 0; ti < r.tables.size(); ++ti) {
    const auto& t = r.tables[ti];
    if (ti) s.push_back(',');
    protocol::append_json_string(s, t.name);
    s += ":[";
    std::size_t n = max_rows == 0 ? t.rows.size() : std::min(max_rows, t.rows.size());
    for (std::size_t i = 0; i < n; ++i) {
      if (i) s.push_back(',');
      s.push_back('{');
      for (std::size_t c = 0; c < t.columns.size() && c < t.rows[i].size(); ++c) {
        if (c) s.push_back(',');
        protocol::append_json_string(s, t.columns[c]);
        s.push_back(':');
        bool num = c < t.numeric.size() && t.numeric[c] && is_json_number(t.rows[i][c]);
        if (num)
          s += t.rows[i][c];
        else
          protocol::append_json_string(s, t.rows[i][c]);
      }
      s.push_back('}');
    }
    s.push_back(']');
  }
  s += "}}\n";
  out << s;
}

}  // namespace

void render_csv_table(const ReportTable& t, std::ostream& out, std::size_t max_rows) {
  for (std::size_t c = 0; c < t.columns.size(); ++c)
    out << (c ? "," : "") << csv_cell(t.columns[c]);
  out << '\n';
  std::size_t n = max_rows == 0 ? t.rows.size() : std::min(max_rows, t.rows.size());
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t c = 0; c < t.rows[i].size(); ++c)
      out << (c ? "," : "") << csv_cell(t.rows[i][c]);
    out << '\n';
  }
}

std::string csv_table(const ReportTable& table, std::size_t max_rows) {
  std::ostringstream s;
  render_csv_table(table, s, max_rows);
  return s.str();
}

std::vector<CsvFile> csv_files(const Report& report, std::size_t max_rows) {
  std::vector<CsvFile> out;
  for (const auto& t : report.tables)
    out.push_back({t.csv_file.empty() ? report.analysis + "_" + t.name + ".csv" : t.csv_file,
                   csv_table(t, max_rows)});
  if (!report.figures.empty()) {
    ReportTable f;
    f.columns = {"key", "value"};
    for (const auto& [k, v] : report.figures) f.rows.push_back({k, v});
    out.push_back({report.analysis + "_figures.csv", csv_table(f)});
  }
  return out;
}

void render_report(const Report& report, OutputFormat format, std::ostream& out,
                   std::size_t max_rows) {
  switch (format) {
    case OutputFormat::kTable: render_table(report, out, max_rows); break;
    case OutputFormat::kCsv: render_csv(report, out, max_rows); break;
    case OutputFormat::kJson: render_json(report, out, max_rows); break;
  }
}

}  // namespace storepulse::analytics
