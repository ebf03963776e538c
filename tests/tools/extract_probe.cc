// Test helper: runs a model through Orchard's extractor on a raw float32 NCHW tensor and
// writes the pooled descriptors, so that Python tests can compare them with PyTorch on the
// very same tensor.
//   extract_probe MODEL SIZE POOLING N IN.f32 OUT.f32   (prints the descriptor length)
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "orchard/extractor.h"
#include "orchard/model.h"

int main(int argc, char** argv) {
  if (argc != 7) {
    std::fprintf(stderr, "usage: extract_probe MODEL SIZE POOLING N IN.f32 OUT.f32\n");
    return 2;
  }
  auto spec = orchard::ResolveModel(argv[1], orchard::ModelSearchPath());
  auto pooling = orchard::ParsePooling(argv[3]);
  if (!spec.ok() || !pooling.ok()) {
    std::fprintf(stderr, "extract_probe: %s\n",
                 (!spec.ok() ? spec.status() : pooling.status()).ToString().c_str());
    return 1;
  }
  const int size = std::stoi(argv[2]);
  const int n = std::stoi(argv[4]);
  orchard::ExtractorOptions options;
  options.width = size;
  options.height = size;
  options.pooling = *pooling;
  auto extractor = orchard::CreateExtractor("opencv-dnn", *spec, options);
  if (!extractor.ok()) {
    std::fprintf(stderr, "extract_probe: %s\n", extractor.status().ToString().c_str());
    return 1;
  }
  std::vector<float> input(static_cast<size_t>(n) * 3 * size * size);
  std::ifstream in(argv[5], std::ios::binary);
  if (!in.read(reinterpret_cast<char*>(input.data()),
               static_cast<std::streamsize>(input.size() * sizeof(float)))) {
    std::fprintf(stderr, "extract_probe: %s is shorter than %d x 3 x %d x %d floats\n", argv[5], n,
                 size, size);
    return 1;
  }
  std::vector<float> out(static_cast<size_t>(n) * static_cast<size_t>((*extractor)->dim()));
  if (auto status = (*extractor)->Extract(n, input.data(), out.data()); !status.ok()) {
    std::fprintf(stderr, "extract_probe: %s\n", status.ToString().c_str());
    return 1;
  }
  std::ofstream(argv[6], std::ios::binary)
      .write(reinterpret_cast<const char*>(out.data()),
             static_cast<std::streamsize>(out.size() * sizeof(float)));
  std::printf("%lld\n", static_cast<long long>((*extractor)->dim()));
  return 0;
}
