#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <system_error>

#include "orchard/s3.h"
#include "orchard/storage.h"
#include "orchard/writer.h"

namespace orchard {
namespace {

namespace fs = std::filesystem;

std::string ErrnoMessage(const char* what, const std::string& path, int error) {
  std::string message = what;
  message.append(" ").append(path).append(": ").append(std::strerror(error));
  return message;
}

// Writes `bytes` to a new temporary file beside `path` (with AtomicFile's ".tmp-" marker, so
// that a crash leaves only a recognisable leftover), makes it durable, then gives it the
// name `path` with link(2), which fails with EEXIST when the name is taken: readers never
// see a partial file, and of several racing writers exactly one succeeds. File systems
// without hard links get renameat2(RENAME_NOREPLACE), which has the same guarantee.
Result<bool> CreateFileIfAbsent(const fs::path& path, std::string_view bytes) {
  std::error_code ec;
  if (path.has_parent_path()) fs::create_directories(path.parent_path(), ec);
  if (ec) {
    return Status::IOError("cannot create folder " + path.parent_path().string() + ": " +
                           ec.message());
  }
  static std::atomic<uint64_t> counter{0};
  std::string temp;
  int fd = -1;
  for (int attempt = 0; attempt < 16 && fd < 0; ++attempt) {
    uint32_t random = 0;
    if (::getrandom(&random, sizeof(random), GRND_NONBLOCK) != sizeof(random)) {
      random = static_cast<uint32_t>(std::random_device{}());
    }
    char suffix[64];
    std::snprintf(suffix, sizeof(suffix), ".tmp-%ld-c%llu-%08x", static_cast<long>(::getpid()),
                  static_cast<unsigned long long>(counter.fetch_add(1)), random);
    temp = path.string();
    temp.append(suffix);
    fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) return Status::IOError(ErrnoMessage("cannot create", temp, errno));
  size_t done = 0;
  int error = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = errno;
      break;
    }
    done += static_cast<size_t>(n);
  }
  if (error == 0 && ::fsync(fd) != 0) error = errno;
  if (::close(fd) != 0 && error == 0) error = errno;
  if (error != 0) {
    ::unlink(temp.c_str());
    return Status::IOError(ErrnoMessage("cannot write", temp, error));
  }
  bool created = false;
  if (::link(temp.c_str(), path.c_str()) == 0) {
    created = true;
    ::unlink(temp.c_str());
  } else if (errno == EEXIST) {
    ::unlink(temp.c_str());
  } else if (errno == EPERM || errno == ENOTSUP || errno == EOPNOTSUPP || errno == EMLINK) {
    // No hard links here (FAT, some FUSE and network file systems).
    if (::renameat2(AT_FDCWD, temp.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) == 0) {
      created = true;
    } else {
      error = errno;
      ::unlink(temp.c_str());
      if (error != EEXIST) {
        return Status::IOError(ErrnoMessage("cannot create", path.string(), error) +
                               " (this file system supports neither hard links nor "
                               "RENAME_NOREPLACE)");
      }
    }
  } else {
    error = errno;
    ::unlink(temp.c_str());
    return Status::IOError(ErrnoMessage("cannot create", path.string(), error));
  }
  if (created) {
    // The new name is durable only once the folder's entry is on disk.
    const fs::path parent = path.has_parent_path() ? path.parent_path() : fs::path(".");
    if (const int dir = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dir >= 0) {
      ::fsync(dir);
      ::close(dir);
    }
  }
  return created;
}

class LocalStorage : public Storage {
 public:
  LocalStorage(fs::path root, uint64_t max_object_bytes)
      : root_(std::move(root)), max_object_bytes_(max_object_bytes) {}

  Status List(const std::function<Status(const ObjectInfo&)>& visit) override {
    return Walk(root_, "", visit);
  }

  // Reads regular files only (links to them are followed): a FIFO would block the reader
  // forever and a device could stream without end. O_NONBLOCK makes opening a FIFO return at
  // once, so that fstat can refuse it. Files over the size limit are refused before any
  // byte is read, as the S3 client refuses large objects.
  Result<std::vector<uint8_t>> Read(const std::string& key) override {
    return ReadChecked(key, 0, nullptr);
  }

  // The prefix is read and checked first: a file that its header already condemns is never
  // read whole.
  Result<std::vector<uint8_t>> ReadChecked(const std::string& key, size_t prefix_bytes,
                                           const PrefixCheck& check) override {
    const fs::path path = root_ / fs::path(key);
    const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return OpenError(path, errno);
    const FileCloser closer{fd};
    struct stat st {};
    if (::fstat(fd, &st) != 0) return ReadError(path, errno);
    if (!S_ISREG(st.st_mode)) return NotRegular(path, st.st_mode);
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    if (size > max_object_bytes_) {
      std::string message = path.string();
      message.append(" is ")
          .append(std::to_string(size))
          .append(" bytes, more than the ")
          .append(std::to_string(max_object_bytes_))
          .append("-byte limit");
      return Status::ResourceExhausted(message);
    }
    std::vector<uint8_t> bytes;
    size_t done = 0;
    // Reads up to bytes.size(); false at end of file (it shrank since fstat).
    auto fill = [&]() -> Status {
      while (done < bytes.size()) {
        const ssize_t n = ::read(fd, bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return ReadError(path, errno);
        if (n == 0) break;
        done += static_cast<size_t>(n);
      }
      return Status::OK();
    };
    if (check) {
      bytes.resize(static_cast<size_t>(std::min<uint64_t>(prefix_bytes, size)));
      ORCHARD_RETURN_NOT_OK(fill());
      ORCHARD_RETURN_NOT_OK(check(std::span<const uint8_t>(bytes.data(), done), size));
    }
    bytes.resize(static_cast<size_t>(size));
    ORCHARD_RETURN_NOT_OK(fill());
    bytes.resize(done);
    return bytes;
  }

  std::string Describe(const std::string& key) const override {
    return (root_ / fs::path(key)).string();
  }

  Status Write(const std::string& key, std::string_view bytes) override {
    return WriteFileAtomically((root_ / fs::path(key)).string(), bytes);
  }

  Result<bool> CreateIfAbsent(const std::string& key, std::string_view bytes) override {
    return CreateFileIfAbsent(root_ / fs::path(key), bytes);
  }

  Status Delete(const std::string& key) override {
    std::error_code ec;
    fs::remove(root_ / fs::path(key), ec);
    if (ec) return Status::IOError("cannot delete " + Describe(key) + ": " + ec.message());
    return Status::OK();
  }

  std::string LocalPath(const std::string& key) const override {
    return (root_ / fs::path(key)).string();
  }

 private:
  struct Entry {
    std::string name;
    // name + "/" for folders: sorting on it makes a depth-first walk visit keys in byte
    // order of the whole key ("Cherry 3/x" before "Cherry/x", as S3 lists them).
    std::string sort_key;
    bool is_dir = false;
    uint64_t size = 0;
    int64_t mtime_ns = 0;
    uint64_t inode = 0;
  };

  Status Walk(const fs::path& dir, const std::string& prefix,
              const std::function<Status(const ObjectInfo&)>& visit) {
    std::error_code ec;
    fs::directory_iterator it(dir, ec);
    if (ec) return Status::IOError("cannot list " + dir.string() + ": " + ec.message());
    std::vector<Entry> entries;
    for (; it != fs::directory_iterator(); it.increment(ec)) {
      if (ec) return Status::IOError("cannot list " + dir.string() + ": " + ec.message());
      Entry e;
      e.name = it->path().filename().string();
      // Links to folders are not followed, so a cyclic link cannot loop forever.
      e.is_dir = it->is_directory(ec) && !it->is_symlink(ec);
      if (!e.is_dir) {
        // stat() follows links like Read() does; an entry it cannot stat is still listed
        // (size 0) and Read() reports why.
        struct stat st {};
        if (::stat(it->path().c_str(), &st) == 0) {
          e.size = static_cast<uint64_t>(st.st_size);
          e.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
          e.inode = static_cast<uint64_t>(st.st_ino);
        }
      }
      e.sort_key = e.is_dir ? e.name + "/" : e.name;
      entries.push_back(std::move(e));
    }
    std::sort(entries.begin(), entries.end(),
              [](const Entry& a, const Entry& b) { return a.sort_key < b.sort_key; });
    for (const Entry& e : entries) {
      const std::string key = prefix.empty() ? e.name : prefix + "/" + e.name;
      if (e.is_dir) {
        ORCHARD_RETURN_NOT_OK(Walk(dir / fs::path(e.name), key, visit));
      } else {
        ORCHARD_RETURN_NOT_OK(visit(ObjectInfo{key, e.size, "", e.mtime_ns, e.inode}));
      }
    }
    return Status::OK();
  }

  struct FileCloser {
    int fd;
    ~FileCloser() { ::close(fd); }
  };

  static const char* KindOf(mode_t mode) {
    if (S_ISDIR(mode)) return "a folder";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISSOCK(mode)) return "a socket";
    if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device";
    return "not a file";
  }

  static Status NotRegular(const fs::path& path, mode_t mode) {
    std::string message = path.string();
    message.append(" is not a regular file (").append(KindOf(mode)).append(")");
    return Status::IOError(message);
  }

  static Status ReadError(const fs::path& path, int error) {
    std::string message = "cannot read ";
    message.append(path.string()).append(": ").append(std::strerror(error));
    return Status::IOError(message);
  }

  static Status OpenError(const fs::path& path, int error) {
    if (error == ENOENT || error == ENOTDIR) {
      return Status::NotFound("no such file: " + path.string());
    }
    // Sockets cannot be opened at all (ENXIO): say what is there rather than why open failed.
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) return NotRegular(path, st.st_mode);
    std::string message = "cannot open ";
    message.append(path.string()).append(": ").append(std::strerror(error));
    if (error == EACCES || error == EPERM) message.append(" (check the file's permissions)");
    return Status::IOError(message);
  }

  fs::path root_;
  uint64_t max_object_bytes_;
};

}  // namespace

Result<std::unique_ptr<Storage>> OpenLocalStorage(const std::string& root, bool create_missing) {
  std::error_code ec;
  const fs::path path = fs::path(root);
  if (create_missing && !fs::exists(path, ec)) {
    fs::create_directories(path, ec);
    if (ec) return Status::IOError("cannot create folder " + root + ": " + ec.message());
  }
  if (!fs::exists(path, ec)) return Status::NotFound("input folder does not exist: " + root);
  if (!fs::is_directory(path, ec)) return Status::InvalidArgument("input is not a folder: " + root);
  // The S3 client's limit, so that a local run and an S3 run refuse the same files.
  return std::unique_ptr<Storage>(new LocalStorage(path, S3Options{}.max_object_bytes));
}

}  // namespace orchard
