// Small statistics the stages share: rank correlations for the accuracy predictor's
// validation (validate-accuracy) and a robust line fit for the latency model's fusion rules.
#pragma once

#include <vector>

namespace autotailor::stats {

// The median (mean of the two middle values for an even count); 0 for none.
double median(std::vector<double> v);
// 1-based ranks, ties given their average rank (as scipy.stats.rankdata).
std::vector<double> ranks(const std::vector<double>& v);
// Pearson's r; 0 when either side is constant.
double pearson(const std::vector<double>& a, const std::vector<double>& b);
// Spearman's rho: Pearson's r of the ranks.
double spearman(const std::vector<double>& a, const std::vector<double>& b);
// Kendall's tau-b (ties in either variable handled); 0 when undefined.
double kendall_tau_b(const std::vector<double>& a, const std::vector<double>& b);

// Theil-Sen: the median slope over every two points with different x, then the median
// intercept; one bad point cannot tilt the line. With fewer than `min_points` points or a
// single x value, slope 0 and the median of y.
struct Line {
  double slope = 0, intercept = 0;
};
Line theil_sen(const std::vector<double>& x, const std::vector<double>& y, size_t min_points = 3);

}  // namespace autotailor::stats
