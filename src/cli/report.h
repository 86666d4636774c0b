// report.html of `compile`: one self-contained page (inline SVG and CSS, no scripts).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "autotailor/latency/latency.h"
#include "autotailor/search/search.h"
#include "autotailor/supernet/supernet.h"

namespace autotailor::cli {

std::string render_report(const nlohmann::json& manifest, const nlohmann::json& search,
                          const search::SensitivityTable& sensitivity,
                          const supernet::Supernet& latency_view, const latency::LatencyTable& lut);

}  // namespace autotailor::cli
