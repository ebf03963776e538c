#include "pipeline/spill.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>

namespace orchard {
namespace fs = std::filesystem;

Result<std::unique_ptr<WorkDir>> WorkDir::Create(const std::string& parent) {
  static std::atomic<int> counter{0};
  std::error_code ec;
  const fs::path base = parent.empty() ? fs::temp_directory_path(ec) : fs::path(parent);
  if (ec) return Status::IOError("no temporary folder: " + ec.message());
  const fs::path path =
      base / ("orchard-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
  fs::create_directories(path, ec);
  if (ec)
    return Status::IOError("cannot create work folder " + path.string() + ": " + ec.message());
  return std::unique_ptr<WorkDir>(new WorkDir(path));
}

WorkDir::~WorkDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

namespace {

Status WriteError(const std::string& what) {
  return Status::IOError("cannot write work file " + what + ": " + std::strerror(errno) +
                         " (is the work folder's disk full? see --work-dir)");
}

}  // namespace

Result<std::unique_ptr<RecordWriter>> RecordWriter::Create(const fs::path& path) {
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) return WriteError(path.string());
  return std::unique_ptr<RecordWriter>(new RecordWriter(file));
}

RecordWriter::~RecordWriter() {
  if (file_ != nullptr) std::fclose(file_);
}

Status RecordWriter::Write(const std::vector<std::string>& fields) {
  const uint32_t count = static_cast<uint32_t>(fields.size());
  if (std::fwrite(&count, sizeof(count), 1, file_) != 1) return WriteError("records");
  for (const std::string& field : fields) {
    const uint32_t length = static_cast<uint32_t>(field.size());
    if (std::fwrite(&length, sizeof(length), 1, file_) != 1 ||
        std::fwrite(field.data(), 1, field.size(), file_) != field.size()) {
      return WriteError("records");
    }
  }
  return Status::OK();
}

Status RecordWriter::Close() {
  std::FILE* file = file_;
  file_ = nullptr;
  if (file != nullptr && std::fclose(file) != 0) return WriteError("records");
  return Status::OK();
}

Result<std::unique_ptr<RecordReader>> RecordReader::Open(const fs::path& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return Status::IOError("cannot open work file " + path.string());
  return std::unique_ptr<RecordReader>(new RecordReader(file));
}

RecordReader::~RecordReader() { std::fclose(file_); }

Result<bool> RecordReader::Next(std::vector<std::string>* fields) {
  uint32_t count = 0;
  if (std::fread(&count, sizeof(count), 1, file_) != 1) return false;
  fields->resize(count);
  for (std::string& field : *fields) {
    uint32_t length = 0;
    if (std::fread(&length, sizeof(length), 1, file_) != 1) {
      return Status::IOError("work file is truncated");
    }
    field.resize(length);
    if (length > 0 && std::fread(field.data(), 1, length, file_) != length) {
      return Status::IOError("work file is truncated");
    }
  }
  return true;
}

Result<std::unique_ptr<FloatSpill>> FloatSpill::Create(const fs::path& path, int64_t cols) {
  std::FILE* file = std::fopen(path.c_str(), "wb+");
  if (file == nullptr) return WriteError(path.string());
  return std::unique_ptr<FloatSpill>(new FloatSpill(file, path, cols));
}

FloatSpill::~FloatSpill() { std::fclose(file_); }

Status FloatSpill::Append(int64_t n, const float* rows) {
  const size_t count = static_cast<size_t>(n * cols_);
  if (std::fwrite(rows, sizeof(float), count, file_) != count) return WriteError(path_.string());
  rows_ += n;
  return Status::OK();
}

Status FloatSpill::Rewind() {
  if (std::fflush(file_) != 0 || std::fseek(file_, 0, SEEK_SET) != 0) {
    return WriteError(path_.string());
  }
  return Status::OK();
}

Result<int64_t> FloatSpill::Read(int64_t max_rows, float* out) {
  const size_t want = static_cast<size_t>(max_rows * cols_);
  const size_t got = std::fread(out, sizeof(float), want, file_);
  if (got % static_cast<size_t>(cols_) != 0) return Status::IOError("work file is truncated");
  return static_cast<int64_t>(got / static_cast<size_t>(cols_));
}

}  // namespace orchard
