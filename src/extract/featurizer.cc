#include "orchard/featurizer.h"

#include <algorithm>
#include <atomic>
#include <system_error>
#include <thread>
#include <tuple>

#include "orchard/cpu.h"
#include "orchard/preprocess.h"
#include "util/catch_all.h"

namespace orchard {

int EffectiveThreads(int requested) {
  return requested > 0 ? requested
                       : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

std::string RandomWeightsWarning(const ModelSpec& spec) {
  return "model '" + spec.name +
         "' has RANDOM weights (seeded, not trained): descriptors are only good for speed and "
         "shape "
         "checks. Put the ImageNet weights in the torch cache and run scripts/export-models again.";
}

InferenceLayout ChooseInferenceLayout(const std::string& backend, int threads, int requested_runs) {
  threads = std::max(1, threads);
  if (backend != "onnxruntime") return {1, threads};
  const int runs = requested_runs > 0 ? std::min(requested_runs, threads) : threads;
  return {runs, std::max(1, threads / runs)};
}

PrecisionChoice ChoosePrecision(Precision requested, const ModelSpec& spec, bool cpu_has_vnni) {
  if (requested == Precision::kFp32) return {};
  const char* name = PrecisionName(requested);
  if (spec.variants.find(name) == spec.variants.end()) {
    return {Precision::kFp32, "model '" + spec.name + "' has no " + name +
                                  " variant in its sidecar: running fp32 (scripts/models/"
                                  "quantize.py makes one)"};
  }
  if (!cpu_has_vnni) {
    return {Precision::kFp32,
            std::string(name) +
                " runs only on CPUs with VNNI (AVX512-VNNI, AVX-VNNI or AMX), which "
                "this one lacks: running fp32"};
  }
  return {requested, ""};
}

Result<LoadedModel> LoadModel(const FeaturizerOptions& options) {
  LoadedModel loaded;
  ORCHARD_ASSIGN_OR_RETURN(loaded.spec, ResolveModel(options.model, ModelSearchPath()));
  ModelSpec& spec = loaded.spec;
  const PrecisionChoice choice =
      ChoosePrecision(options.precision, spec, DetectCpuFeatures().has_vnni());
  loaded.precision = choice.precision;
  if (!choice.warning.empty()) loaded.warnings.push_back(choice.warning);
  if (choice.precision != Precision::kFp32) {
    const ModelVariant& variant = spec.variants.at(PrecisionName(choice.precision));
    spec.file = variant.file;
    spec.sha256 = variant.sha256;
  }
  if (!spec.sha256.empty()) {
    ORCHARD_ASSIGN_OR_RETURN(std::string sha, Sha256File(spec.file));
    if (sha != spec.sha256) {
      return Status::CorruptData("model file " + spec.file.string() + " has sha256 " + sha +
                                 " but its sidecar says " + spec.sha256 + " (re-export the model)");
    }
  }
  loaded.layout = ChooseInferenceLayout(options.backend, EffectiveThreads(options.threads),
                                        options.parallel_runs);
  ExtractorOptions& e = loaded.extractor_options;
  e.width = options.size > 0 ? options.size : spec.preprocess.width;
  e.height = options.size > 0 ? options.size : spec.preprocess.height;
  e.pooling = options.pooling.value_or(spec.pooling);
  e.threads = loaded.layout.threads_per_run;
  loaded.preprocess = spec.preprocess;
  loaded.preprocess.width = e.width;
  loaded.preprocess.height = e.height;
  loaded.decode.max_pixels = options.max_pixels;
  if (options.jpeg_dct_scaling) {
    std::tie(loaded.decode.min_width, loaded.decode.min_height) =
        ScaledDecodeMinimums(loaded.preprocess);
  }
  ORCHARD_ASSIGN_OR_RETURN(loaded.extractor, CreateExtractor(options.backend, spec, e));
  return loaded;
}

Status ExtractWithLayout(const LoadedModel& model, int n, const float* batch, float* out) {
  const int chunks = std::clamp(model.layout.runs, 1, std::max(n, 1));
  if (chunks == 1)
    return CatchAll("inference", [&] { return model.extractor->Extract(n, batch, out); });
  const size_t elements = TensorElements(model.preprocess);
  const auto dim = static_cast<size_t>(model.extractor->dim());
  std::vector<Status> status(static_cast<size_t>(chunks));
  auto run_chunk = [&](int c) {
    const int begin = n * c / chunks, end = n * (c + 1) / chunks;
    status[static_cast<size_t>(c)] = CatchAll("inference", [&] {
      return model.extractor->Extract(end - begin, batch + elements * static_cast<size_t>(begin),
                                      out + dim * static_cast<size_t>(begin));
    });
  };
  std::vector<std::thread> threads;
  for (int c = 1; c < chunks; ++c) {
    try {
      threads.emplace_back(run_chunk, c);
    } catch (const std::system_error&) {
      run_chunk(c);  // no thread to be had: this one runs the chunk
    }
  }
  run_chunk(0);
  for (auto& t : threads) t.join();
  for (const Status& s : status) ORCHARD_RETURN_NOT_OK(s);
  return Status::OK();
}

Result<std::unique_ptr<Featurizer>> Featurizer::Create(const FeaturizerOptions& options) {
  ORCHARD_ASSIGN_OR_RETURN(LoadedModel model, LoadModel(options));
  return std::unique_ptr<Featurizer>(new Featurizer(std::move(model), options));
}

Result<FeaturizeResult> Featurizer::Featurize(const std::vector<std::span<const uint8_t>>& images) {
  const size_t n = images.size();
  const size_t elements = TensorElements(model_.preprocess);
  std::vector<float> tensor(elements * n);
  std::vector<Status> status(n);
  std::vector<const char*> stage(n, "");
  const DecodeOptions& decode = model_.decode;
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next++; i < n; i = next++) {
      // A library that throws (OpenCV, an allocation) fails the image, not the process.
      stage[i] = "decode";
      status[i] = CatchAll("decode", [&] {
        auto image = DecodeImage(images[i], decode);
        if (!image.ok()) return image.status();
        stage[i] = "preprocess";
        return Preprocess(*image, model_.preprocess, tensor.data() + elements * i);
      });
    }
  };
  const int threads =
      std::min<int>(EffectiveThreads(options_.threads), static_cast<int>(std::max<size_t>(n, 1)));
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) {
    try {
      pool.emplace_back(work);
    } catch (const std::system_error&) {
      break;  // fewer threads: the calling one takes what is left
    }
  }
  work();
  for (auto& t : pool) t.join();

  FeaturizeResult result;
  // Compact the good tensors to the front, keeping batch order.
  size_t good = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!status[i].ok()) {
      result.errors.push_back({static_cast<int64_t>(i), stage[i], status[i].message()});
      continue;
    }
    if (good != i)
      std::copy_n(tensor.data() + elements * i, elements, tensor.data() + elements * good);
    result.indices.push_back(static_cast<int64_t>(i));
    ++good;
  }
  result.features.resize(good * static_cast<size_t>(dim()));
  if (good > 0) {
    Status extracted =
        ExtractWithLayout(model_, static_cast<int>(good), tensor.data(), result.features.data());
    if (!extracted.ok()) {
      for (int64_t i : result.indices) result.errors.push_back({i, "extract", extracted.message()});
      std::sort(result.errors.begin(), result.errors.end(),
                [](const ImageError& a, const ImageError& b) { return a.index < b.index; });
      result.indices.clear();
      result.features.clear();
    }
  }
  return result;
}

}  // namespace orchard
