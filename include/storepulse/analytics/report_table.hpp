#pragma once
// Every analysis renders its result as a few titled tables plus key figures, and
// one renderer turns those into a terminal table, CSV or JSON. Keeping the
// formats in one place means `--format` behaves the same for every subcommand.
#include <iosfwd>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace storepulse::analytics {

enum class OutputFormat { kTable, kCsv, kJson };

/// "table" | "csv" | "json"; false when unknown.
bool parse_output_format(std::string_view s, OutputFormat& out);

struct ReportTable {
  std::string name;   // machine name, e.g. "pareto"
  std::string title;  // human title
  std::vector<std::string> columns;
  std::vector<std::vector<std::string>> rows;
  /// Columns whose cells are numbers (right-aligned, unquoted in JSON).
  std::vector<bool> numeric;
  /// File name under `--format csv --out DIR`; empty: "<analysis>_<name>.csv".
  /// Names are unique across the analyses, so several can share one folder.
  std::string csv_file;
};

struct Report {
  std::string analysis;  // "rfm", "baskets", ...
  /// Headline figures in order: ("customers", "4338"), ...
  std::vector<std::pair<std::string, std::string>> figures;
  std::vector<ReportTable> tables;
};

/// Table format: figures as "key: value" lines, then each table with aligned
/// columns, at most `max_rows` rows per table (0 = all).
/// CSV: each table as a CSV block preceded by "# title" (figures as a key,value block):
/// a quick look on stdout; `render_csv_table` per table is what other tools read.
/// JSON: {"analysis":…, "figures":{…}, "tables":{name:[{col:val,…},…]}}.
void render_report(const Report& report, OutputFormat format, std::ostream& out,
                   std::size_t max_rows = 0);

/// One table as a plain CSV (RFC 4180): the header row, then at most `max_rows`
/// rows (0 = all). Cells holding a comma, a quote or a line break are quoted,
/// quotes doubled, so ids like `Smith, "Jr"` survive a spreadsheet or pandas.
void render_csv_table(const ReportTable& table, std::ostream& out, std::size_t max_rows = 0);
std::string csv_table(const ReportTable& table, std::size_t max_rows = 0);

struct CsvFile {
  std::string name;  // "rfm.csv"
  std::string text;  // header row + rows
};

/// What `--format csv --out DIR` writes: one plain CSV per table (named by
/// `ReportTable::csv_file`), then the figures as "<analysis>_figures.csv"
/// (key,value). No section lines inside any file.
std::vector<CsvFile> csv_files(const Report& report, std::size_t max_rows = 0);

/// Number formatting shared by the analyses.
std::string fmt_money(long long cents);                   // "1234.50"
std::string fmt_fixed(double v, int decimals);            // "0.2426"
std::string fmt_percent(double share, int decimals = 1);  // 0.253 -> "25.3"

}  // namespace storepulse::analytics
