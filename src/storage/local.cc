#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "orchard/storage.h"
#include "orchard/writer.h"

namespace orchard {
namespace {

namespace fs = std::filesystem;

class LocalStorage : public Storage {
 public:
  explicit LocalStorage(fs::path root) : root_(std::move(root)) {}

  Status List(const std::function<Status(const ObjectInfo&)>& visit) override {
    return Walk(root_, "", visit);
  }

  Result<std::vector<uint8_t>> Read(const std::string& key) override {
    const fs::path path = root_ / fs::path(key);
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    if (!in) {
      std::error_code ec;
      if (!fs::exists(path, ec)) return Status::NotFound("no such file: " + path.string());
      return Status::IOError("cannot open " + path.string() + " (permission denied?)");
    }
    const std::streamoff size = in.tellg();
    if (size < 0) return Status::IOError("cannot read " + path.string());
    std::vector<uint8_t> bytes(static_cast<size_t>(size));
    in.seekg(0);
    if (size > 0 && !in.read(reinterpret_cast<char*>(bytes.data()), size)) {
      return Status::IOError("cannot read " + path.string() + " (read error)");
    }
    return bytes;
  }

  std::string Describe(const std::string& key) const override {
    return (root_ / fs::path(key)).string();
  }

  Status Write(const std::string& key, std::string_view bytes) override {
    return WriteFileAtomically((root_ / fs::path(key)).string(), bytes);
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

  fs::path root_;
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
  return std::unique_ptr<Storage>(new LocalStorage(path));
}

}  // namespace orchard
