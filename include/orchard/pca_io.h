// JSON form of a PcaModel (pca.json): mean, components, explained variance and ratio, k.
#pragma once

#include <nlohmann/json.hpp>

#include "orchard/pca.h"
#include "orchard/status.h"

namespace orchard {

// Doubles are written so that they round-trip exactly.
nlohmann::json PcaModelToJson(const PcaModel& model);
Result<PcaModel> PcaModelFromJson(const nlohmann::json& j);

}  // namespace orchard
