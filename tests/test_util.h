// Helpers shared by the GoogleTest suite: where the repository and the shared data live,
// and scratch directories that clean up after themselves.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace orchard::testing {

// The repository root (compiled in).
std::filesystem::path SourceDir();
// The build directory holding the orchard binary (compiled in).
std::filesystem::path BinaryDir();
// ../shared next to the repository, or $ORCHARD_SHARED_DIR when set.
std::filesystem::path SharedDir();
// SharedDir()/data/fruits-360-mini
std::filesystem::path FruitsMiniDir();

std::vector<uint8_t> ReadFileBytes(const std::filesystem::path& path);
void WriteFileBytes(const std::filesystem::path& path, const std::vector<uint8_t>& bytes);

// Copies the first `per_class` Fruits-360 training images of each class into `dir/<class>/`;
// with `broken`, adds broken files (empty, text, truncated, a decompression bomb, a .txt) in
// zz_broken/ and two unusual but valid PNGs in odd/.
void MakeFruitsInput(const std::filesystem::path& dir, int per_class, bool broken);

// Parses an RFC 4180 CSV file (quoted fields, doubled quotes, line breaks inside quotes).
std::vector<std::vector<std::string>> ReadCsv(const std::filesystem::path& path);

// The name of an extractor backend, registered on first call, that runs the default backend
// but throws std::runtime_error("library failure inside a worker thread") on the second
// Extract() call after this function returns (counted over all its extractors), as a library
// might (OpenCV's cv::Exception, bad_alloc).
std::string ThrowingBackend();

// A fresh directory under the system temp dir, removed with its contents on destruction.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace orchard::testing
