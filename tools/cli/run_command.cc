#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>

#include "commands.h"
#include "progress.h"

namespace orchard::cli {
namespace {

// CLI11's PositiveNumber and NonNegativeNumber print their range up to DBL_MAX (309 digits)
// and accept "inf"; these say the rule in words and want a finite number.
CLI::Validator NumberAtLeast(double low, bool inclusive, const std::string& rule) {
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        double value = 0;
        const bool parsed = CLI::detail::lexical_cast(text, value);
        if (parsed && std::isfinite(value) && (inclusive ? value >= low : value > low)) return {};
        return "must be " + rule + ", not '" + text + "'";
      },
      inclusive ? "NONNEGATIVE" : "POSITIVE");
}
const CLI::Validator kPositive = NumberAtLeast(0, false, "a positive number");
const CLI::Validator kNonNegative = NumberAtLeast(0, true, "0 or a positive number");
// A share of variance: CLI::Range(1e-9, 1) would print its lower bound as "0.000000".
const CLI::Validator kShare(
    [](std::string& text) -> std::string {
      double value = 0;
      if (CLI::detail::lexical_cast(text, value) && value > 0 && value <= 1) return {};
      return "must be more than 0 and at most 1, not '" + text + "'";
    },
    "(0, 1]");

}  // namespace

void AddRunFlags(CLI::App& run, PipelineOptions& options, RunFlags& flags, bool is_update) {
  run.add_option("--input,-i", options.input,
                 "Folder or s3://bucket/prefix of images (label = parent folder name)")
      ->required();
  run.add_option("--output,-o", options.output,
                 "Folder or s3://bucket/prefix for features.csv, features.npy, pca.json, "
                 "errors.csv, manifest.json")
      ->required();
  run.add_option("--model,-m", options.model,
                 "Preset name (see 'orchard models'), or an .onnx file (local or s3://) with its "
                 ".json sidecar")
      ->capture_default_str();
  run.add_option(
      "--s3-endpoint", flags.s3_endpoint,
      "S3-compatible endpoint, e.g. http://127.0.0.1:8333 (default: $AWS_ENDPOINT_URL, else AWS)");
  run.add_option("--backend", options.backend,
                 "Inference backend: onnxruntime (ONNX Runtime, the fast one) or opencv-dnn")
      ->capture_default_str()
      ->check(CLI::IsMember(ExtractorBackendNames()));
  run.add_option("--precision", flags.precision,
                 "fp32, or int8 (the model's quantized variant; used only on CPUs with VNNI, "
                 "fp32 elsewhere with a warning)")
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "int8"}));
  run.add_option("--size", options.size,
                 "Square input resolution, e.g. 100 or 224 (default: the model's)")
      ->check(CLI::Range(1, 4096));
  run.add_option("--pooling", flags.pooling,
                 "Feature pooling: flatten, avg or max (default: the model's)")
      ->check(CLI::IsMember({"flatten", "avg", "max"}));
  auto* components =
      run.add_option("--pca-components", options.pca_components, "Keep K principal components")
          ->check(kPositive);
  run.add_option("--pca-variance", options.pca_variance,
                 "Keep the fewest components explaining this share of variance (default 0.95)")
      ->check(kShare)
      ->excludes(components);
  run.add_option("--batch", options.batch, "Images per inference batch")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  run.add_option("--threads", options.threads,
                 "Cores the run uses, for decoding and inference together (0 = all cores)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1024));
  run.add_option("--parallel-runs", options.parallel_runs,
                 "Inference calls at once, sharing --threads (0 = auto: one per core with "
                 "onnxruntime, 1 with opencv-dnn)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1024));
  run.add_option("--limit", options.limit, "Process only the first N images (0 = all)")
      ->check(kNonNegative);
  run.add_flag("--save-raw", options.save_raw, "Also write raw.npy: descriptors before PCA");
  run.add_flag("--fail-on-error", flags.fail_on_error,
               "Exit 1 if any image failed (they are in errors.csv either way)");
  run.add_option("--max-pixels", options.max_pixels,
                 "Refuse images with more pixels than this (decompression bombs)")
      ->capture_default_str()
      ->check(kPositive);
  run.add_option("--jpeg-dct-scaling", options.jpeg_dct_scaling,
                 "Decode JPEGs at least twice the model's input size scaled down by 1/2, 1/4 "
                 "or 1/8 in the DCT domain (faster; descriptors change slightly): true/false")
      ->capture_default_str();
  run.add_option("--max-pca-dim", options.max_pca_dim,
                 "Largest descriptor dimension for exact PCA (memory: d*d*8 bytes)")
      ->capture_default_str()
      ->check(kPositive);
  run.add_option("--work-dir", options.work_dir,
                 "Folder for temporary spill files (default: system temp)");
  run.add_flag("--quiet,-q", flags.quiet, "No progress output");
  if (!is_update) {
    auto* resume = run.add_flag("--resume", flags.resume,
                                "Continue the interrupted run in --output: images whose "
                                "descriptors are stored there are not featurized again");
    run.add_flag("--overwrite", flags.overwrite,
                 "Delete Orchard's files in --output (results and stored descriptors) first")
        ->excludes(resume);
  }
  run.add_option("--commit-images", options.commit_images,
                 "Commit descriptors to the output's store at least every N images")
      ->capture_default_str()
      ->check(kPositive);
  run.add_option("--commit-seconds", options.commit_seconds,
                 "... or at least this often (the most work a crash can lose)")
      ->capture_default_str()
      ->check(kPositive);
}

bool S3OptionsFor(const std::string& s3_endpoint, S3Options* options) {
  auto from_env = S3OptionsFromEnvironment();
  if (!from_env.ok()) {
    std::fprintf(stderr, "orchard: %s\n", from_env.status().message().c_str());
    return false;
  }
  *options = *from_env;
  if (!s3_endpoint.empty()) {
    if (s3_endpoint.rfind("http://", 0) != 0 && s3_endpoint.rfind("https://", 0) != 0) {
      std::fprintf(stderr, "orchard: --s3-endpoint must start with http:// or https://\n");
      return false;
    }
    options->endpoint = s3_endpoint;
  }
  return true;
}

int RunCommand(PipelineOptions& options, const RunFlags& flags) {
  if (!flags.pooling.empty()) {
    auto pooling = ParsePooling(flags.pooling);
    if (!pooling.ok()) {
      std::fprintf(stderr, "orchard: %s\n", pooling.status().message().c_str());
      return 2;
    }
    options.pooling = *pooling;
  }
  auto precision = ParsePrecision(flags.precision);
  if (!precision.ok()) {
    std::fprintf(stderr, "orchard: %s\n", precision.status().message().c_str());
    return 2;
  }
  options.precision = *precision;
  if (flags.resume) options.mode = OutputMode::kResume;
  if (flags.overwrite) options.mode = OutputMode::kOverwrite;
  if (!S3OptionsFor(flags.s3_endpoint, &options.s3)) return 2;
  // A model that cannot be found is a usage error, reported before any work starts.
  if (auto model = ResolveModel(options.model, ModelSearchPath());
      !IsS3Url(options.model) && !model.ok()) {
    std::fprintf(stderr, "orchard: %s\n", model.status().message().c_str());
    return 2;
  }
  ProgressReporter reporter(!flags.quiet, isatty(STDERR_FILENO) != 0);
  options.on_progress = [&](const Progress& p) { reporter.Update(p); };
  options.on_warning = [](const std::string& message) {
    std::fprintf(stderr, "orchard: WARNING: %s\n", message.c_str());
  };
  auto plan = RunPlan::Make(options, OptionStyle::kCli);
  if (!plan.ok()) {
    std::fprintf(stderr, "orchard: %s (see orchard run --help)\n", plan.status().message().c_str());
    return 2;
  }

  auto summary = RunPipeline(*plan);
  reporter.Finish();
  if (summary.status().code() == StatusCode::kCancelled) {
    std::fprintf(stderr,
                 "orchard: cancelled; what was featurized is committed to the output's store: "
                 "run again with --resume to continue\n");
    return 130;  // 128 + SIGINT, as shells report an interrupted command
  }
  if (!summary.ok()) {
    std::fprintf(stderr, "orchard: %s\n", summary.status().message().c_str());
    return summary.status().is_usage_error() ? 2 : 1;
  }
  std::fprintf(stderr,
               "orchard: %lld images -> %lld x %lld matrix (PCA from %lld dims, %.1f%% of "
               "variance) in %.1f s "
               "(%.1f images/s); %lld failed%s; results in %s\n",
               static_cast<long long>(summary->processed),
               static_cast<long long>(summary->processed), static_cast<long long>(summary->k),
               static_cast<long long>(summary->dim), 100.0 * summary->explained_variance,
               summary->seconds, summary->images_per_second,
               static_cast<long long>(summary->failed), summary->failed ? " (see errors.csv)" : "",
               summary->output.c_str());
  if (summary->reused > 0) {
    std::fprintf(stderr, "orchard: %lld images reused from the descriptor store, %lld featurized\n",
                 static_cast<long long>(summary->reused),
                 static_cast<long long>(summary->featurized));
  }
  if (summary->random_weights) {
    std::fprintf(
        stderr, "orchard: WARNING: model '%s' has RANDOM weights: descriptors are not meaningful\n",
        summary->model_name.c_str());
  }
  return flags.fail_on_error && summary->failed > 0 ? 1 : 0;
}

}  // namespace orchard::cli
