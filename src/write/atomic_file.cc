#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "orchard/writer.h"

namespace orchard {
namespace {

std::string ErrnoText() { return std::strerror(errno); }

}  // namespace

Result<std::unique_ptr<AtomicFile>> AtomicFile::Create(const std::string& path) {
  std::error_code ec;
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  if (ec) return Status::IOError("cannot create folder " + parent.string() + ": " + ec.message());
  // The temporary file sits beside the destination so that rename() stays on one file system.
  const std::string temp = path + ".tmp-" + std::to_string(::getpid());
  std::FILE* file = std::fopen(temp.c_str(), "wb+");
  if (file == nullptr) return Status::IOError("cannot create " + temp + ": " + ErrnoText());
  return std::unique_ptr<AtomicFile>(new AtomicFile(path, temp, file));
}

AtomicFile::~AtomicFile() {
  if (!closed_) Abort();
}

Status AtomicFile::Append(std::string_view bytes) {
  if (file_ == nullptr) return Status::Internal("write to a closed file: " + path_);
  if (std::fseek(file_, 0, SEEK_END) != 0 ||
      std::fwrite(bytes.data(), 1, bytes.size(), file_) != bytes.size()) {
    return Status::IOError("cannot write " + temp_path_ + ": " + ErrnoText());
  }
  return Status::OK();
}

Status AtomicFile::WriteAt(uint64_t offset, std::string_view bytes) {
  if (file_ == nullptr) return Status::Internal("write to a closed file: " + path_);
  if (std::fseek(file_, static_cast<long>(offset), SEEK_SET) != 0 ||
      std::fwrite(bytes.data(), 1, bytes.size(), file_) != bytes.size()) {
    return Status::IOError("cannot write " + temp_path_ + ": " + ErrnoText());
  }
  return Status::OK();
}

Status AtomicFile::Close() {
  if (closed_) return Status::OK();
  if (file_ == nullptr) return Status::IOError("file was aborted: " + path_);
  const bool flushed = std::fflush(file_) == 0 && ::fsync(::fileno(file_)) == 0;
  const bool closed = std::fclose(file_) == 0;
  file_ = nullptr;
  if (!flushed || !closed) {
    const std::string why = ErrnoText();
    std::remove(temp_path_.c_str());
    return Status::IOError("cannot write " + path_ + ": " + why);
  }
  if (std::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    const std::string why = ErrnoText();
    std::remove(temp_path_.c_str());
    return Status::IOError("cannot rename " + temp_path_ + " to " + path_ + ": " + why);
  }
  closed_ = true;
  // The rename is durable only once the folder's entry is on disk: a journal that says a
  // file is committed must not lose it in a power cut.
  std::filesystem::path parent = std::filesystem::path(path_).parent_path();
  if (parent.empty()) parent = std::filesystem::path(".");
  if (const int dir = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY); dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
  return Status::OK();
}

void AtomicFile::Abort() {
  if (file_ != nullptr) {
    std::fclose(file_);
    file_ = nullptr;
  }
  if (!closed_) std::remove(temp_path_.c_str());
  closed_ = true;
}

Status WriteFileAtomically(const std::string& path, std::string_view contents) {
  ORCHARD_ASSIGN_OR_RETURN(auto file, AtomicFile::Create(path));
  ORCHARD_RETURN_NOT_OK(file->Append(contents));
  return file->Close();
}

}  // namespace orchard
