#pragma once
// Shopping-type segmentation (RETAIL.md "Shopping types"): behavioural features
// per member -> k-means on standardised features, k chosen over k_min..k_max
// by the BIC of a Gaussian mixture (gap statistic and silhouette also scored
// per k, and selectable) -> clusters named by their centroids (a type name only
// where the feature it claims backs it, else the top traits) -> a linear
// discriminant (LDA, pooled covariance) that assigns a new member after their
// first N purchases, with k-fold cross-validated accuracy.
//
// The fitted SegmentModel (feature scaling, centroids, LDA coefficients and
// what feature extraction needs) is saved as JSON so the engine can load it and
// classify live profiles with the same arithmetic.
//
// Pure functions over in-memory data; no threads, no exceptions.
#include <array>
#include <cstdint>
#include <iosfwd>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "storepulse/analytics/report_table.hpp"
#include "storepulse/common/status.hpp"
#include "storepulse/models/segment_model.hpp"
#include "storepulse/protocol/event.hpp"

namespace storepulse::analytics {

// Feature definitions, the model and its scoring live in the models stage so
// the live engine classifies with the same code (models/segment_model.hpp).
using models::FeatureSpec;
using models::FeatureVector;
using models::kFeatBrandConcentration;
using models::kFeatCategoryEntropy;
using models::kFeatDiscountShare;
using models::kFeatEverydayShare;
using models::kFeatGapVariation;
using models::kFeatHomeStoreShare;
using models::kFeatHourSpread;
using models::kFeatLogBasketUnits;
using models::kFeatLogOrdersPerWeek;
using models::kFeatLogPriceIndex;
using models::kFeatPromoLineShare;
using models::kSegmentFeatureCount;
using models::segment_feature_name;
using models::SegmentFeature;
using models::SegmentModel;

/// Grocery and household names used when the caller gives none.
std::vector<std::string> default_everyday_categories();

/// Builds the spec from the fit data: reference prices from every order line.
FeatureSpec make_feature_spec(const std::vector<protocol::Event>& events,
                              std::vector<std::string> everyday_categories);

struct MemberFeatures {
  std::string user_id;
  int orders = 0;             // orders used (<= max_orders when capped)
  protocol::Money spend = 0;  // sum of order totals used
  /// Raw values; NaN where undefined (e.g. gap variation with < 3 orders, no store orders).
  FeatureVector x{};
};

/// One row per member (userId; web visitors count for the member they were
/// aliased to) with at least `min_orders` orders, ordered by userId. With
/// `max_orders` > 0 only each member's first `max_orders` orders are used: the
/// view the classifier has of a new member.
std::vector<MemberFeatures> extract_segment_features(const std::vector<protocol::Event>& events,
                                                     const FeatureSpec& spec, int min_orders,
                                                     int max_orders = 0);

/// How k is chosen when it is not given.
enum class KCriterion {
  kGap,         // Tibshirani's gap statistic: smallest k with gap(k) >= gap(k+1) - s(k+1)
  kBic,         // BIC of a full-covariance Gaussian mixture from each k-means fit: the
                // first k that k + 1 improves by < 1 % of the gain since k_min
  kSilhouette,  // highest mean silhouette (collapses groups that are far from the rest)
};
std::string_view k_criterion_name(KCriterion c);
/// "gap" | "bic" | "silhouette"; false when unknown.
bool parse_k_criterion(std::string_view s, KCriterion& out);

struct SegmentOptions {
  int k_min = 2;
  int k_max = 8;
  int fixed_k = 0;  // > 0: skip the selection and use this k
  KCriterion k_criterion = KCriterion::kBic;
  int gap_references = 10;            // uniform reference data sets per k for the gap statistic
  std::size_t mixture_sample = 4000;  // members the BIC's mixture is fitted on, at most
  int min_orders = 3;                 // members with fewer orders are not segmented
  int new_member_orders = 5;          // the classifier's N
  int cv_folds = 5;
  int restarts = 8;  // k-means++ restarts per k; the lowest inertia wins
  std::uint64_t seed = 1;
  std::size_t silhouette_sample = 2000;  // silhouette is O(n^2): a fixed sample beyond this
  std::vector<std::string> everyday_categories = default_everyday_categories();
};

struct SegmentProfile {
  std::string name;
  std::size_t members = 0;
  double share = 0;  // of segmented members
  double mean_orders = 0;
  double mean_spend = 0;     // cents per member
  FeatureVector mean_raw{};  // raw feature means (NaN-free)
  FeatureVector centroid{};  // standardised
};

struct KScore {
  int k = 0;
  double silhouette = 0;
  double inertia = 0;  // within-cluster sum of squares (standardised)
  double gap = 0;      // E*[log W_k] - log W_k over the reference sets
  double gap_sd = 0;   // s_k = sd(log W*_k) * sqrt(1 + 1/B)
  double bic = 0;      // -2 log L + parameters * log n of the Gaussian mixture
};

struct SegmentReport {
  std::size_t members_with_orders = 0;
  std::size_t members_segmented = 0;  // with >= min_orders
  std::string criterion = "bic";      // k_criterion_name, or "fixed" (SegmentOptions::fixed_k)
  int k = 0;
  std::vector<KScore> k_scores;
  std::vector<SegmentProfile> profiles;
  std::vector<std::string> user_ids;  // segmented members
  std::vector<int> labels;            // segment per member (index into profiles)
  SegmentModel model;
  int cv_folds = 0;
  double cv_accuracy_full = 0;                         // held-out members, full history
  double cv_accuracy_new_member = 0;                   // held-out members, first N orders only
  std::size_t cv_new_members = 0;                      // held-out members that had N orders
  std::vector<std::vector<std::size_t>> cv_confusion;  // [true][predicted], first-N
};

/// The whole analysis on a stream of events.
SegmentReport run_segments(const std::vector<protocol::Event>& events,
                           const SegmentOptions& options = {});

/// Same, on features extracted already (`first_orders`: the same members' first-N
/// features, any order, used for the new-member accuracy; may be empty).
SegmentReport run_segments(const std::vector<MemberFeatures>& members,
                           const std::vector<MemberFeatures>& first_orders, const FeatureSpec& spec,
                           const SegmentOptions& options);

/// Fits an LDA on standardised rows with labels 0..classes-1 into `model`
/// (model.mean/sd must be set). Pooled covariance with a small ridge.
void fit_segment_lda(const std::vector<FeatureVector>& standardised, const std::vector<int>& labels,
                     int classes, SegmentModel& model);

/// Adjusted Rand index (Hubert & Arabie) of two labelings of the same items.
double adjusted_rand_index(const std::vector<int>& a, const std::vector<int>& b);

/// One row per segmented member (userId order): userId, segment (the name
/// in the model). Members under min_orders are not in it.
ReportTable segment_members_table(const SegmentReport& report);

/// Tables + figures for the shared renderer (analyze / HTML report).
Report segments_report(const SegmentReport& report, bool with_members = false);
void print_segments(const SegmentReport& report, std::ostream& out, OutputFormat format,
                    bool with_members = false);

using models::parse_segment_model_json;
using models::segment_model_json;
Status save_segment_model(const SegmentModel& model, const std::string& path);
Result<SegmentModel> load_segment_model(const std::string& path);

}  // namespace storepulse::analytics
