#include "test_util.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <random>
#include <stdexcept>

#include "orchard/csv.h"
#include "orchard/extractor.h"

namespace orchard::testing {

std::filesystem::path SourceDir() { return ORCHARD_SOURCE_DIR; }
std::filesystem::path BinaryDir() { return ORCHARD_BINARY_DIR; }

std::filesystem::path SharedDir() {
  if (const char* env = std::getenv("ORCHARD_SHARED_DIR")) return env;
  return SourceDir().parent_path() / "shared";
}

std::filesystem::path FruitsMiniDir() { return SharedDir() / "data" / "fruits-360-mini"; }

std::vector<uint8_t> ReadFileBytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path.string());
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void WriteFileBytes(const std::filesystem::path& path, const std::vector<uint8_t>& bytes) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

std::vector<std::vector<std::string>> ReadCsv(const std::filesystem::path& path) {
  const std::vector<uint8_t> bytes = ReadFileBytes(path);
  return ParseCsv(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

ScratchDir::ScratchDir() {
  std::random_device rd;
  path_ = std::filesystem::temp_directory_path() /
          ("orchard-test-" + std::to_string(rd()) + std::to_string(rd()));
  std::filesystem::create_directories(path_);
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

// Copies the first `per_class` training images of each class, then adds broken files.
void MakeFruitsInput(const std::filesystem::path& dir, int per_class, bool broken) {
  for (const auto& cls : std::filesystem::directory_iterator(FruitsMiniDir() / "Training")) {
    std::vector<std::filesystem::path> files;
    for (const auto& f : std::filesystem::directory_iterator(cls.path())) files.push_back(f.path());
    std::sort(files.begin(), files.end());
    for (int i = 0; i < per_class && i < static_cast<int>(files.size()); ++i) {
      std::filesystem::create_directories(dir / cls.path().filename());
      std::filesystem::copy_file(files[i], dir / cls.path().filename() / files[i].filename());
    }
  }
  if (!broken) return;
  const std::filesystem::path bad = dir / "zz_broken";
  WriteFileBytes(bad / "empty.jpg", {});
  const std::string text = "not an image";
  WriteFileBytes(bad / "text.jpg", {text.begin(), text.end()});
  std::vector<std::filesystem::path> jpegs;
  for (const auto& f :
       std::filesystem::recursive_directory_iterator(FruitsMiniDir() / "Training")) {
    if (f.path().extension() == ".jpg" && f.file_size() > 10000) jpegs.push_back(f.path());
  }
  ASSERT_FALSE(jpegs.empty());
  auto jpeg = ReadFileBytes(*std::min_element(jpegs.begin(), jpegs.end()));
  jpeg.resize(2000);
  WriteFileBytes(bad / "truncated.jpg", jpeg);
  WriteFileBytes(bad / "notes.txt", {'h', 'i'});
  // A PNG header claiming 20000 x 20000 pixels (a decompression bomb).
  std::vector<uint8_t> bomb = {0x89, 'P',  'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A, 0,    0, 0,
                               13,   'I',  'H', 'D', 'R',  0,    0,    0x4E, 0x20, 0, 0,
                               0x4E, 0x20, 8,   2,   0,    0,    0,    0,    0,    0, 0};
  WriteFileBytes(bad / "bomb.png", bomb);
  // Valid but unusual images: they must be processed, not rejected.
  cv::Mat rgba(40, 30, CV_8UC4, cv::Scalar(10, 200, 30, 0));
  std::vector<uint8_t> png;
  cv::imencode(".png", rgba, png);
  WriteFileBytes(dir / "odd/alpha.png", png);
  cv::Mat gray16(30, 40, CV_16UC1, cv::Scalar(40000));
  cv::imencode(".png", gray16, png);
  WriteFileBytes(dir / "odd/gray16.PNG", png);
}

namespace {

// Calls to Extract() since ThrowingBackend() was last called, over all its extractors (a
// backend may make one extractor per concurrent run).
std::atomic<int> g_throwing_calls{0};

class ThrowsOnSecondCall : public FeatureExtractor {
 public:
  explicit ThrowsOnSecondCall(std::unique_ptr<FeatureExtractor> real) : real_(std::move(real)) {}
  int64_t dim() const override { return real_->dim(); }
  std::vector<int> feature_shape() const override { return real_->feature_shape(); }
  Status Extract(int n, const float* batch, float* out) override {
    if (++g_throwing_calls == 2) throw std::runtime_error("library failure inside a worker thread");
    return real_->Extract(n, batch, out);
  }

 private:
  std::unique_ptr<FeatureExtractor> real_;
};

}  // namespace

std::string ThrowingBackend() {
  static const Status registered = RegisterExtractorBackend(
      "throws-once",
      [](const ModelSpec& spec,
         const ExtractorOptions& options) -> Result<std::unique_ptr<FeatureExtractor>> {
        ORCHARD_ASSIGN_OR_RETURN(auto real, CreateExtractor(kDefaultBackend, spec, options));
        return std::unique_ptr<FeatureExtractor>(new ThrowsOnSecondCall(std::move(real)));
      });
  EXPECT_TRUE(registered.ok()) << registered.ToString();
  g_throwing_calls = 0;
  return "throws-once";
}

}  // namespace orchard::testing
