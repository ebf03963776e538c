#include "test_util.h"

#include <cstdlib>
#include <fstream>
#include <random>
#include <stdexcept>

#include "orchard/csv.h"

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

}  // namespace orchard::testing
