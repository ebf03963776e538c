#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>

#include "commands.h"
#include "orchard/csv.h"
#include "orchard/manifest_summary.h"
#include "orchard/model.h"
#include "orchard/s3.h"
#include "orchard/storage.h"

namespace orchard::cli {
namespace {

namespace fs = std::filesystem;

std::string Describe(const PreprocessSpec& p) {
  static const char* kResize[] = {"stretch", "shorter side + center crop"};
  static const char* kInterp[] = {"nearest", "bilinear", "area", "bicubic", "pil-bilinear"};
  char text[256];
  std::snprintf(text, sizeof(text),
                "%s, %s, %s, x*%.6g, mean (%.4g %.4g %.4g), std (%.4g %.4g %.4g)",
                kResize[static_cast<int>(p.resize)], kInterp[static_cast<int>(p.interpolation)],
                p.channel_order == ChannelOrder::kRGB ? "RGB" : "BGR", p.scale, p.mean[0],
                p.mean[1], p.mean[2], p.stddev[0], p.stddev[1], p.stddev[2]);
  return text;
}

// The bytes of a file; nullopt when it cannot be opened.
std::optional<std::string> ReadFileBytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Counts the rows of an orchard CSV by the value of one column (none when it is absent).
std::map<std::string, int64_t> CountByColumn(const fs::path& csv, size_t column) {
  const auto rows = ParseCsv(ReadFileBytes(csv).value_or(""));
  std::map<std::string, int64_t> counts;
  for (size_t i = 1; i < rows.size(); ++i) {
    if (rows[i].size() > column) ++counts[rows[i][column]];
  }
  return counts;
}

}  // namespace

int ListModelsCommand() {
  const auto specs = ListModels(ModelSearchPath());
  std::printf("%-14s %-9s %-9s %-6s %-8s %s\n", "NAME", "WEIGHTS", "INPUT", "DIM", "POOLING",
              "PREPROCESSING");
  for (const ModelSpec& s : specs) {
    std::printf("%-14s %-9s %4dx%-4d %-6d %-8s %s\n", s.name.c_str(), s.weights.c_str(),
                s.preprocess.width, s.preprocess.height, s.feature_channels, PoolingName(s.pooling),
                Describe(s.preprocess).c_str());
    if (s.random_weights()) std::printf("%14s WARNING: random weights, not trained\n", "");
    std::printf("%14s %s\n", "", s.file.string().c_str());
  }
  for (const KnownPreset& known : KnownPresets()) {
    bool present = false;
    for (const ModelSpec& s : specs) present |= s.name == known.name;
    if (!present)
      std::printf("%-14s not on disk yet: %s\n", known.name.c_str(), known.how_to_get.c_str());
  }
  std::printf(
      "\nAny ONNX model works too: --model path/model.onnx with a path/model.json sidecar "
      "(docs/models.md).\n");
  return 0;
}

int LsCommand(const std::string& location, const std::string& s3_endpoint) {
  S3Options s3;
  if (!S3OptionsFor(s3_endpoint, &s3)) return 2;
  auto storage = OpenStorage(location, s3);
  if (!storage.ok()) {
    std::fprintf(stderr, "orchard: %s\n", storage.status().message().c_str());
    return 1;
  }
  std::map<std::string, int64_t> per_label;
  int64_t images = 0, others = 0;
  uint64_t bytes = 0;
  const Status listed = (*storage)->List([&](const ObjectInfo& info) {
    if (HasImageExtension(info.key)) {
      ++per_label[LabelOf(info.key)];
      ++images;
      bytes += info.size;
    } else {
      ++others;
    }
    return Status::OK();
  });
  if (!listed.ok()) {
    std::fprintf(stderr, "orchard: %s\n", listed.message().c_str());
    return 1;
  }
  for (const auto& [label, n] : per_label) {
    std::printf("%-30s %lld\n", label.empty() ? "(no label)" : label.c_str(),
                static_cast<long long>(n));
  }
  std::printf(
      "%lld images (%.1f MB) in %zu labels; %lld other files (they would be listed in "
      "errors.csv)\n",
      static_cast<long long>(images), static_cast<double>(bytes) / 1e6, per_label.size(),
      static_cast<long long>(others));
  return 0;
}

int InspectCommand(const std::string& output_dir) {
  const fs::path dir(output_dir);
  const std::optional<std::string> text = ReadFileBytes(dir / "manifest.json");
  if (!text) {
    std::fprintf(stderr,
                 "orchard: %s has no manifest.json: not an orchard output folder, or a run "
                 "that did not finish (INCOMPLETE; orchard run --resume completes it)\n",
                 output_dir.c_str());
    return 1;
  }
  const auto parsed = ParseManifest(*text);
  if (!parsed.ok()) {
    std::fprintf(stderr, "orchard: %s: %s\n", output_dir.c_str(),
                 parsed.status().message().c_str());
    return 1;
  }
  const ManifestSummary& m = *parsed;
  // The manifest vouches for each result file by size and sha256: a file missing or changed
  // since means the folder does not hold the result the manifest describes.
  std::vector<std::string> problems;
  if (!m.files) {
    problems.push_back("the manifest lists no result files (written before Orchard checked them)");
  } else {
    for (const auto& [name, expected] : *m.files) {
      const fs::path path = dir / name;
      std::error_code ec;
      if (!fs::is_regular_file(path, ec)) {
        problems.push_back(name + " is missing");
        continue;
      }
      const auto size = fs::file_size(path, ec);
      const bool same = !ec && size == expected.bytes && [&] {
        const auto sha256 = Sha256File(path);
        return sha256.ok() && *sha256 == expected.sha256;
      }();
      if (!same) {
        problems.push_back(name + " does not match the manifest (another run's file?)");
      }
    }
  }
  std::printf("status:     %s\n", problems.empty() ? m.status.c_str() : "INCONSISTENT");
  for (const std::string& problem : problems) std::printf("  %s\n", problem.c_str());
  std::printf("images:     %lld listed, %lld processed, %lld failed\n",
              static_cast<long long>(m.listed), static_cast<long long>(m.processed),
              static_cast<long long>(m.failed));
  std::printf("model:      %s (%s weights%s), %s pooling, %lld-d descriptors\n",
              m.model_name.c_str(), m.model_weights.c_str(),
              m.random_weights ? ", NOT TRAINED" : "", m.model_pooling.c_str(),
              static_cast<long long>(m.descriptor_dim));
  if (m.has_pca) {
    std::printf("pca:        %lld components, %.2f%% of variance\n",
                static_cast<long long>(m.pca_k), 100.0 * m.pca_variance_ratio_sum);
  }
  if (m.has_store) {
    std::printf("store:      last run (%s) reused %lld images, featurized %lld; %lld segments\n",
                m.store_mode.c_str(), static_cast<long long>(m.store_reused),
                static_cast<long long>(m.store_featurized),
                static_cast<long long>(m.store_segments));
  }
  if (m.total_seconds) std::printf("time:       %.2f s total\n", *m.total_seconds);
  const auto labels = CountByColumn(dir / "features.csv", 1);
  if (!labels.empty()) {
    std::printf("labels:\n");
    for (const auto& [label, n] : labels)
      std::printf("  %-30s %lld\n", label.c_str(), static_cast<long long>(n));
  }
  const auto stages = CountByColumn(dir / "errors.csv", 1);
  if (!stages.empty()) {
    std::printf("errors by stage:\n");
    for (const auto& [stage, n] : stages)
      std::printf("  %-30s %lld\n", stage.c_str(), static_cast<long long>(n));
  }
  // Exit 0 only for a complete, successful result: what a script may go on with.
  return problems.empty() && m.status == "ok" ? 0 : 1;
}

}  // namespace orchard::cli
