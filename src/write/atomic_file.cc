#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>

#include "orchard/writer.h"

namespace orchard {
namespace {

std::string ErrnoText() { return std::strerror(errno); }

// `<path>.tmp-<pid>-<n>-<8 random hex digits>`. The ".tmp-" marker is how a later run finds
// leftovers to remove; the counter keeps names unique within the process, and the random
// part makes them unpredictable to other users.
std::string TempName(const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  uint32_t random = 0;
  if (::getrandom(&random, sizeof(random), GRND_NONBLOCK) != sizeof(random)) {
    random = static_cast<uint32_t>(std::random_device{}());
  }
  char suffix[64];
  std::snprintf(suffix, sizeof(suffix), ".tmp-%ld-%llu-%08x", static_cast<long>(::getpid()),
                static_cast<unsigned long long>(counter.fetch_add(1)), random);
  std::string temp = path;
  temp.append(suffix);
  return temp;
}

}  // namespace

Result<std::unique_ptr<AtomicFile>> AtomicFile::Create(const std::string& path) {
  std::error_code ec;
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  if (ec) return Status::IOError("cannot create folder " + parent.string() + ": " + ec.message());
  // The temporary file sits beside the destination so that rename() stays on one file system.
  // Its name is new on every call (two writers of one path never share it) and hard to guess,
  // and it is created with O_EXCL | O_NOFOLLOW: a stale file or a link planted by another
  // user at that name makes the attempt fail instead of being written through.
  std::string temp;
  int fd = -1;
  for (int attempt = 0; attempt < 16 && fd < 0; ++attempt) {
    temp = TempName(path);
    fd = ::open(temp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0 && errno != EEXIST) break;
  }
  std::FILE* file = fd < 0 ? nullptr : ::fdopen(fd, "w+");
  if (file == nullptr) {
    const std::string why = ErrnoText();
    if (fd >= 0) {
      ::close(fd);
      ::unlink(temp.c_str());
    }
    std::string message = "cannot create ";
    message.append(temp).append(": ").append(why);
    return Status::IOError(message);
  }
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
