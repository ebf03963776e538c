// Lists an S3 prefix with Orchard's native client and fetches every object with T threads,
// as the pipeline's readers do; prints JSON figures for bench/bench_s3.py.
//   bench_s3_fetch s3://bucket/prefix THREADS [ENDPOINT]
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "orchard/s3.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: bench_s3_fetch s3://bucket/prefix THREADS [ENDPOINT]\n");
    return 2;
  }
  auto options = orchard::S3OptionsFromEnvironment();
  if (!options.ok()) {
    std::fprintf(stderr, "bench_s3_fetch: %s\n", options.status().ToString().c_str());
    return 1;
  }
  if (argc > 3) options->endpoint = argv[3];
  const int threads = std::stoi(argv[2]);
  options->max_connections = std::max(options->max_connections, threads);
  auto storage = orchard::OpenS3Storage(argv[1], *options);
  if (!storage.ok()) {
    std::fprintf(stderr, "bench_s3_fetch: %s\n", storage.status().ToString().c_str());
    return 1;
  }
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  std::vector<std::string> keys;
  orchard::Status listed = (*storage)->List([&](const orchard::ObjectInfo& info) {
    keys.push_back(info.key);
    return orchard::Status::OK();
  });
  const double list_s = std::chrono::duration<double>(Clock::now() - start).count();
  if (!listed.ok()) {
    std::fprintf(stderr, "bench_s3_fetch: %s\n", listed.ToString().c_str());
    return 1;
  }
  std::atomic<size_t> next{0}, bytes{0}, failures{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (size_t i = next++; i < keys.size(); i = next++) {
        auto data = (*storage)->Read(keys[i]);
        if (data.ok()) {
          bytes += data->size();
        } else {
          ++failures;
        }
      }
    });
  }
  for (auto& t : pool) t.join();
  const double total_s = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf(
      "{\"objects\": %zu, \"bytes\": %zu, \"failures\": %zu, \"threads\": %d, \"list_seconds\": "
      "%.4f, "
      "\"total_seconds\": %.4f, \"objects_per_second\": %.1f}\n",
      keys.size(), bytes.load(), failures.load(), threads, list_s, total_s,
      static_cast<double>(keys.size()) / total_s);
  return failures.load() == 0 ? 0 : 1;
}
