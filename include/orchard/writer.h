// Output files. Every file is written under a temporary name in its destination folder and
// renamed into place by Close(), so a reader never sees a half-written file and a failed
// run leaves no partial output. The temporary name, `<path>.tmp-<pid>-<n>-<random hex>`, is
// new on every Create() (so several writers of one path may coexist: the last Close() wins)
// and the file is created fresh (O_EXCL, never through a symbolic link, mode 0644 less the
// umask). A link at the destination is replaced by the rename, not written through. Close() is
// idempotent; destroying an unclosed writer removes its temporary file. Writers are not
// thread-safe: one thread per writer.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "orchard/status.h"

namespace orchard {

class AtomicFile {
 public:
  static Result<std::unique_ptr<AtomicFile>> Create(const std::string& path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  Status Append(std::string_view bytes);
  // Overwrites bytes already written at `offset` (used to patch a header at the end).
  Status WriteAt(uint64_t offset, std::string_view bytes);
  // Flushes, syncs and renames the temporary file to its final path.
  Status Close();
  // Drops the temporary file; the destination is left untouched.
  void Abort();
  const std::string& path() const { return path_; }

 private:
  AtomicFile(std::string path, std::string temp_path, std::FILE* file)
      : path_(std::move(path)), temp_path_(std::move(temp_path)), file_(file) {}
  std::string path_;
  std::string temp_path_;
  std::FILE* file_ = nullptr;
  bool closed_ = false;
};

// Writes `contents` to `path` atomically in one call.
Status WriteFileAtomically(const std::string& path, std::string_view contents);

// A 2-D float32 .npy file (C order, little-endian) with `cols` columns and as many rows as
// are appended; the row count in the header is patched by Close().
class NpyWriter {
 public:
  static Result<std::unique_ptr<NpyWriter>> Create(const std::string& path, int64_t cols);
  // Appends n rows of cols() floats, row-major.
  Status Append(int64_t n, const float* rows);
  Status Close();
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }

 private:
  NpyWriter(std::unique_ptr<AtomicFile> file, int64_t cols) : file_(std::move(file)), cols_(cols) {}
  std::unique_ptr<AtomicFile> file_;
  int64_t cols_ = 0;
  int64_t rows_ = 0;
  bool closed_ = false;
};

// The .npy header (magic, version 1.0, dict, padding) for a float32 (rows, cols) array,
// always kNpyHeaderBytes long so that it can be patched in place.
inline constexpr size_t kNpyHeaderBytes = 128;
std::string NpyHeader(int64_t rows, int64_t cols);

}  // namespace orchard
