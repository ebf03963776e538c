#include "orchard/featurizer.h"

#include <algorithm>
#include <atomic>
#include <thread>

#include "orchard/preprocess.h"

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

Result<LoadedModel> LoadModel(const FeaturizerOptions& options) {
  LoadedModel loaded;
  ORCHARD_ASSIGN_OR_RETURN(loaded.spec, ResolveModel(options.model, ModelSearchPath()));
  const ModelSpec& spec = loaded.spec;
  if (!spec.sha256.empty()) {
    ORCHARD_ASSIGN_OR_RETURN(std::string sha, Sha256File(spec.file));
    if (sha != spec.sha256) {
      return Status::CorruptData("model file " + spec.file.string() + " has sha256 " + sha +
                                 " but its sidecar says " + spec.sha256 + " (re-export the model)");
    }
  }
  ExtractorOptions& e = loaded.extractor_options;
  e.width = options.size > 0 ? options.size : spec.preprocess.width;
  e.height = options.size > 0 ? options.size : spec.preprocess.height;
  e.pooling = options.pooling.value_or(spec.pooling);
  e.threads = EffectiveThreads(options.threads);
  loaded.preprocess = spec.preprocess;
  loaded.preprocess.width = e.width;
  loaded.preprocess.height = e.height;
  ORCHARD_ASSIGN_OR_RETURN(loaded.extractor, CreateExtractor(options.backend, spec, e));
  return loaded;
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
  const DecodeOptions decode{options_.max_pixels};
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next++; i < n; i = next++) {
      auto image = DecodeImage(images[i], decode);
      if (!image.ok()) {
        status[i] = image.status();
        stage[i] = "decode";
        continue;
      }
      status[i] = Preprocess(*image, model_.preprocess, tensor.data() + elements * i);
      stage[i] = "preprocess";
    }
  };
  const int threads =
      std::min<int>(EffectiveThreads(options_.threads), static_cast<int>(std::max<size_t>(n, 1)));
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
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
        model_.extractor->Extract(static_cast<int>(good), tensor.data(), result.features.data());
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
