#include "storepulse/analytics/segments.hpp"

#include <fmt/format.h>
#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <numeric>
#include <ostream>
#include <random>
#include <set>
#include <sstream>
#include <unordered_map>

#include "storepulse/protocol/codec.hpp"

namespace storepulse::analytics {

using protocol::Event;
using protocol::EventName;
using protocol::EventType;

namespace {

constexpr int kD = kSegmentFeatureCount;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// Feature names (model files): models::segment_feature_name.
constexpr std::string_view kFeatureTitles[kD] = {
    "units/order",  "orders/week", "discount %",   "promo lines %", "brand HHI", "everyday %",
    "cat. entropy", "price index", "home store %", "hour sd",       "gap CV"};

// Slugs for neutral segment names ("high-orders-per-week/low-price-level").
constexpr std::string_view kFeatureSlugs[kD] = {
    "units-per-order", "orders-per-week", "discount-share",   "promo-share",
    "brand-focus",     "everyday-share",  "category-variety", "price-level",
    "home-store",      "hour-spread",     "gap-variation"};

// The four shopping types of RETAIL.md and how each shows in the standardised
// centroid. A cluster gets the name whose signature its centroid matches best,
// and only when the feature the name claims is there: `backing` lists the
// features of which at least one must sit kBackingZ deviations above the
// members' mean. Data without brands (Online Retail) has brand focus constant,
// standardised to 0, so no cluster there can be "brand-loyal".
struct TypeSignature {
  std::string_view name;
  std::array<double, kD> weight;
  std::array<int, 2> backing;  // feature indexes, -1 = none
};
constexpr double kBackingZ = 0.5;
constexpr TypeSignature kSignatures[] = {
    // basket, freq, disc, promo, brand, everyday, entropy, price, home, hour, gap
    {"price-sensitive",
     {0, 0, 1, 1, -0.5, 0, 0.5, -1, -0.5, 0, 0},
     {kFeatDiscountShare, kFeatPromoLineShare}},
    {"supermarket-type", {1.5, 0, 0, 0, 0, 0.5, 0, 0, 0, -0.5, -1}, {kFeatLogBasketUnits, -1}},
    {"brand-loyal",
     {-0.5, -0.5, -0.5, -0.5, 1.5, -1, -0.5, 1, 0, 0, 0},
     {kFeatBrandConcentration, -1}},
    {"nearby-resident", {-0.5, 1.5, 0, 0, 0, 0.5, 0, 0, 0.5, 1, 0}, {kFeatLogOrdersPerWeek, -1}},
};
constexpr int kSignatureCount = static_cast<int>(std::size(kSignatures));

bool backed(const TypeSignature& s, const FeatureVector& centroid) {
  for (int f : s.backing)
    if (f >= 0 && centroid[static_cast<std::size_t>(f)] >= kBackingZ) return true;
  return false;
}

// A name for a cluster no type fits: its two most distinctive features
// (largest |z|), e.g. "high-units-per-order/low-orders-per-week".
std::string neutral_name(const FeatureVector& centroid) {
  std::array<int, kD> idx;
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) {
    return std::fabs(centroid[static_cast<std::size_t>(a)]) >
           std::fabs(centroid[static_cast<std::size_t>(b)]);
  });
  std::string name;
  for (int i = 0; i < 2; ++i) {
    const double z = centroid[static_cast<std::size_t>(idx[static_cast<std::size_t>(i)])];
    if (std::fabs(z) < 0.05) break;  // nothing distinctive left
    if (!name.empty()) name += '/';
    name += z > 0 ? "high-" : "low-";
    name += kFeatureSlugs[idx[static_cast<std::size_t>(i)]];
  }
  return name.empty() ? "average" : name;
}

// Deterministic sampling on std::mt19937_64 (its sequence is standard; the
// <random> distributions are not).
class FitRng {
 public:
  explicit FitRng(std::uint64_t seed) : gen_(seed) {}
  double uniform() { return static_cast<double>(gen_() >> 11) * 0x1.0p-53; }
  std::size_t below(std::size_t n) {
    return static_cast<std::size_t>((static_cast<unsigned __int128>(gen_()) * n) >> 64);
  }

 private:
  std::mt19937_64 gen_;
};

double sq_dist(const FeatureVector& a, const FeatureVector& b) {
  double s = 0;
  for (int j = 0; j < kD; ++j) {
    double d = a[static_cast<std::size_t>(j)] - b[static_cast<std::size_t>(j)];
    s += d * d;
  }
  return s;
}

struct OrderView {
  TimeUs t;
  const Event* ev;
};

// ---- k-means -----------------------------------------------------------------
struct KMeansResult {
  std::vector<FeatureVector> centroids;
  std::vector<int> labels;
  double inertia = std::numeric_limits<double>::infinity();
};

KMeansResult kmeans_once(const std::vector<FeatureVector>& x, int k, FitRng& rng) {
  const std::size_t n = x.size();
  KMeansResult r;
  // k-means++ seeding.
  r.centroids.push_back(x[rng.below(n)]);
  std::vector<double> d2(n);
  for (std::size_t i = 0; i < n; ++i) d2[i] = sq_dist(x[i], r.centroids[0]);
  while (static_cast<int>(r.centroids.size()) < k) {
    double sum = std::accumulate(d2.begin(), d2.end(), 0.0);
    std::size_t pick = rng.below(n);
    if (sum > 0) {
      double u = rng.uniform() * sum;
      for (std::size_t i = 0; i < n; ++i) {
        if (u < d2[i]) {
          pick = i;
          break;
        }
        u -= d2[i];
      }
    }
    r.centroids.push_back(x[pick]);
    for (std::size_t i = 0; i < n; ++i) d2[i] = std::min(d2[i], sq_dist(x[i], r.centroids.back()));
  }
  // Lloyd iterations.
  r.labels.assign(n, -1);
  for (int iter = 0; iter < 200; ++iter) {
    bool changed = false;
    for (std::size_t i = 0; i < n; ++i) {
      int best = 0;
      double bd = sq_dist(x[i], r.centroids[0]);
      for (int c = 1; c < k; ++c) {
        double d = sq_dist(x[i], r.centroids[static_cast<std::size_t>(c)]);
        if (d < bd) {
          bd = d;
          best = c;
        }
      }
      if (r.labels[i] != best) {
        r.labels[i] = best;
        changed = true;
      }
    }
    if (!changed) break;
    std::vector<FeatureVector> sum(static_cast<std::size_t>(k), FeatureVector{});
    std::vector<std::size_t> cnt(static_cast<std::size_t>(k), 0);
    for (std::size_t i = 0; i < n; ++i) {
      auto c = static_cast<std::size_t>(r.labels[i]);
      ++cnt[c];
      for (int j = 0; j < kD; ++j)
        sum[c][static_cast<std::size_t>(j)] += x[i][static_cast<std::size_t>(j)];
    }
    for (int c = 0; c < k; ++c) {
      auto cc = static_cast<std::size_t>(c);
      if (cnt[cc] == 0) {
        // An emptied cluster restarts at the point farthest from its centroid.
        std::size_t far = 0;
        double fd = -1;
        for (std::size_t i = 0; i < n; ++i) {
          double d = sq_dist(x[i], r.centroids[static_cast<std::size_t>(r.labels[i])]);
          if (d > fd) {
            fd = d;
            far = i;
          }
        }
        r.centroids[cc] = x[far];
        continue;
      }
      for (int j = 0; j < kD; ++j)
        r.centroids[cc][static_cast<std::size_t>(j)] =
            sum[cc][static_cast<std::size_t>(j)] / static_cast<double>(cnt[cc]);
    }
  }
  r.inertia = 0;
  for (std::size_t i = 0; i < n; ++i)
    r.inertia += sq_dist(x[i], r.centroids[static_cast<std::size_t>(r.labels[i])]);
  return r;
}

KMeansResult kmeans(const std::vector<FeatureVector>& x, int k, int restarts, std::uint64_t seed) {
  KMeansResult best;
  FitRng rng(seed * 1000003ULL + static_cast<std::uint64_t>(k));
  for (int r = 0; r < std::max(1, restarts); ++r) {
    KMeansResult cur = kmeans_once(x, k, rng);
    if (cur.inertia < best.inertia) best = std::move(cur);
  }
  return best;
}

// Mean silhouette over `sample` (indexes into x).
double silhouette(const std::vector<FeatureVector>& x, const std::vector<int>& labels, int k,
                  const std::vector<std::size_t>& sample) {
  double total = 0;
  std::size_t counted = 0;
  std::vector<double> sum(static_cast<std::size_t>(k));
  std::vector<std::size_t> cnt(static_cast<std::size_t>(k));
  for (std::size_t i : sample) {
    std::fill(sum.begin(), sum.end(), 0.0);
    std::fill(cnt.begin(), cnt.end(), 0);
    for (std::size_t j : sample) {
      if (j == i) continue;
      auto c = static_cast<std::size_t>(labels[j]);
      sum[c] += std::sqrt(sq_dist(x[i], x[j]));
      ++cnt[c];
    }
    auto own = static_cast<std::size_t>(labels[i]);
    if (cnt[own] == 0) {
      ++counted;  // a singleton scores 0 by convention
      continue;
    }
    double a = sum[own] / static_cast<double>(cnt[own]);
    double b = std::numeric_limits<double>::infinity();
    for (std::size_t c = 0; c < sum.size(); ++c)
      if (c != own && cnt[c] > 0) b = std::min(b, sum[c] / static_cast<double>(cnt[c]));
    if (!std::isfinite(b)) continue;
    total += (b - a) / std::max(a, b);
    ++counted;
  }
  return counted ? total / static_cast<double>(counted) : 0.0;
}

// Names clusters: the injective assignment of type names to clusters with the
// highest total signature score, a name only where its score is positive and
// its feature backs it (above); clusters left over get a neutral name from
// their top traits.
std::vector<std::string> name_clusters(const std::vector<FeatureVector>& centroids) {
  const int k = static_cast<int>(centroids.size());
  std::vector<std::vector<double>> score(static_cast<std::size_t>(k),
                                         std::vector<double>(kSignatureCount));
  for (int c = 0; c < k; ++c)
    for (int s = 0; s < kSignatureCount; ++s) {
      double v = 0;
      for (int j = 0; j < kD; ++j)
        v += kSignatures[s].weight[static_cast<std::size_t>(j)] *
             centroids[static_cast<std::size_t>(c)][static_cast<std::size_t>(j)];
      score[static_cast<std::size_t>(c)][static_cast<std::size_t>(s)] = v;
    }
  // Exhaustive over assignments cluster -> signature or none (k <= 8, 4 names:
  // tiny). Every allowed pair scores > 0, so naming more clusters always wins.
  std::vector<int> cur(static_cast<std::size_t>(k), -1), best = cur;
  double best_score = 0;
  std::vector<bool> used(kSignatureCount, false);
  auto allowed = [&](int c, int s) {
    return score[static_cast<std::size_t>(c)][static_cast<std::size_t>(s)] > 0 &&
           backed(kSignatures[s], centroids[static_cast<std::size_t>(c)]);
  };
  auto rec = [&](auto&& self, int c, double acc) -> void {
    if (c == k) {
      if (acc > best_score) {
        best_score = acc;
        best = cur;
      }
      return;
    }
    cur[static_cast<std::size_t>(c)] = -1;  // this cluster unnamed
    self(self, c + 1, acc);
    for (int s = 0; s < kSignatureCount; ++s) {
      if (used[static_cast<std::size_t>(s)] || !allowed(c, s)) continue;
      used[static_cast<std::size_t>(s)] = true;
      cur[static_cast<std::size_t>(c)] = s;
      self(self, c + 1, acc + score[static_cast<std::size_t>(c)][static_cast<std::size_t>(s)]);
      used[static_cast<std::size_t>(s)] = false;
    }
    cur[static_cast<std::size_t>(c)] = -1;
  };
  rec(rec, 0, 0.0);
  std::vector<std::string> out(static_cast<std::size_t>(k));
  std::map<std::string, int> seen;
  for (int c = 0; c < k; ++c) {
    int s = best[static_cast<std::size_t>(c)];
    std::string name = s >= 0 ? std::string(kSignatures[s].name)
                              : neutral_name(centroids[static_cast<std::size_t>(c)]);
    // Two unnamed clusters may share their top traits: names stay unique.
    if (int n = ++seen[name]; n > 1) name += fmt::format("-{}", n);
    out[static_cast<std::size_t>(c)] = std::move(name);
  }
  return out;
}

// Solves A x = b for symmetric positive definite A (Cholesky); A is d x d row-major.
bool cholesky_solve(std::vector<double> a, int d, std::vector<double>& b) {
  for (int j = 0; j < d; ++j) {
    double s = a[static_cast<std::size_t>(j * d + j)];
    for (int k = 0; k < j; ++k)
      s -= a[static_cast<std::size_t>(j * d + k)] * a[static_cast<std::size_t>(j * d + k)];
    if (s <= 0) return false;
    double l = std::sqrt(s);
    a[static_cast<std::size_t>(j * d + j)] = l;
    for (int i = j + 1; i < d; ++i) {
      double t = a[static_cast<std::size_t>(i * d + j)];
      for (int k = 0; k < j; ++k)
        t -= a[static_cast<std::size_t>(i * d + k)] * a[static_cast<std::size_t>(j * d + k)];
      a[static_cast<std::size_t>(i * d + j)] = t / l;
    }
  }
  for (int i = 0; i < d; ++i) {  // L y = b
    double t = b[static_cast<std::size_t>(i)];
    for (int k = 0; k < i; ++k)
      t -= a[static_cast<std::size_t>(i * d + k)] * b[static_cast<std::size_t>(k)];
    b[static_cast<std::size_t>(i)] = t / a[static_cast<std::size_t>(i * d + i)];
  }
  for (int i = d - 1; i >= 0; --i) {  // L^T x = y
    double t = b[static_cast<std::size_t>(i)];
    for (int k = i + 1; k < d; ++k)
      t -= a[static_cast<std::size_t>(k * d + i)] * b[static_cast<std::size_t>(k)];
    b[static_cast<std::size_t>(i)] = t / a[static_cast<std::size_t>(i * d + i)];
  }
  return true;
}

// ---- choice of k ------------------------------------------------------------

// Gap statistic (Tibshirani, Walther & Hastie 2001) on `x`: log W_k of the
// data against its mean over `refs` data sets drawn uniformly from the box
// the data span, per k in k_lo..k_hi (W_k: k-means within-cluster sum of
// squares). Returns (gap, s_k) per k.
std::vector<std::pair<double, double>> gap_statistic(const std::vector<FeatureVector>& x, int k_lo,
                                                     int k_hi, int refs, int restarts,
                                                     std::uint64_t seed) {
  FeatureVector lo, hi;
  lo.fill(std::numeric_limits<double>::infinity());
  hi.fill(-std::numeric_limits<double>::infinity());
  for (const auto& v : x)
    for (std::size_t j = 0; j < static_cast<std::size_t>(kD); ++j) {
      lo[j] = std::min(lo[j], v[j]);
      hi[j] = std::max(hi[j], v[j]);
    }
  FitRng rng(seed ^ 0x6a9u);
  std::vector<std::vector<FeatureVector>> ref_sets(static_cast<std::size_t>(std::max(1, refs)));
  for (auto& set : ref_sets) {
    set.resize(x.size());
    for (auto& v : set)
      for (std::size_t j = 0; j < static_cast<std::size_t>(kD); ++j)
        v[j] = lo[j] + rng.uniform() * (hi[j] - lo[j]);
  }
  std::vector<std::pair<double, double>> out;
  for (int k = k_lo; k <= k_hi; ++k) {
    const double log_w = std::log(std::max(1e-300, kmeans(x, k, restarts, seed).inertia));
    std::vector<double> log_ref;
    for (const auto& set : ref_sets)
      log_ref.push_back(std::log(std::max(1e-300, kmeans(set, k, 2, seed + 17).inertia)));
    const double b = static_cast<double>(log_ref.size());
    const double mean = std::accumulate(log_ref.begin(), log_ref.end(), 0.0) / b;
    double var = 0;
    for (double v : log_ref) var += (v - mean) * (v - mean);
    const double sd = std::sqrt(var / b);
    out.push_back({mean - log_w, sd * std::sqrt(1 + 1 / b)});
  }
  return out;
}

// In-place Cholesky factor (lower) of a d x d row-major matrix; false when not
// positive definite.
bool cholesky_factor(std::vector<double>& a, std::size_t d) {
  for (std::size_t j = 0; j < d; ++j) {
    double s = a[j * d + j];
    for (std::size_t k = 0; k < j; ++k) s -= a[j * d + k] * a[j * d + k];
    if (s <= 0) return false;
    const double l = std::sqrt(s);
    a[j * d + j] = l;
    for (std::size_t i = j + 1; i < d; ++i) {
      double t = a[i * d + j];
      for (std::size_t k = 0; k < j; ++k) t -= a[i * d + k] * a[j * d + k];
      a[i * d + j] = t / l;
    }
  }
  return true;
}

// BIC of a Gaussian mixture with full covariances, k components, fitted by
// EM from a k-means partition. Full, not diagonal: features that move
// together inside one shopping type (discount and promotion shares) need
// several diagonal components along their diagonal, and BIC counted each as
// a segment (k = 7 for 4 types on the independent generator). A ridge on the
// covariance keeps a component from collapsing onto a point mass (a feature
// missing for some members, or constant within a type, sits at one value).
double mixture_bic(const std::vector<FeatureVector>& x, const std::vector<int>& labels, int k) {
  constexpr double kRidge = 0.01;  // (0.1 standard deviations)^2 on the diagonal
  const std::size_t n = x.size(), K = static_cast<std::size_t>(k), d = kD;
  std::vector<double> w(K, 0), log_det(K, 0);
  std::vector<FeatureVector> mu(K, FeatureVector{});
  std::vector<std::vector<double>> chol(K, std::vector<double>(d * d, 0));
  std::vector<std::vector<double>> resp(n, std::vector<double>(K, 0));
  for (std::size_t i = 0; i < n; ++i) resp[i][static_cast<std::size_t>(labels[i])] = 1;
  double log_l = -std::numeric_limits<double>::infinity();
  const double log_2pi = std::log(2 * 3.14159265358979323846);
  std::vector<double> lp(K);
  for (int iter = 0; iter < 100; ++iter) {
    // M step
    for (std::size_t c = 0; c < K; ++c) {
      double nc = 0;
      FeatureVector s{};
      for (std::size_t i = 0; i < n; ++i) {
        nc += resp[i][c];
        for (std::size_t j = 0; j < d; ++j) s[j] += resp[i][c] * x[i][j];
      }
      w[c] = nc / static_cast<double>(n);
      for (std::size_t j = 0; j < d; ++j) mu[c][j] = nc > 0 ? s[j] / nc : 0;
      auto& cov = chol[c];
      std::fill(cov.begin(), cov.end(), 0.0);
      for (std::size_t i = 0; i < n; ++i) {
        if (resp[i][c] < 1e-12) continue;
        for (std::size_t a = 0; a < d; ++a) {
          const double ea = resp[i][c] * (x[i][a] - mu[c][a]);
          for (std::size_t b = 0; b <= a; ++b) cov[a * d + b] += ea * (x[i][b] - mu[c][b]);
        }
      }
      for (std::size_t a = 0; a < d; ++a) {
        for (std::size_t b = 0; b <= a; ++b) cov[a * d + b] = nc > 0 ? cov[a * d + b] / nc : 0;
        cov[a * d + a] += kRidge;
      }
      if (!cholesky_factor(cov, d)) w[c] = 0;  // not with the ridge; a component that never wins
      log_det[c] = 0;
      for (std::size_t j = 0; j < d; ++j) log_det[c] += 2 * std::log(cov[j * d + j]);
    }
    // E step
    double next = 0;
    for (std::size_t i = 0; i < n; ++i) {
      double m = -std::numeric_limits<double>::infinity();
      for (std::size_t c = 0; c < K; ++c) {
        if (w[c] <= 0) {
          lp[c] = -std::numeric_limits<double>::infinity();
          continue;
        }
        // Mahalanobis distance through L y = x - mu.
        const auto& L = chol[c];
        FeatureVector y{};
        double maha = 0;
        for (std::size_t a = 0; a < d; ++a) {
          double t = x[i][a] - mu[c][a];
          for (std::size_t b = 0; b < a; ++b) t -= L[a * d + b] * y[b];
          y[a] = t / L[a * d + a];
          maha += y[a] * y[a];
        }
        lp[c] = std::log(w[c]) - 0.5 * (static_cast<double>(d) * log_2pi + log_det[c] + maha);
        m = std::max(m, lp[c]);
      }
      double sum = 0;
      for (std::size_t c = 0; c < K; ++c) sum += std::exp(lp[c] - m);
      next += m + std::log(sum);
      for (std::size_t c = 0; c < K; ++c) resp[i][c] = std::exp(lp[c] - m) / sum;
    }
    const bool done = next - log_l < 1e-6 * static_cast<double>(n);
    log_l = next;
    if (done) break;
  }
  const double params = static_cast<double>(K - 1 + K * d + K * d * (d + 1) / 2);
  return -2 * log_l + params * std::log(static_cast<double>(n));
}

std::vector<FeatureVector> standardise_all(const SegmentModel& m,
                                           const std::vector<MemberFeatures>& rows) {
  std::vector<FeatureVector> out;
  out.reserve(rows.size());
  for (const auto& r : rows) out.push_back(m.standardise(r.x));
  return out;
}

}  // namespace

std::string_view k_criterion_name(KCriterion c) {
  switch (c) {
    case KCriterion::kGap: return "gap";
    case KCriterion::kBic: return "bic";
    case KCriterion::kSilhouette: return "silhouette";
  }
  return "";
}

bool parse_k_criterion(std::string_view s, KCriterion& out) {
  for (auto c : {KCriterion::kGap, KCriterion::kBic, KCriterion::kSilhouette})
    if (s == k_criterion_name(c)) {
      out = c;
      return true;
    }
  return false;
}

std::vector<std::string> default_everyday_categories() {
  return {"Produce",       "Dairy",   "Bakery",    "Beverages", "Pantry", "Frozen",  "Household",
          "Personal Care", "Grocery", "Groceries", "Food",      "Drinks", "Cleaning"};
}

FeatureSpec make_feature_spec(const std::vector<Event>& events,
                              std::vector<std::string> everyday_categories) {
  FeatureSpec spec;
  spec.everyday_categories = std::move(everyday_categories);
  std::map<std::string, std::pair<double, double>> acc;  // category -> (sum price*qty, units)
  for (const auto& ev : events) {
    if (ev.type != EventType::kTrack || ev.name != EventName::kOrderCompleted) continue;
    for (const auto& p : ev.products) {
      auto& a = acc[p.category];
      a.first += static_cast<double>(p.price) * p.quantity;
      a.second += p.quantity;
    }
  }
  for (const auto& [cat, a] : acc)
    if (a.second > 0 && a.first > 0) spec.category_reference_price[cat] = a.first / a.second;
  return spec;
}

std::vector<MemberFeatures> extract_segment_features(const std::vector<Event>& events,
                                                     const FeatureSpec& spec, int min_orders,
                                                     int max_orders) {
  // Identity: a web visitor's orders count for the member it was aliased to.
  std::unordered_map<std::string, std::string> member_of;
  for (const auto& ev : events) {
    if (ev.type == EventType::kAlias && !ev.previous_id.empty())
      member_of[ev.previous_id] = ev.user_id;
    else if (!ev.user_id.empty() && !ev.anonymous_id.empty())
      member_of.emplace(ev.anonymous_id, ev.user_id);
  }
  std::map<std::string, std::vector<OrderView>> orders;
  for (const auto& ev : events) {
    if (ev.type != EventType::kTrack || ev.name != EventName::kOrderCompleted) continue;
    std::string key = ev.user_id;
    if (key.empty()) {
      auto it = member_of.find(ev.anonymous_id);
      if (it == member_of.end()) continue;  // a guest: not a member
      key = it->second;
    }
    orders[key].push_back({ev.timestamp, &ev});
  }
  const std::set<std::string> everyday(spec.everyday_categories.begin(),
                                       spec.everyday_categories.end());
  const double category_count =
      std::max<double>(2.0, static_cast<double>(spec.category_reference_price.size()));

  std::vector<MemberFeatures> out;
  for (auto& [user, list] : orders) {
    std::stable_sort(list.begin(), list.end(),
                     [](const OrderView& a, const OrderView& b) { return a.t < b.t; });
    std::size_t n = list.size();
    if (max_orders > 0) n = std::min(n, static_cast<std::size_t>(max_orders));
    if (n < static_cast<std::size_t>(std::max(1, min_orders))) continue;

    MemberFeatures m;
    m.user_id = user;
    m.orders = static_cast<int>(n);
    double units = 0, gross = 0, discount = 0, lines = 0, promo_lines = 0, everyday_lines = 0;
    double log_price_sum = 0, priced_lines = 0;
    std::map<std::string, double> brand_spend, category_lines, store_orders;
    double store_total = 0;
    std::vector<double> hours;
    for (std::size_t i = 0; i < n; ++i) {
      const Event& ev = *list[i].ev;
      m.spend += ev.total;
      gross += static_cast<double>(ev.products_value());
      discount += static_cast<double>(ev.discount);
      for (const auto& p : ev.products) {
        units += p.quantity;
        lines += 1;
        if (!p.promo.empty()) promo_lines += 1;
        if (everyday.count(p.category)) everyday_lines += 1;
        category_lines[p.category] += 1;
        brand_spend[p.brand.empty() ? std::string("(none)") : p.brand] +=
            static_cast<double>(p.price) * p.quantity;
        auto ref = spec.category_reference_price.find(p.category);
        if (ref != spec.category_reference_price.end() && p.price > 0) {
          log_price_sum += std::log(static_cast<double>(p.price) / ref->second);
          priced_lines += 1;
        }
      }
      if (!ev.store_id.empty()) {
        store_orders[ev.store_id] += 1;
        store_total += 1;
      }
      TimeUs in_day = ((ev.timestamp % kUsPerDay) + kUsPerDay) % kUsPerDay;
      hours.push_back(static_cast<double>(in_day) / (3600.0 * kUsPerSecond));
    }
    const double dn = static_cast<double>(n);
    auto& x = m.x;
    x[kFeatLogBasketUnits] = std::log(std::max(1.0, units / dn));
    double span_days =
        static_cast<double>(list[n - 1].t - list[0].t) / static_cast<double>(kUsPerDay);
    // Span below a day (two orders the same day) would make the rate explode.
    x[kFeatLogOrdersPerWeek] = n >= 2 ? std::log((dn - 1) / std::max(1.0, span_days) * 7.0) : kNaN;
    x[kFeatDiscountShare] = gross > 0 ? discount / gross : 0.0;
    x[kFeatPromoLineShare] = lines > 0 ? promo_lines / lines : 0.0;
    double brand_total = 0, hhi = 0;
    for (const auto& [b, v] : brand_spend) brand_total += v;
    for (const auto& [b, v] : brand_spend) hhi += (v / brand_total) * (v / brand_total);
    x[kFeatBrandConcentration] = brand_total > 0 ? hhi : kNaN;
    x[kFeatEverydayShare] = lines > 0 ? everyday_lines / lines : 0.0;
    double entropy = 0;
    for (const auto& [c, v] : category_lines) entropy -= (v / lines) * std::log(v / lines);
    x[kFeatCategoryEntropy] = lines > 0 ? entropy / std::log(category_count) : 0.0;
    x[kFeatLogPriceIndex] = priced_lines > 0 ? log_price_sum / priced_lines : kNaN;
    double top_store = 0;
    for (const auto& [s, v] : store_orders) top_store = std::max(top_store, v);
    x[kFeatHomeStoreShare] = store_total > 0 ? top_store / store_total : kNaN;
    if (n >= 2) {
      double mean_h = std::accumulate(hours.begin(), hours.end(), 0.0) / dn;
      double var = 0;
      for (double h : hours) var += (h - mean_h) * (h - mean_h);
      x[kFeatHourSpread] = std::sqrt(var / (dn - 1));
    } else {
      x[kFeatHourSpread] = kNaN;
    }
    if (n >= 3) {
      std::vector<double> gaps;
      for (std::size_t i = 1; i < n; ++i)
        gaps.push_back(static_cast<double>(list[i].t - list[i - 1].t) /
                       static_cast<double>(kUsPerDay));
      double mean_g =
          std::accumulate(gaps.begin(), gaps.end(), 0.0) / static_cast<double>(gaps.size());
      double var = 0;
      for (double g : gaps) var += (g - mean_g) * (g - mean_g);
      double sd = std::sqrt(var / static_cast<double>(gaps.size() - 1));
      x[kFeatGapVariation] = mean_g > 0 ? sd / mean_g : kNaN;
    } else {
      x[kFeatGapVariation] = kNaN;
    }
    out.push_back(std::move(m));
  }
  return out;  // std::map iteration: ordered by userId
}

void fit_segment_lda(const std::vector<FeatureVector>& z, const std::vector<int>& labels,
                     int classes, SegmentModel& model) {
  const auto K = static_cast<std::size_t>(classes);
  const std::size_t n = z.size();
  std::vector<FeatureVector> mu(K, FeatureVector{});
  std::vector<double> cnt(K, 0);
  for (std::size_t i = 0; i < n; ++i) {
    auto c = static_cast<std::size_t>(labels[i]);
    cnt[c] += 1;
    for (std::size_t j = 0; j < static_cast<std::size_t>(kD); ++j) mu[c][j] += z[i][j];
  }
  for (std::size_t c = 0; c < K; ++c)
    if (cnt[c] > 0)
      for (auto& v : mu[c]) v /= cnt[c];
  // Pooled within-class covariance.
  std::vector<double> cov(static_cast<std::size_t>(kD * kD), 0.0);
  for (std::size_t i = 0; i < n; ++i) {
    const auto& m = mu[static_cast<std::size_t>(labels[i])];
    for (int a = 0; a < kD; ++a) {
      double da = z[i][static_cast<std::size_t>(a)] - m[static_cast<std::size_t>(a)];
      for (int b = 0; b <= a; ++b)
        cov[static_cast<std::size_t>(a * kD + b)] +=
            da * (z[i][static_cast<std::size_t>(b)] - m[static_cast<std::size_t>(b)]);
    }
  }
  double dof = std::max(1.0, static_cast<double>(n) - static_cast<double>(classes));
  for (int a = 0; a < kD; ++a)
    for (int b = 0; b <= a; ++b) {
      double v = cov[static_cast<std::size_t>(a * kD + b)] / dof;
      cov[static_cast<std::size_t>(a * kD + b)] = v;
      cov[static_cast<std::size_t>(b * kD + a)] = v;
    }
  // A small ridge keeps the solve stable when a feature is constant within classes
  // (e.g. a retailer with one store: home-store share is always 1).
  for (int a = 0; a < kD; ++a) cov[static_cast<std::size_t>(a * kD + a)] += 1e-3;
  model.lda_weights.assign(K, FeatureVector{});
  model.lda_intercepts.assign(K, -std::numeric_limits<double>::infinity());
  for (std::size_t c = 0; c < K; ++c) {
    if (cnt[c] == 0) continue;  // an empty class can never win
    std::vector<double> w(mu[c].begin(), mu[c].end());
    if (!cholesky_solve(cov, kD, w)) continue;
    double quad = 0;
    for (std::size_t j = 0; j < static_cast<std::size_t>(kD); ++j) {
      model.lda_weights[c][j] = w[j];
      quad += w[j] * mu[c][j];
    }
    model.lda_intercepts[c] = -0.5 * quad + std::log(cnt[c] / static_cast<double>(n));
  }
}

double adjusted_rand_index(const std::vector<int>& a, const std::vector<int>& b) {
  if (a.size() != b.size() || a.size() < 2) return 0.0;
  std::map<std::pair<int, int>, double> cells;
  std::map<int, double> rows, cols;
  for (std::size_t i = 0; i < a.size(); ++i) {
    cells[{a[i], b[i]}] += 1;
    rows[a[i]] += 1;
    cols[b[i]] += 1;
  }
  auto c2 = [](double x) { return x * (x - 1) / 2; };
  double index = 0, sa = 0, sb = 0;
  for (const auto& [k, v] : cells) index += c2(v);
  for (const auto& [k, v] : rows) sa += c2(v);
  for (const auto& [k, v] : cols) sb += c2(v);
  double expected = sa * sb / c2(static_cast<double>(a.size()));
  double max_index = (sa + sb) / 2;
  if (max_index == expected) return 1.0;  // both trivial partitions
  return (index - expected) / (max_index - expected);
}

SegmentReport run_segments(const std::vector<MemberFeatures>& members,
                           const std::vector<MemberFeatures>& first_orders, const FeatureSpec& spec,
                           const SegmentOptions& opt) {
  SegmentReport rep;
  rep.members_segmented = members.size();
  SegmentModel& model = rep.model;
  model.spec = spec;
  model.new_member_orders = opt.new_member_orders;
  const std::size_t n = members.size();
  if (n < 4) return rep;

  // Standardise on the members' own means and deviations (NaNs left out).
  for (std::size_t j = 0; j < static_cast<std::size_t>(kD); ++j) {
    double s = 0, c = 0;
    for (const auto& m : members)
      if (!std::isnan(m.x[j])) s += m.x[j], c += 1;
    double mean = c > 0 ? s / c : 0;
    double v = 0;
    for (const auto& m : members)
      if (!std::isnan(m.x[j])) v += (m.x[j] - mean) * (m.x[j] - mean);
    model.mean[j] = mean;
    model.sd[j] = c > 1 ? std::sqrt(v / (c - 1)) : 0;
  }
  std::vector<FeatureVector> z = standardise_all(model, members);

  // Every k gets its silhouette, gap and BIC; the criterion picks (BIC unless
  // told otherwise). Silhouette alone was the old rule: it prefers the
  // coarsest split that lies far apart, so well-separated types that share
  // most habits were merged (k = 2 on the shoppers of issue 20, k = 3 on the
  // paired shape of tests/analytics/independent_shoppers.hpp).
  std::vector<std::size_t> sample(n);
  std::iota(sample.begin(), sample.end(), 0);
  if (n > opt.silhouette_sample) {
    FitRng rng(opt.seed ^ 0x5111u);
    for (std::size_t i = 0; i < opt.silhouette_sample; ++i)
      std::swap(sample[i], sample[i + rng.below(n - i)]);
    sample.resize(opt.silhouette_sample);
  }
  int k_lo = opt.fixed_k > 0 ? opt.fixed_k : std::max(2, opt.k_min);
  int k_hi = opt.fixed_k > 0 ? opt.fixed_k : std::max(k_lo, opt.k_max);
  k_hi = std::min<int>(k_hi, static_cast<int>(n) - 1);
  k_lo = std::min(k_lo, k_hi);
  rep.criterion = opt.fixed_k > 0 ? "fixed" : std::string(k_criterion_name(opt.k_criterion));
  // The mixture is fitted on a fixed sample beyond mixture_sample members:
  // EM with full covariances is O(n k d^2) per iteration.
  std::vector<std::size_t> mix_sample(n);
  std::iota(mix_sample.begin(), mix_sample.end(), 0);
  if (n > opt.mixture_sample) {
    FitRng rng(opt.seed ^ 0xb1cu);
    for (std::size_t i = 0; i < opt.mixture_sample; ++i)
      std::swap(mix_sample[i], mix_sample[i + rng.below(n - i)]);
    mix_sample.resize(opt.mixture_sample);
  }
  std::vector<FeatureVector> zm;
  for (auto i : mix_sample) zm.push_back(z[i]);
  std::vector<KMeansResult> fits;
  for (int k = k_lo; k <= k_hi; ++k) {
    KMeansResult r = kmeans(z, k, opt.restarts, opt.seed);
    KScore s;
    s.k = k;
    s.silhouette = silhouette(z, r.labels, k, sample);
    s.inertia = r.inertia;
    std::vector<int> lm;
    for (auto i : mix_sample) lm.push_back(r.labels[i]);
    s.bic = mixture_bic(zm, lm, k);
    rep.k_scores.push_back(s);
    fits.push_back(std::move(r));
  }
  {
    // The gap rule needs gap(k + 1); it runs on the silhouette's sample so its
    // cost stays fixed on large member counts.
    std::vector<FeatureVector> zs;
    for (auto i : sample) zs.push_back(z[i]);
    const int gap_hi = std::min<int>(k_hi + 1, static_cast<int>(zs.size()) - 1);
    auto gaps = gap_statistic(zs, k_lo, std::max(k_lo, gap_hi), opt.gap_references,
                              std::max(2, opt.restarts / 2), opt.seed);
    for (std::size_t i = 0; i < rep.k_scores.size() && i < gaps.size(); ++i) {
      rep.k_scores[i].gap = gaps[i].first;
      rep.k_scores[i].gap_sd = gaps[i].second;
    }
    const auto& ks = rep.k_scores;
    std::size_t pick = 0;
    if (rep.criterion == "gap") {
      // Tibshirani's rule: the smallest k with gap(k) >= gap(k+1) - s(k+1).
      pick = ks.size() - 1;
      for (std::size_t i = 0; i + 1 < gaps.size() && i < ks.size(); ++i)
        if (gaps[i].first >= gaps[i + 1].first - gaps[i + 1].second) {
          pick = i;
          break;
        }
    } else if (rep.criterion == "bic") {
      // The first k that one more segment does not improve by at least
      // kBicStep of what the segments so far gained over k_lo (the gap rule's
      // shape), else the lowest BIC. Shopping types hold sub-groups that a
      // mixture finds further down the curve (web orders at other hours in a
      // supermarket-type's week, brand focus in one category or two): a
      // 0.6 % step there took simulated shoppers from 4 to 6 segments.
      constexpr double kBicStep = 0.01;
      for (std::size_t i = 1; i < ks.size(); ++i)
        if (ks[i].bic < ks[pick].bic) pick = i;
      for (std::size_t i = 0; i + 1 < ks.size(); ++i) {
        const double gained = ks[0].bic - ks[i].bic;
        if (ks[i].bic - ks[i + 1].bic <= kBicStep * std::max(0.0, gained)) {
          pick = i;
          break;
        }
      }
    } else {
      for (std::size_t i = 1; i < ks.size(); ++i)
        if (ks[i].silhouette > ks[pick].silhouette) pick = i;
    }
    rep.k = ks[pick].k;
  }
  KMeansResult chosen = std::move(fits[static_cast<std::size_t>(rep.k - k_lo)]);
  const int k = rep.k;
  model.centroids = chosen.centroids;
  model.segment_names = name_clusters(chosen.centroids);

  // Order segments by name so reports and model files read the same every run.
  std::vector<int> order(static_cast<std::size_t>(k));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    return model.segment_names[static_cast<std::size_t>(a)] <
           model.segment_names[static_cast<std::size_t>(b)];
  });
  std::vector<int> new_index(static_cast<std::size_t>(k));
  for (int i = 0; i < k; ++i)
    new_index[static_cast<std::size_t>(order[static_cast<std::size_t>(i)])] = i;
  {
    std::vector<std::string> names(static_cast<std::size_t>(k));
    std::vector<FeatureVector> cents(static_cast<std::size_t>(k));
    for (int c = 0; c < k; ++c) {
      names[static_cast<std::size_t>(new_index[static_cast<std::size_t>(c)])] =
          model.segment_names[static_cast<std::size_t>(c)];
      cents[static_cast<std::size_t>(new_index[static_cast<std::size_t>(c)])] =
          model.centroids[static_cast<std::size_t>(c)];
    }
    model.segment_names = std::move(names);
    model.centroids = std::move(cents);
  }
  rep.labels.resize(n);
  rep.user_ids.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    rep.labels[i] = new_index[static_cast<std::size_t>(chosen.labels[i])];
    rep.user_ids[i] = members[i].user_id;
  }

  // Profiles.
  rep.profiles.resize(static_cast<std::size_t>(k));
  std::vector<FeatureVector> raw_sum(static_cast<std::size_t>(k), FeatureVector{});
  std::vector<FeatureVector> raw_cnt(static_cast<std::size_t>(k), FeatureVector{});
  for (std::size_t i = 0; i < n; ++i) {
    auto& p = rep.profiles[static_cast<std::size_t>(rep.labels[i])];
    p.members += 1;
    p.mean_orders += members[i].orders;
    p.mean_spend += static_cast<double>(members[i].spend);
    for (std::size_t j = 0; j < static_cast<std::size_t>(kD); ++j)
      if (!std::isnan(members[i].x[j])) {
        raw_sum[static_cast<std::size_t>(rep.labels[i])][j] += members[i].x[j];
        raw_cnt[static_cast<std::size_t>(rep.labels[i])][j] += 1;
      }
  }
  for (int c = 0; c < k; ++c) {
    auto& p = rep.profiles[static_cast<std::size_t>(c)];
    p.name = model.segment_names[static_cast<std::size_t>(c)];
    p.centroid = model.centroids[static_cast<std::size_t>(c)];
    p.share = static_cast<double>(p.members) / static_cast<double>(n);
    if (p.members) {
      p.mean_orders /= static_cast<double>(p.members);
      p.mean_spend /= static_cast<double>(p.members);
    }
    for (std::size_t j = 0; j < static_cast<std::size_t>(kD); ++j) {
      double cnt = raw_cnt[static_cast<std::size_t>(c)][j];
      p.mean_raw[j] = cnt > 0 ? raw_sum[static_cast<std::size_t>(c)][j] / cnt : model.mean[j];
    }
  }

  // The discriminant on all members, for the model file.
  fit_segment_lda(z, rep.labels, k, model);

  // k-fold cross-validation: train on k-1 folds' full histories, test on the
  // held-out members, once with their full history and once as a new member
  // who has made only their first N purchases.
  std::unordered_map<std::string, const MemberFeatures*> first_of;
  for (const auto& f : first_orders) first_of[f.user_id] = &f;
  rep.cv_folds = std::max(2, std::min<int>(opt.cv_folds, static_cast<int>(n)));
  std::vector<std::size_t> perm(n);
  std::iota(perm.begin(), perm.end(), 0);
  FitRng rng(opt.seed ^ 0xcf01d5u);
  for (std::size_t i = n; i > 1; --i) std::swap(perm[i - 1], perm[rng.below(i)]);
  std::vector<int> fold(n);
  for (std::size_t i = 0; i < n; ++i)
    fold[perm[i]] = static_cast<int>(i % static_cast<std::size_t>(rep.cv_folds));
  rep.cv_confusion.assign(static_cast<std::size_t>(k),
                          std::vector<std::size_t>(static_cast<std::size_t>(k), 0));
  std::size_t right_full = 0, right_new = 0;
  for (int f = 0; f < rep.cv_folds; ++f) {
    std::vector<FeatureVector> train;
    std::vector<int> train_labels;
    for (std::size_t i = 0; i < n; ++i)
      if (fold[i] != f) {
        train.push_back(z[i]);
        train_labels.push_back(rep.labels[i]);
      }
    SegmentModel fm;
    fm.mean = model.mean;
    fm.sd = model.sd;
    fit_segment_lda(train, train_labels, k, fm);
    for (std::size_t i = 0; i < n; ++i) {
      if (fold[i] != f) continue;
      if (fm.classify(members[i].x) == rep.labels[i]) ++right_full;
      auto it = first_of.find(members[i].user_id);
      if (it == first_of.end()) continue;
      int pred = fm.classify(it->second->x);
      ++rep.cv_new_members;
      ++rep.cv_confusion[static_cast<std::size_t>(rep.labels[i])][static_cast<std::size_t>(pred)];
      if (pred == rep.labels[i]) ++right_new;
    }
  }
  rep.cv_accuracy_full = static_cast<double>(right_full) / static_cast<double>(n);
  rep.cv_accuracy_new_member =
      rep.cv_new_members ? static_cast<double>(right_new) / static_cast<double>(rep.cv_new_members)
                         : 0.0;
  return rep;
}

SegmentReport run_segments(const std::vector<Event>& events, const SegmentOptions& opt) {
  FeatureSpec spec = make_feature_spec(events, opt.everyday_categories);
  auto all = extract_segment_features(events, spec, 1);
  std::vector<MemberFeatures> members;
  for (auto& m : all)
    if (m.orders >= opt.min_orders) members.push_back(std::move(m));
  // A new member is judged on exactly N purchases: members with fewer are not "after N".
  auto first = extract_segment_features(events, spec, opt.new_member_orders, opt.new_member_orders);
  SegmentReport rep = run_segments(members, first, spec, opt);
  rep.members_with_orders = all.size();
  return rep;
}

// ---- reporting -------------------------------------------------------------------

Report segments_report(const SegmentReport& r, bool with_members) {
  Report rep;
  rep.analysis = "segments";
  rep.figures = {
      {"members_with_orders", std::to_string(r.members_with_orders)},
      {"members_segmented", std::to_string(r.members_segmented)},
      {"k", std::to_string(r.k)},
      {"k_criterion",
       r.criterion == "fixed" ? "fixed by --k"
       : r.criterion == "gap" ? "gap statistic: smallest k with gap(k) >= gap(k+1) - s(k+1)"
       : r.criterion == "bic" ? "BIC of a Gaussian mixture: first k that k+1 improves by < 1 %"
                              : "highest mean silhouette"},
      {"lda_cv_folds", std::to_string(r.cv_folds)},
      {"lda_cv_accuracy_full_history", fmt_fixed(r.cv_accuracy_full, 4)},
      {"lda_new_member_orders", std::to_string(r.model.new_member_orders)},
      {"lda_cv_accuracy_new_member", fmt_fixed(r.cv_accuracy_new_member, 4)},
      {"lda_cv_new_members", std::to_string(r.cv_new_members)},
  };

  ReportTable prof;
  prof.name = "segments";
  prof.csv_file = "segments.csv";
  prof.title = "Shopping-type segments (feature means per segment)";
  prof.columns = {"segment", "members", "share %", "orders", "spend"};
  for (int j = 0; j < kD; ++j) prof.columns.emplace_back(kFeatureTitles[j]);
  prof.numeric.assign(prof.columns.size(), true);
  prof.numeric[0] = false;
  for (const auto& p : r.profiles) {
    std::vector<std::string> row = {p.name, std::to_string(p.members), fmt_percent(p.share),
                                    fmt_fixed(p.mean_orders, 1),
                                    fmt_money(static_cast<long long>(std::llround(p.mean_spend)))};
    for (int j = 0; j < kD; ++j) {
      double v = p.mean_raw[static_cast<std::size_t>(j)];
      switch (j) {
        // Log features are shown on their natural scale.
        case kFeatLogBasketUnits:
        case kFeatLogOrdersPerWeek:
        case kFeatLogPriceIndex: row.push_back(fmt_fixed(std::exp(v), 2)); break;
        case kFeatDiscountShare:
        case kFeatPromoLineShare:
        case kFeatEverydayShare:
        case kFeatHomeStoreShare: row.push_back(fmt_percent(v)); break;
        default: row.push_back(fmt_fixed(v, 2));
      }
    }
    prof.rows.push_back(std::move(row));
  }
  rep.tables.push_back(std::move(prof));

  ReportTable ks;
  ks.name = "k_selection";
  ks.csv_file = "k_selection.csv";
  ks.title =
      "Choice of k (silhouette: higher is better; gap: first k within s of the next k's gap; "
      "BIC: lower is better, first k the next improves by < 1 % of the gain so far)";
  ks.columns = {"k", "silhouette", "gap", "gap_s", "bic", "inertia", "chosen"};
  ks.numeric = {true, true, true, true, true, true, false};
  for (const auto& s : r.k_scores)
    ks.rows.push_back({std::to_string(s.k), fmt_fixed(s.silhouette, 4), fmt_fixed(s.gap, 4),
                       fmt_fixed(s.gap_sd, 4), fmt_fixed(s.bic, 1), fmt_fixed(s.inertia, 1),
                       s.k == r.k ? "*" : ""});
  rep.tables.push_back(std::move(ks));

  ReportTable cm;
  cm.name = "new_member_confusion";
  cm.csv_file = "new_member_confusion.csv";
  cm.title = fmt::format("New members after {} orders: segment (rows) vs LDA prediction (columns)",
                         r.model.new_member_orders);
  cm.columns = {"segment"};
  for (const auto& p : r.profiles) cm.columns.push_back(p.name);
  cm.numeric.assign(cm.columns.size(), true);
  cm.numeric[0] = false;
  for (std::size_t a = 0; a < r.cv_confusion.size(); ++a) {
    std::vector<std::string> row = {r.profiles[a].name};
    for (auto v : r.cv_confusion[a]) row.push_back(std::to_string(v));
    cm.rows.push_back(std::move(row));
  }
  rep.tables.push_back(std::move(cm));

  if (with_members) rep.tables.push_back(segment_members_table(r));
  return rep;
}

ReportTable segment_members_table(const SegmentReport& r) {
  ReportTable mt;
  mt.name = "members";
  mt.csv_file = "segment_members.csv";
  mt.title = "Segment per member";
  mt.columns = {"userId", "segment"};
  mt.numeric = {false, false};
  mt.rows.reserve(r.user_ids.size());
  for (std::size_t i = 0; i < r.user_ids.size() && i < r.labels.size(); ++i)
    mt.rows.push_back({r.user_ids[i], r.profiles[static_cast<std::size_t>(r.labels[i])].name});
  return mt;
}

void print_segments(const SegmentReport& report, std::ostream& out, OutputFormat format,
                    bool with_members) {
  render_report(segments_report(report, with_members), format, out);
}

Status save_segment_model(const SegmentModel& model, const std::string& path) {
  // Write then rename, so an engine hot-reloading the folder never reads half a file.
  return models::write_file_atomic(path, segment_model_json(model));
}

Result<SegmentModel> load_segment_model(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return Status(ErrorCode::kNotFound, fmt::format("cannot read {}", path));
  std::stringstream ss;
  ss << f.rdbuf();
  auto r = parse_segment_model_json(ss.str());
  if (!r) return Status(r.status().code(), fmt::format("{}: {}", path, r.status().detail()));
  return r;
}

}  // namespace storepulse::analytics
