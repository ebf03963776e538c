// bench_sgemm: the machine's practical single-precision peak, measured with OpenBLAS.
//
// Orchard's CNN figures are reported as a share of this number (docs/benchmarks.md), so it
// runs GEMMs shaped like the convolutions of VGG16 lowered to im2col (M = output channels,
// N = output pixels, K = input channels x 3 x 3) plus one large square GEMM, each with the
// requested thread count, and keeps the best of several repetitions (the least disturbed
// by other processes on a shared machine).
//
// Usage: bench_sgemm [--threads N] [--reps R] [--shapes MxNxK,MxNxK,...]
// Output (stdout, one JSON object):
//   {"threads": 2, "gflops": <best over shapes>, "openblas_core": "...",
//    "shapes": [{"m":..,"n":..,"k":..,"gflops":..,"best_seconds":..,"median_seconds":..}]}
// GFLOPS = 2*M*N*K / seconds / 1e9 for C = A * B, row-major, no transposes, alpha 1, beta 0.
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

namespace {

struct Shape {
  int m = 0;
  int n = 0;
  int k = 0;
};

struct Options {
  int threads = 1;
  int reps = 5;
  std::vector<Shape> shapes;
};

// VGG16 at 224x224 as im2col GEMMs (conv4_x, conv3_x, conv2_x) and a square 2048.
std::vector<Shape> DefaultShapes() {
  return {{512, 3136, 4608}, {256, 3136, 2304}, {128, 12544, 1152}, {2048, 2048, 2048}};
}

bool ParseShape(const std::string& text, Shape* shape) {
  return std::sscanf(text.c_str(), "%dx%dx%d", &shape->m, &shape->n, &shape->k) == 3 &&
         shape->m > 0 && shape->n > 0 && shape->k > 0;
}

bool ParseShapes(const std::string& text, std::vector<Shape>* shapes) {
  shapes->clear();
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = text.find(',', start);
    const std::string item =
        text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    Shape shape;
    if (!ParseShape(item, &shape)) return false;
    shapes->push_back(shape);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return !shapes->empty();
}

int Usage(const char* argv0, const char* problem) {
  if (problem != nullptr) std::fprintf(stderr, "bench_sgemm: %s\n", problem);
  std::fprintf(stderr, "usage: %s [--threads N] [--reps R] [--shapes MxNxK[,MxNxK...]]\n", argv0);
  return 2;
}

// Returns 0 when parsed, otherwise the process exit code.
int ParseArgs(int argc, char** argv, Options* options) {
  options->shapes = DefaultShapes();
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      Usage(argv[0], nullptr);
      return 1;
    }
    if (i + 1 >= argc) return Usage(argv[0], ("missing value after " + arg).c_str());
    const std::string value = argv[++i];
    if (arg == "--threads") {
      options->threads = std::atoi(value.c_str());
      if (options->threads < 1) return Usage(argv[0], "--threads must be >= 1");
    } else if (arg == "--reps") {
      options->reps = std::atoi(value.c_str());
      if (options->reps < 1) return Usage(argv[0], "--reps must be >= 1");
    } else if (arg == "--shapes") {
      if (!ParseShapes(value, &options->shapes)) return Usage(argv[0], "bad --shapes");
    } else {
      return Usage(argv[0], ("unknown argument " + arg).c_str());
    }
  }
  return 0;
}

// Best and median wall time of `reps` GEMMs of one shape, after one untimed warm-up.
void TimeShape(const Shape& s, int reps, double* best, double* median) {
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> a(static_cast<size_t>(s.m) * s.k);
  std::vector<float> b(static_cast<size_t>(s.k) * s.n);
  std::vector<float> c(static_cast<size_t>(s.m) * s.n, 0.0f);
  for (float& x : a) x = dist(rng);
  for (float& x : b) x = dist(rng);
  auto run = [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s.m, s.n, s.k, 1.0f, a.data(), s.k,
                b.data(), s.n, 0.0f, c.data(), s.n);
  };
  run();
  std::vector<double> seconds;
  for (int r = 0; r < reps; ++r) {
    const auto start = std::chrono::steady_clock::now();
    run();
    seconds.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(seconds.begin(), seconds.end());
  *best = seconds.front();
  *median = seconds[seconds.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (int code = ParseArgs(argc, argv, &options); code != 0) return code == 1 ? 0 : code;
  openblas_set_num_threads(options.threads);

  std::string shapes_json;
  double peak = 0.0;
  for (const Shape& s : options.shapes) {
    double best = 0.0, median = 0.0;
    TimeShape(s, options.reps, &best, &median);
    const double flop = 2.0 * s.m * s.n * static_cast<double>(s.k);
    const double gflops = flop / best / 1e9;
    peak = std::max(peak, gflops);
    char buffer[256];
    std::snprintf(buffer, sizeof(buffer),
                  "%s{\"m\": %d, \"n\": %d, \"k\": %d, \"gflops\": %.2f, \"best_seconds\": %.6f, "
                  "\"median_seconds\": %.6f}",
                  shapes_json.empty() ? "" : ", ", s.m, s.n, s.k, gflops, best, median);
    shapes_json += buffer;
  }
  std::printf(
      "{\"threads\": %d, \"gflops\": %.2f, \"reps\": %d, \"openblas_core\": \"%s\", "
      "\"openblas_config\": \"%s\", \"shapes\": [%s]}\n",
      options.threads, peak, options.reps, openblas_get_corename(), openblas_get_config(),
      shapes_json.c_str());
  return 0;
}
