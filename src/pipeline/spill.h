// Local spill files of the pipeline: sequential records written once and read back once,
// so that lists and descriptors of any size live on disk, not in memory.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "orchard/status.h"

namespace orchard {

// A folder for spill files, removed with its contents on destruction.
//
// Spill files may sit in a shared folder such as /tmp, so another local user must not be
// able to read them or make the run write elsewhere: the folder gets an unpredictable name
// and mode 0700, and every file in it is created new (mode 0600), never through a link.
class WorkDir {
 public:
  // Creates a fresh folder `orchard-XXXXXX` (six random characters, mode 0700, as mkdtemp
  // makes it) under `parent`, which is created if missing, or under the system temp folder
  // when `parent` is empty. An existing folder is never reused. kIOError on failure.
  static Result<std::unique_ptr<WorkDir>> Create(const std::string& parent);
  ~WorkDir();
  const std::filesystem::path& path() const { return path_; }

 private:
  explicit WorkDir(std::filesystem::path path) : path_(std::move(path)) {}
  std::filesystem::path path_;
};

// Length-prefixed string records: [u32 count][u32 len][bytes]... per record. Keys may hold
// any byte (even a newline), so no delimiter-based format is safe.
class RecordWriter {
 public:
  // Creates `path` (mode 0600); kIOError if anything, a link included, is already there.
  static Result<std::unique_ptr<RecordWriter>> Create(const std::filesystem::path& path);
  ~RecordWriter();
  Status Write(const std::vector<std::string>& fields);
  Status Close();

 private:
  explicit RecordWriter(std::FILE* file) : file_(file) {}
  std::FILE* file_;
};

class RecordReader {
 public:
  static Result<std::unique_ptr<RecordReader>> Open(const std::filesystem::path& path);
  ~RecordReader();
  // Reads the next record into `fields`; false at the end of the file.
  Result<bool> Next(std::vector<std::string>* fields);

 private:
  explicit RecordReader(std::FILE* file) : file_(file) {}
  std::FILE* file_;
};

// Raw float32 rows, appended and then read back in order.
class FloatSpill {
 public:
  // Creates `path` (mode 0600); kIOError if anything, a link included, is already there.
  static Result<std::unique_ptr<FloatSpill>> Create(const std::filesystem::path& path,
                                                    int64_t cols);
  ~FloatSpill();
  Status Append(int64_t n, const float* rows);
  // Switches to reading from the first row.
  Status Rewind();
  // Reads up to max_rows rows into out; returns how many were read (0 at the end).
  Result<int64_t> Read(int64_t max_rows, float* out);
  int64_t rows() const { return rows_; }

 private:
  FloatSpill(std::FILE* file, std::filesystem::path path, int64_t cols)
      : file_(file), path_(std::move(path)), cols_(cols) {}
  std::FILE* file_;
  std::filesystem::path path_;
  int64_t cols_;
  int64_t rows_ = 0;
};

}  // namespace orchard
