// The common module: SHA-256 (compile's output verification) and the statistics the stages
// share, against known values (FIPS 180-4 vectors and sha256sum; scipy.stats' documented
// examples).
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "autotailor/common/error.h"
#include "autotailor/common/hash.h"
#include "autotailor/common/statistics.h"
#include "test_util.h"

namespace autotailor {
namespace {

// compile's output verification rests on it: FIPS 180-4 test vectors, every padding case
// around the 56-byte boundary and a file read in chunks, against sha256sum.
TEST(Hash, Sha256MatchesKnownDigests) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  std::string dir = test::temp_dir("sha");
  std::string text;
  for (int n : {55, 56, 63, 64, 65, 119, 120, 1000, 200000}) {
    text.assign(static_cast<size_t>(n), 'a');
    for (int i = 0; i < n; ++i) text[static_cast<size_t>(i)] = static_cast<char>('a' + i % 26);
    std::string f = dir + "/t" + std::to_string(n);
    std::ofstream(f, std::ios::binary) << text;
    std::string cmd = "sha256sum " + f + " > " + f + ".sum";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
    EXPECT_EQ(sha256_file(f), test::slurp(f + ".sum").substr(0, 64)) << n;
    EXPECT_EQ(sha256_hex(text), sha256_file(f)) << n;
  }
  EXPECT_THROW(sha256_file(dir + "/missing"), Error);
}

TEST(Statistics, RankCorrelationsMatchScipy) {
  // scipy.stats.kendalltau([12, 2, 1, 12, 2], [1, 4, 7, 1, 0]): tau-b, with ties on both sides.
  EXPECT_NEAR(stats::kendall_tau_b({12, 2, 1, 12, 2}, {1, 4, 7, 1, 0}), -0.47140452079103173,
              1e-12);
  // scipy.stats.spearmanr([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]).
  EXPECT_NEAR(stats::spearman({1, 2, 3, 4, 5}, {5, 6, 7, 8, 7}), 0.8207826816681233, 1e-12);
  // scipy.stats.pearsonr([1, 2, 3, 4, 5], [2, 4, 5, 4, 5]).
  EXPECT_NEAR(stats::pearson({1, 2, 3, 4, 5}, {2, 4, 5, 4, 5}), 0.7745966692414834, 1e-12);
  EXPECT_EQ(stats::ranks({10, 20, 10, 30}), (std::vector<double>{1.5, 3, 1.5, 4}));
  EXPECT_EQ(stats::kendall_tau_b({1, 2, 3}, {3, 2, 1}), -1.0);
  EXPECT_EQ(stats::kendall_tau_b({1, 1, 1}, {1, 2, 3}), 0.0);  // undefined: 0
  EXPECT_EQ(stats::pearson({1, 1, 1}, {1, 2, 3}), 0.0);
  EXPECT_EQ(stats::median({3, 1, 2}), 2.0);
  EXPECT_EQ(stats::median({4, 1, 3, 2}), 2.5);
  EXPECT_EQ(stats::median({}), 0.0);
}

TEST(Statistics, TheilSenIgnoresAnOutlier) {
  // y = 2x + 1 with one wild point: least squares would tilt; Theil-Sen does not.
  stats::Line l = stats::theil_sen({0, 1, 2, 3, 4}, {1, 3, 5, 7, 100});
  EXPECT_DOUBLE_EQ(l.slope, 2.0);
  EXPECT_DOUBLE_EQ(l.intercept, 1.0);
  // Too few points, or one x value: a constant, the median of y.
  l = stats::theil_sen({1, 2}, {5, 9});
  EXPECT_EQ(l.slope, 0.0);
  EXPECT_EQ(l.intercept, 7.0);
  l = stats::theil_sen({3, 3, 3}, {1, 2, 6});
  EXPECT_EQ(l.slope, 0.0);
  EXPECT_EQ(l.intercept, 2.0);
}

}  // namespace
}  // namespace autotailor
