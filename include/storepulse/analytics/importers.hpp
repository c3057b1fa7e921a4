#pragma once
// Importers turn retailer files into protocol events (NDJSON, one event a line)
// so every analysis and the engine's replay read one format.
// All readers accept plain or gzip input (zlib reads both transparently).
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "storepulse/common/status.hpp"
#include "storepulse/protocol/event.hpp"

namespace storepulse::analytics {

/// Line-at-a-time reader over a plain or gzip file. Strips a trailing CR.
class TextFileReader {
 public:
  TextFileReader() = default;
  ~TextFileReader();
  TextFileReader(const TextFileReader&) = delete;
  TextFileReader& operator=(const TextFileReader&) = delete;

  Status open(const std::string& path);
  /// False at end of file (or on a read error: check error()).
  bool next_line(std::string& line);
  std::uint64_t line_number() const { return line_no_; }
  /// Bytes of the (compressed) file consumed so far, for progress bars.
  std::uint64_t bytes_read() const;
  std::uint64_t file_size() const { return file_size_; }
  const std::string& error() const { return error_; }
  bool had_final_newline() const { return final_newline_; }

 private:
  bool refill();
  void* gz_ = nullptr;
  std::string buf_;
  std::size_t pos_ = 0;
  bool eof_ = false;
  bool final_newline_ = true;
  std::uint64_t line_no_ = 0;
  std::uint64_t file_size_ = 0;
  std::string error_;
  std::string path_;
};

/// Splits one RFC-4180 CSV line (no embedded line breaks) into fields.
/// False when a quoted field is not closed.
bool split_csv_line(const std::string& line, std::vector<std::string>& fields);

/// Receives each imported event; the CLI writes it as NDJSON.
using EventSink = std::function<void(const protocol::Event&)>;

struct OnlineRetailImportOptions {
  /// Rows without a CustomerID: emitted as guest orders (anonymousId
  /// "guest-<invoice>") by default, or skipped; counted either way.
  bool skip_guests = false;
  std::string currency = "GBP";
  bool progress = true;
};

struct OnlineRetailImportSummary {
  std::uint64_t rows = 0;
  std::uint64_t invoices = 0;               // distinct InvoiceNo
  std::uint64_t rows_without_customer = 0;  // empty CustomerID
  std::uint64_t invoices_without_customer = 0;
  std::uint64_t guest_orders_emitted = 0;  // orders from those rows (unless skipped)
  std::uint64_t cancellation_rows = 0;     // C-prefixed invoices
  std::uint64_t cancellation_invoices = 0;
  std::uint64_t refunds_emitted = 0;            // Order Refunded events
  std::uint64_t adjustment_rows = 0;            // A-prefixed invoices ("Adjust bad debt"), skipped
  std::uint64_t nonpositive_quantity_rows = 0;  // non-C rows with Quantity <= 0, skipped
  std::uint64_t nonpositive_price_rows = 0;     // rows with UnitPrice <= 0, skipped
  std::uint64_t orders_emitted = 0;             // Order Completed events
  std::uint64_t member_orders = 0;              // ... with a userId
  std::uint64_t member_order_lines = 0;         // product lines in member orders
  std::uint64_t members = 0;                    // distinct CustomerID with an order
  std::uint64_t customers_any = 0;              // distinct non-empty CustomerID in the file
  protocol::Money member_revenue = 0;           // cents, Σ qty × price of member orders
  TimeUs first_time = 0;
  TimeUs last_time = 0;
};

/// UCI Online Retail layout:
/// InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country.
/// Invoice -> `Order Completed` (lines with Quantity > 0 and UnitPrice > 0);
/// C-invoice -> `Order Refunded` (quantities made positive); A-invoices skipped.
/// Errors name the file and line.
Result<OnlineRetailImportSummary> import_online_retail(const std::string& path,
                                                       const EventSink& sink,
                                                       const OnlineRetailImportOptions& opts = {});

struct CdnowImportSummary {
  std::uint64_t rows = 0;
  std::uint64_t customers = 0;
  bool sample_layout = false;  // 5 fields: master id, sample id, date, cds, dollars
  protocol::Money revenue = 0;
};

/// CDNOW master (customer_id date cds dollars, header line) or sample
/// (master_id sample_id date cds dollars, no header) layout; whitespace-separated.
/// Each row -> `Order Completed` (userId = sample id for the sample layout, so
/// ids match the lifetimes summary CSVs) with one product line of `cds` CDs.
Result<CdnowImportSummary> import_cdnow(const std::string& path, const EventSink& sink);

struct BasketImportSummary {
  std::uint64_t baskets = 0;
  std::uint64_t items = 0;  // item occurrences after de-duplication
  std::uint64_t distinct_items = 0;
  std::uint64_t duplicate_items = 0;  // repeated items within a basket, dropped
  std::uint64_t empty_lines = 0;
};

/// One basket per line, items separated by commas (the arules "basket" format).
/// Basket n -> `Order Completed` by anonymous "basket-<n>" at start + n minutes.
Result<BasketImportSummary> import_baskets(const std::string& path, const EventSink& sink,
                                           TimeUs start);

/// Reads a basket CSV straight into item lists (for the basket miner and tests).
Result<std::vector<std::vector<std::string>>> read_basket_file(const std::string& path);

}  // namespace storepulse::analytics
