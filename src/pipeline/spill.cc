#include "pipeline/spill.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace orchard {
namespace fs = std::filesystem;

Result<std::unique_ptr<WorkDir>> WorkDir::Create(const std::string& parent) {
  std::error_code ec;
  const fs::path base = parent.empty() ? fs::temp_directory_path(ec) : fs::path(parent);
  if (ec) return Status::IOError("no temporary folder: " + ec.message());
  if (!parent.empty()) {
    fs::create_directories(base, ec);
    if (ec) {
      std::string message = "cannot create work folder ";
      message.append(base.string()).append(": ").append(ec.message());
      return Status::IOError(message);
    }
  }
  // mkdtemp picks a name nobody can guess, creates it 0700 and fails rather than reuse a
  // folder (or follow a link) another local user planted in a shared /tmp.
  std::string path = (base / "orchard-XXXXXX").string();
  if (::mkdtemp(path.data()) == nullptr) {
    const std::string why = std::strerror(errno);
    std::string message = "cannot create a work folder in ";
    message.append(base.string()).append(": ").append(why);
    return Status::IOError(message);
  }
  return std::unique_ptr<WorkDir>(new WorkDir(fs::path(path)));
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

// Creates `path`, which must not exist yet (not even as a link), readable by this user only.
Result<std::FILE*> CreateNew(const fs::path& path, int access, const char* mode) {
  const int fd = ::open(path.c_str(), access | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  std::FILE* file = fd < 0 ? nullptr : ::fdopen(fd, mode);
  if (file == nullptr) {
    const std::string why = std::strerror(errno);
    if (fd >= 0) {
      ::close(fd);
      ::unlink(path.c_str());
    }
    std::string message = "cannot create work file ";
    message.append(path.string()).append(": ").append(why);
    return Status::IOError(message);
  }
  return file;
}

}  // namespace

Result<std::unique_ptr<RecordWriter>> RecordWriter::Create(const fs::path& path) {
  ORCHARD_ASSIGN_OR_RETURN(std::FILE * file, CreateNew(path, O_WRONLY, "w"));
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
  std::FILE* file = std::fopen(path.c_str(), "rbe");
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
  ORCHARD_ASSIGN_OR_RETURN(std::FILE * file, CreateNew(path, O_RDWR, "w+"));
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
