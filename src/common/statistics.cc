#include "autotailor/common/statistics.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace autotailor::stats {

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::vector<double> ranks(const std::vector<double>& v) {
  std::vector<size_t> order(v.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
    for (size_t k = i; k <= j; ++k) r[order[k]] = static_cast<double>(i + j) / 2.0 + 1;
    i = j + 1;
  }
  return r;
}

double pearson(const std::vector<double>& a, const std::vector<double>& b) {
  double n = static_cast<double>(a.size()), ma = 0, mb = 0;
  for (size_t i = 0; i < a.size(); ++i) ma += a[i] / n, mb += b[i] / n;
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) * (a[i] - ma);
    sbb += (b[i] - mb) * (b[i] - mb);
  }
  return saa > 0 && sbb > 0 ? sab / std::sqrt(saa * sbb) : 0.0;
}

double spearman(const std::vector<double>& a, const std::vector<double>& b) {
  return pearson(ranks(a), ranks(b));
}

double kendall_tau_b(const std::vector<double>& a, const std::vector<double>& b) {
  double conc = 0, disc = 0, ta = 0, tb = 0;
  for (size_t i = 0; i < a.size(); ++i)
    for (size_t j = i + 1; j < a.size(); ++j) {
      double x = a[i] - a[j], y = b[i] - b[j];
      if (x == 0 && y == 0) continue;
      if (x == 0)
        ++ta;
      else if (y == 0)
        ++tb;
      else if ((x > 0) == (y > 0))
        ++conc;
      else
        ++disc;
    }
  double d = std::sqrt((conc + disc + ta) * (conc + disc + tb));
  return d > 0 ? (conc - disc) / d : 0.0;
}

Line theil_sen(const std::vector<double>& x, const std::vector<double>& y, size_t min_points) {
  std::vector<double> slopes;
  for (size_t i = 0; i < x.size(); ++i)
    for (size_t k = i + 1; k < x.size(); ++k)
      if (std::abs(x[k] - x[i]) > 1e-9) slopes.push_back((y[k] - y[i]) / (x[k] - x[i]));
  Line l;
  l.slope = x.size() >= min_points && !slopes.empty() ? median(slopes) : 0;
  std::vector<double> icpt;
  for (size_t i = 0; i < x.size(); ++i) icpt.push_back(y[i] - l.slope * x[i]);
  l.intercept = median(icpt);
  return l;
}

}  // namespace autotailor::stats
