#pragma once
// The shopping-type segment model: feature definition and scaling, k-means
// centroids and a linear discriminant (LDA, pooled covariance) that assigns a
// member to a segment. Fitting lives in analytics (segments.hpp); scoring lives
// here so the analysis and the live engine classify with the same arithmetic.
#include <array>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "storepulse/common/status.hpp"
#include "storepulse/models/model_file.hpp"

namespace storepulse::profile {
struct CustomerProfile;
}

namespace storepulse::models {

/// Feature columns, in model-file order.
enum SegmentFeature : int {
  kFeatLogBasketUnits = 0,  // log mean units per order
  kFeatLogOrdersPerWeek,    // log((orders - 1) / weeks between first and last order)
  kFeatDiscountShare,       // discount / gross value
  kFeatPromoLineShare,      // share of lines bought on promotion
  kFeatBrandConcentration,  // Herfindahl index of spend over brands
  kFeatEverydayShare,       // share of lines in everyday (grocery, household) categories
  kFeatCategoryEntropy,     // entropy of lines over categories, 0..1
  kFeatLogPriceIndex,       // mean log(price / category reference price): price tier
  kFeatHomeStoreShare,      // share of store orders at the member's most-used store
  kFeatHourSpread,          // standard deviation of the order hour (time of day)
  kFeatGapVariation,        // coefficient of variation of days between orders
  kSegmentFeatureCount
};
std::string_view segment_feature_name(int feature);  // "log_basket_units", ...

using FeatureVector = std::array<double, kSegmentFeatureCount>;

/// What feature extraction needs besides the events; part of the model so the
/// engine computes features exactly as the fit did.
struct FeatureSpec {
  std::vector<std::string> everyday_categories;
  /// Reference unit price per category (cents): mean over all lines of the fit data.
  std::map<std::string, double, std::less<>> category_reference_price;  // find by string_view
};

/// The fitted model: everything needed to assign a member to a segment.
struct SegmentModel {
  int version = 1;
  FeatureSpec spec;
  FeatureVector mean{};  // standardisation (NaN features are imputed with the mean)
  FeatureVector sd{};
  std::vector<std::string> segment_names;
  std::vector<FeatureVector> centroids;    // standardised space, one per segment
  std::vector<FeatureVector> lda_weights;  // standardised space, one per segment
  std::vector<double> lda_intercepts;      // includes log prior
  int new_member_orders = 5;               // N: members are classified from their N-th order on
  ModelMeta meta;

  FeatureVector standardise(const FeatureVector& raw) const;
  /// LDA: the segment with the largest discriminant score.
  int classify(const FeatureVector& raw) const;
  /// k-means: the nearest centroid (how the fit labelled members).
  int nearest_centroid(const FeatureVector& raw) const;
};

/// A live profile's features, from the inputs apply_event keeps on every order
/// (the same definitions as analytics' extract_segment_features; categories
/// and stores beyond the profile's bounds are not seen).
FeatureVector segment_features_of(const profile::CustomerProfile& p, const FeatureSpec& spec);

/// Sets p.segment once the member has model.new_member_orders orders (and on
/// every later call); fewer orders leave it as it is. Visitors are not segmented.
void classify_profile(const SegmentModel& model, profile::CustomerProfile& p);

std::string segment_model_json(const SegmentModel& model);
Result<SegmentModel> parse_segment_model_json(std::string_view json);

}  // namespace storepulse::models
