#include "report.h"

#include <fmt/format.h>

#include <algorithm>
#include <ctime>
#include <map>

#include "budget_flags.h"

namespace autotailor::cli {

namespace {

std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<')
      o += "&lt;";
    else if (c == '>')
      o += "&gt;";
    else if (c == '&')
      o += "&amp;";
    else if (c == '"')
      o += "&quot;";
    else
      o += c;
  }
  return o;
}

const char* kColors[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                         "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};

// Accuracy against the budget's unit (latency, MACs or parameters): every Pareto candidate,
// the chosen variants, the budgets.
std::string pareto_svg(const nlohmann::json& manifest, const nlohmann::json& search) {
  const double W = 640, H = 380, L = 60, R = 20, T = 20, B = 45;
  const std::string unit = manifest.value("budget_unit", "ms");
  // The x value of a search candidate, of a variant and of the max subnet.
  const std::string key = unit == "ms" ? "latency_ms" : unit;
  const std::string vkey = unit == "ms" ? "predicted_latency_ms" : unit;
  const double xscale = unit == "ms" ? 1.0 : 1e-6;
  auto x_of = [&](const nlohmann::json& j, const std::string& k) {
    return xscale * j[k].get<double>();
  };
  std::vector<std::pair<double, double>> pts;
  for (const auto& c : search["pareto"]) pts.emplace_back(x_of(c, key), c["accuracy"]);
  for (const auto& v : manifest["variants"])
    pts.emplace_back(x_of(v, vkey), v["predicted_accuracy"]);
  double max_lat = unit == "ms" ? manifest["max_subnet"]["predicted_latency_ms"].get<double>()
                                : x_of(manifest["max_subnet"], unit);
  double max_acc = manifest["max_subnet"]["predicted_accuracy"];
  pts.emplace_back(max_lat, max_acc);
  double x0 = 0, x1 = 0, y0 = 1, y1 = 0;
  for (auto [x, y] : pts) x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
  x1 *= 1.05;
  double pad = std::max(0.01, (y1 - y0) * 0.08);
  y0 -= pad, y1 += pad;
  auto X = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
  auto Y = [&](double y) { return T + (y1 - y) / (y1 - y0) * (H - T - B); };
  std::string s = fmt::format(
      "<svg xmlns='http://www.w3.org/2000/svg' width='{}' height='{}' viewBox='0 0 {} {}' "
      "font-family='sans-serif' font-size='11'>\n",
      W, H, W, H);
  s += fmt::format("<rect x='{}' y='{}' width='{}' height='{}' fill='#fafafa' stroke='#ccc'/>\n", L,
                   T, W - L - R, H - T - B);
  for (int i = 0; i <= 5; ++i) {
    double x = x0 + (x1 - x0) * i / 5, y = y0 + (y1 - y0) * i / 5;
    s += fmt::format("<text x='{:.1f}' y='{}' text-anchor='middle'>{:.3g}</text>\n", X(x),
                     H - B + 15, x);
    s += fmt::format("<text x='{}' y='{:.1f}' text-anchor='end'>{:.1f}%</text>\n", L - 5, Y(y) + 4,
                     100 * y);
  }
  std::string xlabel = unit == "ms"
                           ? std::string("predicted latency (ms)") +
                                 (manifest["estimated_latency"].get<bool>() ? ", estimated" : "")
                       : unit == "macs" ? "MACs (millions, exact)"
                                        : "parameters (millions, exact)";
  s += fmt::format("<text x='{}' y='{}' text-anchor='middle'>{}</text>\n", (L + W - R) / 2, H - 8,
                   xlabel);
  s += fmt::format(
      "<text x='14' y='{}' transform='rotate(-90 14 {})' text-anchor='middle'>"
      "predicted {}</text>\n",
      (T + H - B) / 2, (T + H - B) / 2,
      manifest["accuracy_metric"] == "top1" ? "top-1 accuracy" : "agreement (proxy)");
  for (const auto& v : manifest["variants"])
    s += fmt::format(
        "<line x1='{:.1f}' y1='{}' x2='{:.1f}' y2='{}' stroke='#999' "
        "stroke-dasharray='4 3'/>\n",
        X(xscale * v["budget"].get<double>()), T, X(xscale * v["budget"].get<double>()), H - B);
  std::string path;
  for (const auto& c : search["pareto"]) {
    double x = X(x_of(c, key)), y = Y(c["accuracy"]);
    path += fmt::format("{}{:.1f},{:.1f} ", path.empty() ? "M" : "L", x, y);
    s += fmt::format("<circle cx='{:.1f}' cy='{:.1f}' r='2' fill='#4e79a7'/>\n", x, y);
  }
  if (!path.empty())
    s += fmt::format("<path d='{}' fill='none' stroke='#4e79a7' stroke-width='1'/>\n", path);
  int k = 1;
  for (const auto& v : manifest["variants"]) {
    double x = X(x_of(v, vkey)), y = Y(v["predicted_accuracy"]);
    s += fmt::format(
        "<circle cx='{:.1f}' cy='{:.1f}' r='6' fill='#e15759'/>"
        "<text x='{:.1f}' y='{:.1f}'>v{}</text>\n",
        x, y, x + 8, y - 8, k++);
  }
  s += fmt::format(
      "<rect x='{:.1f}' y='{:.1f}' width='10' height='10' fill='#59a14f'/>"
      "<text x='{:.1f}' y='{:.1f}'>max subnet</text>\n",
      X(max_lat) - 5, Y(max_acc) - 5, X(max_lat) - 70, Y(max_acc) + 18);
  return s + "</svg>\n";
}

// Predicted latency per operator kind (the fused step's ops) for each variant.
std::string breakdown_svg(const nlohmann::json& manifest, const supernet::Supernet& lat,
                          const latency::LatencyTable& lut) {
  struct Row {
    std::string name;
    std::map<std::string, double> ms;
    double total = 0;
  };
  std::vector<Row> rows;
  std::map<std::string, double> overall;
  auto add = [&](const std::string& name, const supernet::SubnetConfig& c) {
    Row r{name, {}, 0};
    for (const auto& [key, ms] : latency::predict(lat, lut, c).steps) {
      std::string op = key.substr(0, key.find('|'));
      r.ms[op] += ms;
      r.total += ms;
      overall[op] += ms;
    }
    rows.push_back(r);
  };
  add("max", supernet::max_subnet(lat.space()));
  int k = 1;
  for (const auto& v : manifest["variants"])
    add(fmt::format("v{}", k++),
        supernet::subnet_from_json(v["subnet"].dump(), "manifest", lat.space()));
  std::vector<std::pair<double, std::string>> kinds;
  for (auto& [op, ms] : overall) kinds.emplace_back(-ms, op);
  std::sort(kinds.begin(), kinds.end());
  std::vector<std::string> shown;
  for (size_t i = 0; i < kinds.size() && i < 9; ++i) shown.push_back(kinds[i].second);
  double max_total = 0;
  for (const Row& r : rows) max_total = std::max(max_total, r.total);
  const double W = 640, L = 50, barh = 18;
  double H = 30 + rows.size() * (barh + 8) + 20 * ((shown.size() + 2) / 3) + 10;
  std::string s = fmt::format(
      "<svg xmlns='http://www.w3.org/2000/svg' width='{}' height='{:.0f}' font-family='sans-serif' "
      "font-size='11'>\n",
      W, H);
  double y = 10;
  for (const Row& r : rows) {
    s += fmt::format("<text x='5' y='{:.0f}'>{}</text>\n", y + 13, r.name);
    double x = L;
    for (const auto& [op, ms] : r.ms) {
      size_t ci = std::find(shown.begin(), shown.end(), op) - shown.begin();
      const char* color = ci < shown.size() ? kColors[ci] : kColors[9];
      double w = ms / max_total * (W - L - 80);
      s += fmt::format(
          "<rect x='{:.1f}' y='{:.0f}' width='{:.1f}' height='{}' fill='{}'>"
          "<title>{}: {:.3f} ms</title></rect>\n",
          x, y, w, barh, color, esc(op), ms);
      x += w;
    }
    s += fmt::format("<text x='{:.1f}' y='{:.0f}'>{:.3f} ms</text>\n", x + 4, y + 13, r.total);
    y += barh + 8;
  }
  y += 10;
  for (size_t i = 0; i <= shown.size(); ++i) {
    std::string label = i < shown.size() ? shown[i] : "other";
    double x = 5 + (i % 3) * 210, yy = y + (i / 3) * 20;
    s += fmt::format(
        "<rect x='{:.0f}' y='{:.0f}' width='10' height='10' fill='{}'/>"
        "<text x='{:.0f}' y='{:.0f}'>{}</text>\n",
        x, yy, kColors[std::min<size_t>(i, 9)], x + 14, yy + 9, esc(label));
  }
  return s + "</svg>\n";
}

// The modifications that cost the most accuracy.
std::string sensitivity_svg(const search::SensitivityTable& t) {
  std::vector<const search::SensitivityTable::Entry*> e;
  for (const auto& x : t.entries) e.push_back(&x);
  std::sort(e.begin(), e.end(), [](auto* a, auto* b) { return a->delta < b->delta; });
  if (e.size() > 20) e.resize(20);
  double worst = 1e-9;
  for (auto* x : e) worst = std::max(worst, -x->delta);
  const double W = 640, L = 300, bar = 14;
  std::string s = fmt::format(
      "<svg xmlns='http://www.w3.org/2000/svg' width='{}' height='{:.0f}' font-family='sans-serif' "
      "font-size='11'>\n",
      W, 10 + e.size() * (bar + 4) + 10);
  double y = 10;
  for (auto* x : e) {
    std::string label = fmt::format("{} {} = {}", supernet::kind_name(x->kind), x->name, x->value);
    if (label.size() > 48) label = label.substr(0, 45) + "...";
    double w = std::max(0.0, -x->delta) / worst * (W - L - 80);
    s += fmt::format(
        "<text x='{}' y='{:.0f}' text-anchor='end'>{}</text>"
        "<rect x='{}' y='{:.0f}' width='{:.1f}' height='{}' fill='#e15759'/>"
        "<text x='{:.1f}' y='{:.0f}'>{:+.2f} pts</text>\n",
        L - 6, y + 11, esc(label), L, y, w, bar, L + w + 4, y + 11, 100 * x->delta);
    y += bar + 4;
  }
  return s + "</svg>\n";
}

}  // namespace

std::string render_report(const nlohmann::json& manifest, const nlohmann::json& search,
                          const search::SensitivityTable& sens, const supernet::Supernet& lat,
                          const latency::LatencyTable& lut) {
  std::time_t now = std::time(nullptr);
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  bool estimated = manifest["estimated_latency"];
  std::string metric = manifest["accuracy_metric"] == "top1" ? "top-1" : "agreement (proxy)";
  std::string h =
      "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>autotailor report</title>\n"
      "<style>body{font-family:sans-serif;max-width:900px;margin:2em auto;color:#222}"
      "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;"
      "text-align:right}th{background:#eee}td:first-child{text-align:left}"
      ".note{color:#a40}</style></head><body>\n";
  h += fmt::format("<h1>autotailor: {}</h1>\n", esc(manifest["model"].get<std::string>()));
  h += fmt::format(
      "<p>Device <b>{}</b> ({}), generated {}. Max subnet: {:.3f} ms predicted, "
      "{:.2f}% {} predicted.</p>\n",
      esc(manifest["device"].get<std::string>()),
      estimated ? "latency estimated from the device descriptor" : "latency measured", date,
      manifest["max_subnet"]["predicted_latency_ms"].get<double>(),
      100 * manifest["max_subnet"]["predicted_accuracy"].get<double>(), metric);
  if (estimated)
    h += "<p class='note'>Latencies for this device are analytic estimates (roofline model of "
         "the device descriptor), not measurements.</p>\n";
  if (manifest["accuracy_metric"] != "top1")
    h += "<p class='note'>No data was given: accuracy is the agreement of each subnet's top-1 "
         "class with the max subnet's on synthetic inputs, a proxy.</p>\n";
  const std::string unit = manifest.value("budget_unit", "ms");
  h += "<h2>Variants</h2>\n<table><tr><th>variant</th><th>budgets</th><th>predicted ms</th>"
       "<th>measured ms</th><th>predicted acc.</th><th>re-ranked acc. (held-out)</th>"
       "<th>measured acc. (test)</th><th>MMACs</th><th>params</th></tr>\n";
  auto opt = [](const nlohmann::json& x, double scale, const char* f) {
    return x.is_null() ? std::string("-") : fmt::format(fmt::runtime(f), scale * x.get<double>());
  };
  int k = 1;
  size_t budgets = 0;
  for (const auto& v : manifest["variants"]) {
    std::string served;
    for (const auto& b : v["budgets"])
      served += (served.empty() ? "" : ", ") + format_budget(b.get<double>(), unit);
    budgets += v["budgets"].size();
    h += fmt::format(
        "<tr><td>v{} <code>{}</code></td><td>{}</td><td>{:.3f}</td><td>{}</td>"
        "<td>{:.2f}%</td><td>{}</td><td>{}</td><td>{:.1f}</td><td>{}</td></tr>\n",
        k++, esc(v["file"].get<std::string>()), served, v["predicted_latency_ms"].get<double>(),
        opt(v["measured_latency_ms"], 1, "{:.3f}"), 100 * v["predicted_accuracy"].get<double>(),
        opt(v.value("reranked_accuracy", nlohmann::json()), 100, "{:.2f}%"),
        opt(v["measured_accuracy"], 100, "{:.2f}%"), v["macs"].get<double>() / 1e6,
        v["parameters"].get<int64_t>());
  }
  const auto& mx = manifest["max_subnet"];
  h += fmt::format(
      "<tr><td>full model (max subnet)</td><td>-</td><td>{:.3f}</td><td>-</td><td>{:.2f}%</td>"
      "<td>{}</td><td>-</td><td>-</td><td>-</td></tr>\n",
      mx["predicted_latency_ms"].get<double>(), 100 * mx["predicted_accuracy"].get<double>(),
      opt(mx.value("reranked_accuracy", nlohmann::json()), 100, "{:.2f}%"));
  h += "</table>\n";
  const nlohmann::json rr = manifest.value("rerank", nlohmann::json());
  if (rr.is_object() && rr.value("finalists_per_budget", 0) > 1)
    h += fmt::format(
        "<p>Re-ranking: the {} best distinct candidates per budget were evaluated exactly on {} "
        "held-out images (BatchNorm recalibrated); the exact evaluation changed the predictor's "
        "pick for {} of {} budgets.</p>\n",
        rr["finalists_per_budget"].get<int>(), rr["probe_images"].get<size_t>(),
        rr["picks_changed"].get<int>(), budgets);
  else
    h += "<p>No re-ranking: each variant is the predictor's pick.</p>\n";
  const nlohmann::json limits = manifest.value("limits", nlohmann::json::object());
  if (limits.contains("max_macs"))
    h += fmt::format("<p>Every variant also has at most {} (<code>--max-macs</code>).</p>\n",
                     format_budget(limits["max_macs"].get<double>(), "macs"));
  if (limits.contains("max_parameters"))
    h += fmt::format("<p>Every variant also has at most {} (<code>--max-params</code>).</p>\n",
                     format_budget(limits["max_parameters"].get<double>(), "parameters"));
  if (budgets > manifest["variants"].size())
    h += fmt::format(
        "<p>{} budgets share {} distinct variants: a larger budget found nothing "
        "better than a smaller one's variant.</p>\n",
        budgets, manifest["variants"].size());
  h += fmt::format(
      "<h2>Pareto front</h2>\n<p>{} candidate evaluations ({:.0f}/s); {} "
      "non-dominated subnets.</p>\n",
      search["evaluations"].get<int64_t>(), search["evaluations_per_second"].get<double>(),
      search["pareto"].size());
  h += pareto_svg(manifest, search);
  h += "<h2>Predicted latency per operator</h2>\n<p>Sum of LUT entries by fused operator "
       "kind, before the per-model calibration.</p>\n";
  h += breakdown_svg(manifest, lat, lut);
  h += fmt::format(
      "<h2>Sensitivity</h2>\n<p>The {} modifications of the {} subnet that cost the most {} "
      "({} probes on {} images, {:.0f} s).</p>\n",
      std::min<size_t>(20, sens.entries.size()), sens.reference, metric, sens.entries.size() + 1,
      sens.probe_images, sens.seconds);
  h += sensitivity_svg(sens);
  h += "</body></html>\n";
  return h;
}

}  // namespace autotailor::cli
