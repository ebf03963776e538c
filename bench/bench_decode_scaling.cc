// JPEG decoding scaled in the DCT domain (DecodeOptions::min_width/min_height) against full
// decoding, on a folder of images laid out as <split>/<class>/<image> (Fruits-360):
// - time per image of decode and preprocess (the model preset's PreprocessSpec at --size),
//   best of --reps per image so that a busy machine disturbs the figures less, and of the
//   model's forward pass (batch --batch, --threads cores), for the share of decoding;
// - how much the descriptors move: cosine between the full and scaled descriptor per image;
// - nearest-centroid accuracy with and without scaling: centroids are the per-class means
//   of the L2-normalised descriptors of the Training images, Test images go to the class of
//   the highest cosine, the label is the parent folder's name.
// --sweep adds the measurement behind the choice of factors (image.h): decode + INTER_AREA
// time at every TurboJPEG factor <= 1 on the images each one may serve.
//
//   bench_decode_scaling [--dir DIR] [--size 224] [--model mobilenet_v2]
//                        [--backend opencv-dnn] [--threads 1] [--reps 5] [--batch 16] [--gap 1]
//                        [--sweep]
#include <turbojpeg.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <numeric>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "orchard/extractor.h"
#include "orchard/image.h"
#include "orchard/model.h"
#include "orchard/preprocess.h"

namespace {

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

struct Flags {
  std::string dir = ORCHARD_SOURCE_DIR "/samples/fruits-360-mini";
  int size = 224;  // 0 = the model's native size
  std::string model = "mobilenet_v2";
  std::string backend = "opencv-dnn";
  int threads = 1;
  int reps = 5;
  int batch = 16;
  bool sweep = false;
  double gap = 1.0;  // the decode hint asks for sides >= gap x the model input
};

struct Sample {
  std::filesystem::path path;
  std::string label;  // parent folder
  bool train = false;
  std::vector<uint8_t> bytes;
};

void Die(const std::string& message) {
  std::fprintf(stderr, "bench_decode_scaling: %s\n", message.c_str());
  std::exit(1);
}

template <typename T>
T ValueOrDie(orchard::Result<T> result) {
  if (!result.ok()) Die(result.status().ToString());
  return result.MoveValue();
}

void CheckOk(const orchard::Status& status) {
  if (!status.ok()) Die(status.ToString());
}

Flags ParseFlags(int argc, char** argv) {
  Flags f;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Die("missing value after " + arg);
      return argv[++i];
    };
    if (arg == "--dir") {
      f.dir = value();
    } else if (arg == "--size") {
      f.size = std::stoi(value());
    } else if (arg == "--model") {
      f.model = value();
    } else if (arg == "--backend") {
      f.backend = value();
    } else if (arg == "--threads") {
      f.threads = std::stoi(value());
    } else if (arg == "--reps") {
      f.reps = std::max(1, std::stoi(value()));
    } else if (arg == "--batch") {
      f.batch = std::max(1, std::stoi(value()));
    } else if (arg == "--sweep") {
      f.sweep = true;
    } else if (arg == "--gap") {
      f.gap = std::stod(value());
      if (!(f.gap >= 1.0)) Die("--gap must be >= 1");
    } else {
      Die("unknown flag " + arg +
          " (flags: --dir --size --model --backend --threads --reps --batch --sweep --gap)");
    }
  }
  return f;
}

std::vector<Sample> LoadSamples(const std::filesystem::path& dir) {
  std::vector<Sample> samples;
  if (!std::filesystem::is_directory(dir)) Die("not a folder: " + dir.string());
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    std::string ext = entry.path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (ext != ".jpg" && ext != ".jpeg" && ext != ".png") continue;
    Sample s;
    s.path = entry.path();
    s.label = entry.path().parent_path().filename().string();
    s.train = entry.path().parent_path().parent_path().filename() == "Training";
    std::ifstream in(entry.path(), std::ios::binary);
    s.bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    samples.push_back(std::move(s));
  }
  std::sort(samples.begin(), samples.end(),
            [](const Sample& a, const Sample& b) { return a.path < b.path; });
  return samples;
}

// The decode hint for a preprocessing: the smallest image it can take without upscaling,
// times `gap` (as Pillow's thumbnail(reducing_gap=...): the larger, the closer the two-step
// resize comes to a single resize of the full image, and the fewer images are scaled).
orchard::DecodeOptions DecodeHintFor(const orchard::PreprocessSpec& spec, double gap) {
  orchard::DecodeOptions options;
  if (spec.resize == orchard::ResizePolicy::kStretch) {
    options.min_width = static_cast<int>(std::ceil(spec.width * gap));
    options.min_height = static_cast<int>(std::ceil(spec.height * gap));
  } else {  // the shorter side is resized to S = int(size / crop_fraction), then cropped
    const int s = static_cast<int>(std::min(spec.width, spec.height) / spec.crop_fraction);
    options.min_width = options.min_height = static_cast<int>(std::ceil(s * gap));
  }
  return options;
}

struct Timing {
  double decode_ms = 0;      // best of reps
  double preprocess_ms = 0;  // best of reps
};

// Decodes and preprocesses one image `reps` times; keeps the best of each stage.
Timing TimeOne(const Sample& s, const orchard::DecodeOptions& decode,
               const orchard::PreprocessSpec& spec, int reps, float* tensor, int* width) {
  Timing t{1e30, 1e30};
  for (int r = 0; r < reps; ++r) {
    auto start = Clock::now();
    auto image = DecodeImage(std::span<const uint8_t>(s.bytes), decode);
    t.decode_ms = std::min(t.decode_ms, MsSince(start));
    if (!image.ok()) Die(s.path.string() + ": " + image.status().ToString());
    *width = image->width;
    start = Clock::now();
    CheckOk(orchard::Preprocess(*image, spec, tensor));
    t.preprocess_ms = std::min(t.preprocess_ms, MsSince(start));
  }
  return t;
}

void Normalize(float* v, int64_t d) {
  double norm = 0;
  for (int64_t j = 0; j < d; ++j) norm += double{v[j]} * v[j];
  const double inv = norm > 0 ? 1.0 / std::sqrt(norm) : 0.0;
  for (int64_t j = 0; j < d; ++j) v[j] = static_cast<float>(v[j] * inv);
}

double Dot(const float* a, const float* b, int64_t d) {
  double sum = 0;
  for (int64_t j = 0; j < d; ++j) sum += double{a[j]} * b[j];
  return sum;
}

// Nearest-centroid accuracy: centroids from the training rows of `train_features`, test rows
// of `test_features` classified by max cosine. Features are L2-normalised rows.
std::pair<int, int> NearestCentroid(const std::vector<Sample>& samples,
                                    const std::vector<float>& train_features,
                                    const std::vector<float>& test_features, int64_t d) {
  std::map<std::string, std::vector<double>> sums;
  for (size_t i = 0; i < samples.size(); ++i) {
    if (!samples[i].train) continue;
    auto& sum = sums[samples[i].label];
    sum.resize(static_cast<size_t>(d), 0.0);
    for (int64_t j = 0; j < d; ++j) sum[static_cast<size_t>(j)] += train_features[i * d + j];
  }
  std::vector<std::pair<std::string, std::vector<float>>> centroids;
  for (const auto& [label, sum] : sums) {
    std::vector<float> c(sum.begin(), sum.end());
    Normalize(c.data(), d);
    centroids.emplace_back(label, std::move(c));
  }
  int correct = 0, total = 0;
  for (size_t i = 0; i < samples.size(); ++i) {
    if (samples[i].train) continue;
    const float* x = &test_features[i * d];
    double best = -2;
    const std::string* predicted = nullptr;
    for (const auto& [label, c] : centroids) {
      const double cosine = Dot(x, c.data(), d);
      if (cosine > best) {
        best = cosine;
        predicted = &label;
      }
    }
    ++total;
    if (predicted != nullptr && *predicted == samples[i].label) ++correct;
  }
  return {correct, total};
}

// Decode + INTER_AREA time at every TurboJPEG factor <= 1, best of `reps` per image and
// factor, over the JPEGs whose scaled sides stay >= min_w x min_h; then the allowed-factor
// sets considered for DecodeOptions, applied as DecodeJpeg does (smallest allowed factor).
void Sweep(const std::vector<Sample>& samples, int min_w, int min_h, int target_w, int target_h,
           int reps) {
  int count = 0;
  const tjscalingfactor* all = tjGetScalingFactors(&count);
  std::vector<tjscalingfactor> factors;
  for (int i = 0; i < count; ++i) {
    if (all[i].num <= all[i].denom) factors.push_back(all[i]);  // 1/1 first, then shrinking
  }
  tjhandle tj = tjInitDecompress();
  // time[f][i]: ms for factor f on image i; < 0 where f would go below the target.
  std::vector<std::vector<double>> time(factors.size(), std::vector<double>(samples.size(), -1));
  int jpegs = 0;
  for (size_t i = 0; i < samples.size(); ++i) {
    const auto& b = samples[i].bytes;
    int w = 0, h = 0, subsamp = 0, colorspace = 0;
    if (tjDecompressHeader3(tj, b.data(), static_cast<unsigned long>(b.size()), &w, &h, &subsamp,
                            &colorspace) != 0) {
      continue;  // not a JPEG TurboJPEG reads
    }
    ++jpegs;
    for (size_t f = 0; f < factors.size(); ++f) {
      const int sw = TJSCALED(w, factors[f]), sh = TJSCALED(h, factors[f]);
      if (f > 0 && (sw < min_w || sh < min_h)) continue;
      double best = 1e30;
      for (int r = 0; r < reps; ++r) {
        const auto start = Clock::now();
        cv::Mat decoded(sh, sw, CV_8UC3), resized;
        if (tjDecompress2(tj, b.data(), static_cast<unsigned long>(b.size()), decoded.data, sw, 0,
                          sh, TJPF_RGB, 0) != 0) {
          Die(samples[i].path.string() + ": " + tjGetErrorStr2(tj));
        }
        cv::resize(decoded, resized, cv::Size(target_w, target_h), 0, 0, cv::INTER_AREA);
        best = std::min(best, MsSince(start));
      }
      time[f][i] = best;
    }
  }
  tjDestroy(tj);
  std::printf("\nsweep: decode (sides >= %dx%d) + INTER_AREA to %dx%d, best of %d, %d JPEGs\n",
              min_w, min_h, target_w, target_h, reps, jpegs);
  std::printf("  %-6s %7s %12s %12s %7s\n", "factor", "images", "scaled ms", "full ms", "speedup");
  for (size_t f = 1; f < factors.size(); ++f) {
    double scaled = 0, full = 0;
    int n = 0;
    for (size_t i = 0; i < samples.size(); ++i) {
      if (time[f][i] < 0) continue;
      scaled += time[f][i];
      full += time[0][i];
      ++n;
    }
    char name[16];
    std::snprintf(name, sizeof(name), "%d/%d", factors[f].num, factors[f].denom);
    if (n == 0) {
      std::printf("  %-6s %7d %12s %12s %7s\n", name, 0, "-", "-", "-");
    } else {
      std::printf("  %-6s %7d %12.3f %12.3f %6.2fx\n", name, n, scaled / n, full / n,
                  full / scaled);
    }
  }
  const std::vector<std::pair<const char*, std::vector<std::pair<int, int>>>> policies = {
      {"none", {}},
      {"1/2 1/4 1/8 (Orchard)", {{1, 2}, {1, 4}, {1, 8}}},
      {"+3/8", {{1, 2}, {3, 8}, {1, 4}, {1, 8}}},
      {"+5/8", {{5, 8}, {1, 2}, {1, 4}, {1, 8}}},
      {"+3/4 5/8 3/8", {{3, 4}, {5, 8}, {1, 2}, {3, 8}, {1, 4}, {1, 8}}},
      {"every factor < 1", {{7, 8}, {3, 4}, {5, 8}, {1, 2}, {3, 8}, {1, 4}, {1, 8}}},
  };
  std::printf("  allowed factors (smallest allowed is used)   ms/JPEG   scaled\n");
  for (const auto& [name, allowed] : policies) {
    double total = 0;
    int scaled = 0, n = 0;
    for (size_t i = 0; i < samples.size(); ++i) {
      if (time[0][i] < 0) continue;
      size_t pick = 0;
      for (size_t f = 1; f < factors.size(); ++f) {
        const bool in_set = std::any_of(allowed.begin(), allowed.end(), [&](auto p) {
          return p.first == factors[f].num && p.second == factors[f].denom;
        });
        if (in_set && time[f][i] >= 0) pick = f;
      }
      total += time[pick][i];
      scaled += pick != 0;
      ++n;
    }
    std::printf("  %-42s %8.3f  %4d/%d\n", name, total / std::max(n, 1), scaled, n);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const Flags flags = ParseFlags(argc, argv);
  cv::setNumThreads(1);  // per-image figures: one core per image, as a pipeline worker
  const std::vector<Sample> samples = LoadSamples(flags.dir);
  if (samples.empty()) Die("no images under " + flags.dir);
  const size_t n = samples.size();
  const size_t n_train = static_cast<size_t>(
      std::count_if(samples.begin(), samples.end(), [](const Sample& s) { return s.train; }));

  const orchard::ModelSpec model =
      ValueOrDie(orchard::ResolveModel(flags.model, orchard::ModelSearchPath()));
  orchard::PreprocessSpec spec = model.preprocess;
  if (flags.size > 0) spec.width = spec.height = flags.size;
  CheckOk(orchard::ValidatePreprocessSpec(spec));
  orchard::ExtractorOptions extractor_options;
  extractor_options.width = spec.width;
  extractor_options.height = spec.height;
  extractor_options.pooling = model.pooling;
  extractor_options.threads = flags.threads;
  auto extractor = ValueOrDie(orchard::CreateExtractor(flags.backend, model, extractor_options));
  const int64_t d = extractor->dim();

  const orchard::DecodeOptions full_options;
  const orchard::DecodeOptions scaled_options = DecodeHintFor(spec, flags.gap);
  const size_t elements = orchard::TensorElements(spec);

  // Decode + preprocess, both ways, interleaved per image so drifts hit both alike.
  std::vector<float> full_tensor(elements * n), scaled_tensor(elements * n);
  Timing full_sum, scaled_sum;
  double full_on_scaled = 0, scaled_on_scaled = 0;  // decode + preprocess, scaled images only
  int scaled_images = 0;
  std::map<int, int> reductions;  // full width / scaled width -> images
  std::vector<int> reduction_of(n, 1);
  for (size_t i = 0; i < n; ++i) {
    int full_width = 0, scaled_width = 0;
    const Timing f = TimeOne(samples[i], full_options, spec, flags.reps, &full_tensor[elements * i],
                             &full_width);
    const Timing s = TimeOne(samples[i], scaled_options, spec, flags.reps,
                             &scaled_tensor[elements * i], &scaled_width);
    full_sum.decode_ms += f.decode_ms;
    full_sum.preprocess_ms += f.preprocess_ms;
    scaled_sum.decode_ms += s.decode_ms;
    scaled_sum.preprocess_ms += s.preprocess_ms;
    reduction_of[i] = static_cast<int>(std::lround(double{1.0} * full_width / scaled_width));
    ++reductions[reduction_of[i]];
    if (scaled_width != full_width) {
      ++scaled_images;
      full_on_scaled += f.decode_ms + f.preprocess_ms;
      scaled_on_scaled += s.decode_ms + s.preprocess_ms;
    }
  }

  // Descriptors, both ways; the forward pass is timed on the full-decode batches, best of
  // min(reps, 3) per batch.
  std::vector<float> full_features(static_cast<size_t>(d) * n), scaled_features(full_features);
  double extract_ms = 0;
  for (size_t begin = 0; begin < n; begin += static_cast<size_t>(flags.batch)) {
    const int count = static_cast<int>(std::min(n - begin, static_cast<size_t>(flags.batch)));
    double best = 1e30;
    for (int r = 0; r < std::min(flags.reps, 3); ++r) {
      const auto start = Clock::now();
      CheckOk(extractor->Extract(count, &full_tensor[elements * begin],
                                 &full_features[static_cast<size_t>(d) * begin]));
      best = std::min(best, MsSince(start));
    }
    extract_ms += best;
    CheckOk(extractor->Extract(count, &scaled_tensor[elements * begin],
                               &scaled_features[static_cast<size_t>(d) * begin]));
  }
  std::vector<double> cosines(n);
  for (size_t i = 0; i < n; ++i) {
    Normalize(&full_features[i * d], d);
    Normalize(&scaled_features[i * d], d);
    cosines[i] = Dot(&full_features[i * d], &scaled_features[i * d], d);
  }
  // Geometry alone: a full decode padded (edge pixels repeated) to whole blocks of the
  // factor used, as the scaled decode sees it. Cosines against full and scaled descriptors
  // split the change into geometry and the reduced IDCT's filtering. Padding goes right and
  // bottom, exact for images without EXIF rotation.
  std::vector<double> geometry_vs_full(n, 1.0), geometry_vs_scaled(n, 1.0);
  {
    std::vector<float> tensor(elements), features(static_cast<size_t>(d));
    for (size_t i = 0; i < n; ++i) {
      const int k = reduction_of[i];
      if (k == 1) continue;
      auto full = ValueOrDie(orchard::DecodeImage(std::span<const uint8_t>(samples[i].bytes)));
      const cv::Mat mat(full.height, full.width, CV_8UC3, full.rgb.data());
      cv::Mat padded;
      cv::copyMakeBorder(mat, padded, 0, (full.height + k - 1) / k * k - full.height, 0,
                         (full.width + k - 1) / k * k - full.width, cv::BORDER_REPLICATE);
      orchard::Image image;
      image.width = padded.cols;
      image.height = padded.rows;
      image.rgb.assign(padded.data, padded.data + padded.total() * padded.elemSize());
      CheckOk(orchard::Preprocess(image, spec, tensor.data()));
      CheckOk(extractor->Extract(1, tensor.data(), features.data()));
      Normalize(features.data(), d);
      geometry_vs_full[i] = Dot(features.data(), &full_features[i * d], d);
      geometry_vs_scaled[i] = Dot(features.data(), &scaled_features[i * d], d);
    }
  }
  std::vector<double> sorted = cosines;
  std::sort(sorted.begin(), sorted.end());
  const double cos_mean = std::accumulate(cosines.begin(), cosines.end(), 0.0) / double(n);
  const auto [full_ok, tests] = NearestCentroid(samples, full_features, full_features, d);
  const auto [scaled_ok, tests2] = NearestCentroid(samples, scaled_features, scaled_features, d);
  const auto [mixed_ok, tests3] = NearestCentroid(samples, full_features, scaled_features, d);

  const double per = 1.0 / double(n);
  const double full_dp = (full_sum.decode_ms + full_sum.preprocess_ms) * per;
  const double scaled_dp = (scaled_sum.decode_ms + scaled_sum.preprocess_ms) * per;
  const double extract_per = extract_ms * per;
  std::printf("%zu images (%zu Training, %zu Test) in %s\n", n, n_train, n - n_train,
              flags.dir.c_str());
  std::printf("model %s at %dx%d (%s), backend %s, %d thread(s), batch %d, best of %d\n",
              model.name.c_str(), spec.width, spec.height,
              spec.resize == orchard::ResizePolicy::kStretch ? "stretch" : "shorter-side crop",
              flags.backend.c_str(), flags.threads, flags.batch, flags.reps);
  std::printf("decode hint min %dx%d; decoded at 1/1:", scaled_options.min_width,
              scaled_options.min_height);
  for (const auto& [reduction, images] : reductions) {
    if (reduction == 1) std::printf(" %d", images);
  }
  for (const auto& [reduction, images] : reductions) {
    if (reduction != 1) std::printf(", 1/%d: %d", reduction, images);
  }
  std::printf("\n\n%-28s %10s %10s %8s\n", "ms/image", "full", "scaled", "ratio");
  std::printf("%-28s %10.3f %10.3f %7.2fx\n", "decode", full_sum.decode_ms * per,
              scaled_sum.decode_ms * per, full_sum.decode_ms / scaled_sum.decode_ms);
  std::printf("%-28s %10.3f %10.3f %7.2fx\n", "preprocess", full_sum.preprocess_ms * per,
              scaled_sum.preprocess_ms * per, full_sum.preprocess_ms / scaled_sum.preprocess_ms);
  std::printf("%-28s %10.3f %10.3f %7.2fx\n", "decode + preprocess", full_dp, scaled_dp,
              full_dp / scaled_dp);
  if (scaled_images > 0) {
    std::printf("%-28s %10.3f %10.3f %7.2fx\n",
                ("  same, " + std::to_string(scaled_images) + " scaled only").c_str(),
                full_on_scaled / scaled_images, scaled_on_scaled / scaled_images,
                full_on_scaled / scaled_on_scaled);
  }
  std::printf("%-28s %10.3f %10.3f\n", "extract (forward pass)", extract_per, extract_per);
  std::printf("%-28s %10.3f %10.3f %7.2fx\n", "decode + preprocess + extract",
              full_dp + extract_per, scaled_dp + extract_per,
              (full_dp + extract_per) / (scaled_dp + extract_per));
  std::printf("%-28s %9.1f%% %9.1f%%\n", "decode share of the three",
              100.0 * full_sum.decode_ms * per / (full_dp + extract_per),
              100.0 * scaled_sum.decode_ms * per / (scaled_dp + extract_per));
  std::printf("\ncosine(full, scaled) per image: min %.4f, 1st pct %.4f, median %.4f, mean %.4f\n",
              sorted.front(), sorted[n / 100], sorted[n / 2], cos_mean);
  for (const auto& [reduction, images] : reductions) {
    if (reduction == 1) continue;
    double lo = 2, sum = 0, geometry_lo = 2, geometry_sum = 0, filter_lo = 2, filter_sum = 0;
    for (size_t i = 0; i < n; ++i) {
      if (reduction_of[i] != reduction) continue;
      lo = std::min(lo, cosines[i]);
      sum += cosines[i];
      geometry_lo = std::min(geometry_lo, geometry_vs_full[i]);
      geometry_sum += geometry_vs_full[i];
      filter_lo = std::min(filter_lo, geometry_vs_scaled[i]);
      filter_sum += geometry_vs_scaled[i];
    }
    std::printf(
        "  decoded at 1/%d: %3d images, cosine min %.4f mean %.4f; geometry alone min %.4f "
        "mean %.4f; IDCT filter alone min %.4f mean %.4f\n",
        reduction, images, lo, sum / images, geometry_lo, geometry_sum / images, filter_lo,
        filter_sum / images);
  }
  {
    // For scale: how alike two different photographs of one fruit are (full decodes).
    double sum = 0;
    int pairs = 0;
    for (size_t i = 0; i < n; ++i) {
      for (size_t j = i + 1; j < n; ++j) {
        if (samples[i].train || samples[j].train || samples[i].label != samples[j].label) continue;
        sum += Dot(&full_features[i * d], &full_features[j * d], d);
        ++pairs;
      }
    }
    if (pairs > 0) {
      std::printf("  for scale, mean cosine of two Test images of one class: %.4f\n", sum / pairs);
    }
  }
  std::printf(
      "nearest-centroid accuracy: full %d/%d, scaled %d/%d, "
      "centroids full + test scaled %d/%d\n",
      full_ok, tests, scaled_ok, tests2, mixed_ok, tests3);
  std::printf(
      "SUMMARY size=%d gap=%.2f backend=%s decode+preprocess full %.3f ms scaled %.3f ms (%.2fx), "
      "+extract %.2fx, cos min %.4f mean %.4f, accuracy full %d/%d scaled %d/%d\n",
      spec.width, flags.gap, flags.backend.c_str(), full_dp, scaled_dp, full_dp / scaled_dp,
      (full_dp + extract_per) / (scaled_dp + extract_per), sorted.front(), cos_mean, full_ok, tests,
      scaled_ok, tests2);

  if (flags.sweep) {
    Sweep(samples, scaled_options.min_width, scaled_options.min_height, spec.width, spec.height,
          flags.reps);
  }
  return 0;
}
