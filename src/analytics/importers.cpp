#include "storepulse/analytics/importers.hpp"

#include <fmt/format.h>
#include <zlib.h>

#include <charconv>
#include <cmath>
#include <filesystem>
#include <unordered_map>
#include <unordered_set>

#include "storepulse/analytics/progress.hpp"

namespace storepulse::analytics {

using protocol::Event;
using protocol::EventName;
using protocol::Money;
using protocol::Product;

// ---- TextFileReader ----------------------------------------------------------

namespace {
constexpr std::size_t kReadChunk = 1 << 18;
}

TextFileReader::~TextFileReader() {
  if (gz_) gzclose(static_cast<gzFile>(gz_));
}

Status TextFileReader::open(const std::string& path) {
  path_ = path;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    return Status(ErrorCode::kNotFound, fmt::format("{}: no such file", path));
  file_size_ = std::filesystem::file_size(path, ec);
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) return Status(ErrorCode::kNotFound, fmt::format("{}: cannot open", path));
  gzbuffer(f, 1 << 17);
  gz_ = f;
  return Status::ok();
}

std::uint64_t TextFileReader::bytes_read() const {
  if (!gz_) return 0;
  auto off = gzoffset(static_cast<gzFile>(gz_));
  return off < 0 ? 0 : static_cast<std::uint64_t>(off);
}

bool TextFileReader::refill() {
  if (eof_) return false;
  buf_.erase(0, pos_);
  pos_ = 0;
  std::size_t old = buf_.size();
  buf_.resize(old + kReadChunk);
  int n = gzread(static_cast<gzFile>(gz_), buf_.data() + old, static_cast<unsigned>(kReadChunk));
  if (n < 0) {
    int errnum = 0;
    error_ = fmt::format("{}: read error: {}", path_, gzerror(static_cast<gzFile>(gz_), &errnum));
    buf_.resize(old);
    eof_ = true;
    return false;
  }
  buf_.resize(old + static_cast<std::size_t>(n));
  if (n == 0) eof_ = true;
  return n > 0;
}

bool TextFileReader::next_line(std::string& line) {
  if (!gz_) return false;
  for (;;) {
    std::size_t nl = buf_.find('\n', pos_);
    if (nl != std::string::npos) {
      line.assign(buf_, pos_, nl - pos_);
      pos_ = nl + 1;
      break;
    }
    if (!refill()) {
      if (pos_ >= buf_.size()) return false;
      line.assign(buf_, pos_, std::string::npos);  // last line without LF
      pos_ = buf_.size();
      final_newline_ = false;
      break;
    }
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  ++line_no_;
  return true;
}

bool split_csv_line(const std::string& line, std::vector<std::string>& fields) {
  fields.clear();
  std::string cur;
  std::size_t i = 0, n = line.size();
  for (;;) {
    cur.clear();
    if (i < n && line[i] == '"') {
      ++i;
      for (;;) {
        if (i >= n) return false;
        if (line[i] == '"') {
          if (i + 1 < n && line[i + 1] == '"') {
            cur.push_back('"');
            i += 2;
          } else {
            ++i;
            break;
          }
        } else {
          cur.push_back(line[i++]);
        }
      }
      while (i < n && line[i] != ',') cur.push_back(line[i++]);  // tolerate junk after quote
    } else {
      std::size_t c = line.find(',', i);
      if (c == std::string::npos) c = n;
      cur.assign(line, i, c - i);
      i = c;
    }
    fields.push_back(cur);
    if (i >= n) break;
    ++i;  // skip comma
    if (i == n) {
      fields.emplace_back();
      break;
    }
  }
  return true;
}

namespace {

// Parses a decimal such as "2.55", "-11062.06", "18.0", "0.001" into a double
// and into cents (rounded half away from zero).
bool parse_decimal(std::string_view s, double& v) {
  if (s.empty()) return false;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  return r.ec == std::errc() && r.ptr == s.data() + s.size() && std::isfinite(v);
}

bool parse_int64(std::string_view s, std::int64_t& v) {
  if (s.empty()) return false;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

// CustomerID is written as "17850.0": strip a ".0" tail, then it must be an integer.
bool parse_customer_id(std::string_view s, std::string& out) {
  if (s.size() > 2 && s.substr(s.size() - 2) == ".0") s.remove_suffix(2);
  std::int64_t v;
  if (!parse_int64(s, v) || v < 0) return false;
  out = std::to_string(v);
  return true;
}

Status line_error(const std::string& path, std::uint64_t line, std::string_view what) {
  return Status(ErrorCode::kBadField, fmt::format("{}:{}: {}", path, line, what));
}

// "2010-12-01 08:26:00" (or ISO with T) -> epoch µs, no zone = UTC as recorded.
std::optional<TimeUs> parse_invoice_date(std::string s) {
  if (s.size() >= 11 && s[10] == ' ') s[10] = 'T';
  return parse_iso8601(s);
}

struct PendingOrder {
  Event ev;
  bool refund = false;
  bool member = false;
  std::uint64_t first_line = 0;
};

}  // namespace

// ---- Online Retail ---------------------------------------------------------

Result<OnlineRetailImportSummary> import_online_retail(const std::string& path,
                                                       const EventSink& sink,
                                                       const OnlineRetailImportOptions& opts) {
  TextFileReader in;
  if (Status s = in.open(path); !s) return s;
  OnlineRetailImportSummary sum;
  std::string line;
  std::vector<std::string> f;
  if (!in.next_line(line)) return line_error(path, 1, "empty file (expected the CSV header)");
  if (!line.empty() && static_cast<unsigned char>(line[0]) == 0xEF) line.erase(0, 3);  // BOM
  split_csv_line(line, f);
  const std::vector<std::string> kHeader = {"InvoiceNo",   "StockCode", "Description", "Quantity",
                                            "InvoiceDate", "UnitPrice", "CustomerID",  "Country"};
  if (f != kHeader)
    return line_error(path, 1,
                      "unexpected header (expected InvoiceNo,StockCode,Description,Quantity,"
                      "InvoiceDate,UnitPrice,CustomerID,Country)");

  // Invoices are almost always contiguous, but not guaranteed (one is split in
  // the UCI file), so orders are collected per invoice and emitted in first-seen
  // order at the end. 25,900 invoices fit in memory easily.
  std::unordered_map<std::string, std::size_t> index;
  std::vector<PendingOrder> orders;
  std::unordered_set<std::string> invoices, c_invoices, guest_invoices, customers_any;
  ProgressBar bar("import online-retail", opts.progress ? in.file_size() : 0);
  while (in.next_line(line)) {
    if (line.empty()) continue;
    const std::uint64_t ln = in.line_number();
    if ((ln & 4095) == 0 && opts.progress) bar.update(in.bytes_read());
    if (!split_csv_line(line, f)) return line_error(path, ln, "unterminated quoted field");
    if (f.size() != 8)
      return line_error(path, ln, fmt::format("expected 8 fields, found {}", f.size()));
    ++sum.rows;
    const std::string& invoice = f[0];
    if (invoice.empty()) return line_error(path, ln, "InvoiceNo is empty");
    invoices.insert(invoice);
    std::int64_t qty;
    if (!parse_int64(f[3], qty))
      return line_error(path, ln, fmt::format("Quantity '{}' is not an integer", f[3]));
    double price;
    if (!parse_decimal(f[5], price))
      return line_error(path, ln, fmt::format("UnitPrice '{}' is not a number", f[5]));
    auto when = parse_invoice_date(f[4]);
    if (!when)
      return line_error(path, ln, fmt::format("InvoiceDate '{}' is not YYYY-MM-DD HH:MM:SS", f[4]));
    std::string customer;
    bool member = !f[6].empty();
    if (member && !parse_customer_id(f[6], customer))
      return line_error(path, ln, fmt::format("CustomerID '{}' is not a number", f[6]));
    if (member)
      customers_any.insert(customer);
    else {
      ++sum.rows_without_customer;
      guest_invoices.insert(invoice);
    }
    const bool cancel = invoice[0] == 'C';
    if (cancel) {
      ++sum.cancellation_rows;
      c_invoices.insert(invoice);
    }
    if (invoice[0] == 'A') {
      ++sum.adjustment_rows;
      continue;
    }
    if (price <= 0) {
      ++sum.nonpositive_price_rows;
      continue;
    }
    if (!cancel && qty <= 0) {
      ++sum.nonpositive_quantity_rows;
      continue;
    }
    if (!member && opts.skip_guests) continue;
    std::int64_t units = cancel ? -qty : qty;
    if (units <= 0 || units > 100000) {
      ++sum.nonpositive_quantity_rows;
      continue;
    }
    std::string key = invoice + '|' + customer;
    auto [it, inserted] = index.try_emplace(key, orders.size());
    if (inserted) {
      PendingOrder po;
      po.refund = cancel;
      po.member = member;
      po.first_line = ln;
      Event& ev = po.ev;
      ev.type = protocol::EventType::kTrack;
      ev.name = cancel ? EventName::kOrderRefunded : EventName::kOrderCompleted;
      ev.channel = protocol::Channel::kWeb;  // the UCI retailer is a web shop
      ev.timestamp = *when;
      ev.message_id = "uci-" + invoice + (member ? "" : "-guest");
      if (member)
        ev.user_id = customer;
      else
        ev.anonymous_id = "guest-" + invoice;
      ev.order_id = invoice;
      ev.currency = opts.currency;
      ev.store_id = f[7];  // Country: the only location the data has
      orders.push_back(std::move(po));
    }
    Product p;
    p.product_id = f[1];
    p.name = f[2];
    while (!p.name.empty() && p.name.back() == ' ') p.name.pop_back();
    while (!p.name.empty() && p.name.front() == ' ') p.name.erase(0, 1);
    p.price = static_cast<Money>(std::llround(price * 100));
    p.quantity = static_cast<std::int32_t>(units);
    orders[it->second].ev.products.push_back(std::move(p));
  }
  if (!in.error().empty()) return Status(ErrorCode::kInternal, in.error());
  bar.finish();
  sum.invoices = invoices.size();
  sum.cancellation_invoices = c_invoices.size();
  sum.invoices_without_customer = guest_invoices.size();
  sum.customers_any = customers_any.size();
  std::unordered_set<std::string> members;
  bool first = true;
  for (auto& po : orders) {
    Event& ev = po.ev;
    ev.has_total = true;
    ev.total = ev.products_value();
    if (first || ev.timestamp < sum.first_time) sum.first_time = ev.timestamp;
    if (first || ev.timestamp > sum.last_time) sum.last_time = ev.timestamp;
    first = false;
    if (po.refund) {
      ++sum.refunds_emitted;
    } else {
      ++sum.orders_emitted;
      if (po.member) {
        ++sum.member_orders;
        sum.member_order_lines += ev.products.size();
        sum.member_revenue += ev.total;
        members.insert(ev.user_id);
      } else {
        ++sum.guest_orders_emitted;
      }
    }
    sink(ev);
  }
  sum.members = members.size();
  return sum;
}

// ---- CDNOW -------------------------------------------------------------------

Result<CdnowImportSummary> import_cdnow(const std::string& path, const EventSink& sink) {
  TextFileReader in;
  if (Status s = in.open(path); !s) return s;
  CdnowImportSummary sum;
  std::string line;
  std::unordered_set<std::string> customers;
  int layout = 0;  // 4 = master, 5 = sample
  while (in.next_line(line)) {
    std::vector<std::string_view> tok;
    std::string_view sv(line);
    std::size_t i = 0;
    while (i < sv.size()) {
      while (i < sv.size() && (sv[i] == ' ' || sv[i] == '\t')) ++i;
      std::size_t j = i;
      while (j < sv.size() && sv[j] != ' ' && sv[j] != '\t') ++j;
      if (j > i) tok.push_back(sv.substr(i, j - i));
      i = j;
    }
    if (tok.empty()) continue;
    if (tok[0] == "customer_id") continue;  // master header
    if (layout == 0) {
      if (tok.size() != 4 && tok.size() != 5)
        return line_error(
            path, in.line_number(),
            fmt::format("expected 4 (master) or 5 (sample) fields, found {}", tok.size()));
      layout = static_cast<int>(tok.size());
      sum.sample_layout = layout == 5;
    }
    if (static_cast<int>(tok.size()) != layout)
      return line_error(path, in.line_number(),
                        fmt::format("expected {} fields, found {}", layout, tok.size()));
    const std::string_view id = tok[layout == 5 ? 1 : 0];
    const std::string_view date = tok[layout - 3];
    std::int64_t cds, ymd;
    double dollars;
    if (date.size() != 8 || !parse_int64(date, ymd))
      return line_error(path, in.line_number(), fmt::format("date '{}' is not YYYYMMDD", date));
    if (!parse_int64(tok[layout - 2], cds) || cds < 0)
      return line_error(path, in.line_number(),
                        fmt::format("number of CDs '{}' is not a count", tok[layout - 2]));
    if (!parse_decimal(tok[layout - 1], dollars) || dollars < 0)
      return line_error(path, in.line_number(),
                        fmt::format("dollar value '{}' is not an amount", tok[layout - 1]));
    int y = static_cast<int>(ymd / 10000);
    unsigned m = static_cast<unsigned>(ymd / 100 % 100), d = static_cast<unsigned>(ymd % 100);
    if (m < 1 || m > 12 || d < 1 || d > 31)
      return line_error(path, in.line_number(),
                        fmt::format("date '{}' is not a calendar date", date));
    Event ev;
    ev.type = protocol::EventType::kTrack;
    ev.name = EventName::kOrderCompleted;
    ev.channel = protocol::Channel::kWeb;
    // Strip zero padding so "0001" and the summary CSV's "1" name the same customer.
    std::int64_t idn;
    ev.user_id = parse_int64(id, idn) ? std::to_string(idn) : std::string(id);
    ev.timestamp = days_from_civil(y, m, d) * kUsPerDay;
    ev.message_id = fmt::format("cdnow-{}", in.line_number());
    ev.order_id = ev.message_id;
    ev.currency = "USD";
    ev.has_total = true;
    ev.total = static_cast<Money>(std::llround(dollars * 100));
    if (cds > 0) {
      Product p;
      p.product_id = "CD";
      p.quantity = static_cast<std::int32_t>(std::min<std::int64_t>(cds, 100000));
      p.price = static_cast<Money>(std::llround(dollars * 100 / static_cast<double>(cds)));
      ev.products.push_back(std::move(p));
    }
    ++sum.rows;
    sum.revenue += ev.total;
    customers.insert(ev.user_id);
    sink(ev);
  }
  if (!in.error().empty()) return Status(ErrorCode::kInternal, in.error());
  if (sum.rows == 0) return line_error(path, in.line_number(), "no transactions found");
  sum.customers = customers.size();
  return sum;
}

// ---- Baskets -------------------------------------------------------------------

namespace {
Status read_baskets(const std::string& path,
                    const std::function<void(std::vector<std::string>&)>& each,
                    BasketImportSummary& sum) {
  TextFileReader in;
  if (Status s = in.open(path); !s) return s;
  std::string line;
  std::vector<std::string> items;
  std::unordered_set<std::string> distinct;
  while (in.next_line(line)) {
    if (line.empty()) {
      ++sum.empty_lines;
      continue;
    }
    if (!split_csv_line(line, items))
      return line_error(path, in.line_number(), "unterminated quoted item");
    std::vector<std::string> basket;
    std::unordered_set<std::string> seen;
    for (auto& it : items) {
      if (it.empty()) continue;  // "a,b,," padding
      if (!seen.insert(it).second) {
        ++sum.duplicate_items;
        continue;
      }
      distinct.insert(it);
      basket.push_back(std::move(it));
    }
    if (basket.empty()) {
      ++sum.empty_lines;
      continue;
    }
    ++sum.baskets;
    sum.items += basket.size();
    each(basket);
  }
  if (!in.error().empty()) return Status(ErrorCode::kInternal, in.error());
  sum.distinct_items = distinct.size();
  return Status::ok();
}
}  // namespace

Result<BasketImportSummary> import_baskets(const std::string& path, const EventSink& sink,
                                           TimeUs start) {
  BasketImportSummary sum;
  std::uint64_t n = 0;
  Status s = read_baskets(
      path,
      [&](std::vector<std::string>& basket) {
        Event ev;
        ev.type = protocol::EventType::kTrack;
        ev.name = EventName::kOrderCompleted;
        ev.channel = protocol::Channel::kPos;
        ev.timestamp = start + static_cast<TimeUs>(n) * 60 * kUsPerSecond;
        ev.message_id = fmt::format("basket-{}", n + 1);
        ev.anonymous_id = ev.message_id;
        ev.order_id = ev.message_id;
        ev.has_total = true;
        for (auto& item : basket) {
          Product p;
          p.product_id = std::move(item);
          ev.products.push_back(std::move(p));
        }
        ++n;
        sink(ev);
      },
      sum);
  if (!s) return s;
  return sum;
}

Result<std::vector<std::vector<std::string>>> read_basket_file(const std::string& path) {
  BasketImportSummary sum;
  std::vector<std::vector<std::string>> out;
  Status s = read_baskets(
      path, [&](std::vector<std::string>& b) { out.push_back(std::move(b)); }, sum);
  if (!s) return s;
  return out;
}

}  // namespace storepulse::analytics
