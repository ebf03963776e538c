// Uploads: PutObject for small bodies, multipart upload with bounded parallel parts for
// large ones. A failed multipart upload is aborted so that no partial object ever appears
// (S3 only makes the object visible on CompleteMultipartUpload).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <system_error>
#include <thread>

#include "orchard/s3.h"
#include "storage/s3_internal.h"

namespace orchard {

using s3internal::HttpResponse;
using s3internal::S3Request;

namespace {

constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kMinPartSize = 8 * kMiB;    // Orchard's floor (S3's is 5 MiB)
constexpr uint64_t kMaxPartSize = 5ull << 30;  // S3's limit
constexpr uint64_t kMaxParts = 10000;          // S3's limit

// Closes a file descriptor on scope exit.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

Status ReadFully(int fd, uint64_t offset, uint64_t size, std::string& out,
                 const std::string& path) {
  try {
    out.resize(size);
  } catch (const std::bad_alloc&) {
    return Status::ResourceExhausted("out of memory reading " + path);
  }
  uint64_t done = 0;
  while (done < size) {
    const ssize_t n =
        ::pread(fd, out.data() + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::IOError("cannot read " + path + ": " + std::strerror(errno));
    if (n == 0) return Status::IOError(path + " shrank while it was being uploaded");
    done += static_cast<uint64_t>(n);
  }
  return Status::OK();
}

}  // namespace

uint64_t S3Client::Impl::PartSize(uint64_t size) const {
  uint64_t part = std::max(options.part_size, kMinPartSize);
  const uint64_t needed = (size + kMaxParts - 1) / kMaxParts;
  if (part < needed) part = (needed + kMiB - 1) / kMiB * kMiB;
  return std::min(part, kMaxPartSize);
}

Status S3Client::Impl::PutObject(const S3Url& url, std::string_view bytes) {
  if (bytes.size() < options.multipart_threshold) return PutSingle(url, bytes);
  return PutMultipart(
      url, bytes.size(),
      [bytes](uint64_t offset, uint64_t size, std::string&) -> Result<std::string_view> {
        return bytes.substr(offset, size);
      });
}

Status S3Client::Impl::PutSingle(const S3Url& url, std::string_view bytes) {
  if (bytes.size() > kMaxPartSize) {
    return Status::InvalidArgument("PutObject " + url.ToString() +
                                   ": a single PUT is limited to 5 GiB");
  }
  S3Request r = S3Request::ForObject("PutObject", "PUT", url);
  r.headers = {{"Content-Type", "application/octet-stream"}};
  r.body = bytes;
  Result<HttpResponse> response = Send(r);
  return response.ok() ? Status::OK() : response.status();
}

Result<bool> S3Client::Impl::PutObjectIfAbsent(const S3Url& url, std::string_view bytes) {
  if (bytes.size() > kMaxPartSize) {
    return Status::InvalidArgument("PutObject " + url.ToString() +
                                   ": a conditional PUT is limited to 5 GiB");
  }
  // An existing object means another writer won. Checking first also keeps a store that
  // ignores If-None-Match from overwriting it.
  ORCHARD_ASSIGN_OR_RETURN(const bool exists, ObjectExists(url));
  if (exists) return false;
  for (int attempt = 1;; ++attempt) {
    S3Request r = S3Request::ForObject("PutObject (If-None-Match)", "PUT", url);
    r.headers = {{"Content-Type", "application/octet-stream"}, {"If-None-Match", "*"}};
    r.body = bytes;
    r.answer_statuses = {409, 412};
    ORCHARD_ASSIGN_OR_RETURN(HttpResponse response, Send(r));
    if (response.status == 412) return false;  // PreconditionFailed: the key exists
    if (response.status != 409) break;
    S3Error error;
    error.http_status = 409;
    s3internal::ParseS3ErrorBody(response.BodyText(), &error);
    // A concurrent conditional write to the same key: S3 asks to retry; a second conflict
    // means the other writer is still at it, and it wins.
    if (error.code != "ConditionalRequestConflict") return ErrorStatus(r, error, attempt, nullptr);
    if (attempt >= 2) return false;
  }
  // Read back: on a store that ignores If-None-Match, a writer that raced past the check
  // above may have replaced the object; only the writer whose bytes are there has won.
  Result<std::vector<uint8_t>> stored = GetObject(url);
  if (!stored.ok()) {
    if (stored.status().code() == StatusCode::kNotFound) return false;  // deleted since
    return stored.status();
  }
  return stored->size() == bytes.size() &&
         std::equal(stored->begin(), stored->end(), bytes.begin(),
                    [](uint8_t a, char b) { return a == static_cast<uint8_t>(b); });
}

Result<std::string> S3Client::Impl::CreateMultipartUpload(const S3Url& url) {
  S3Request create = S3Request::ForObject("CreateMultipartUpload", "POST", url);
  create.query = {{"uploads", ""}};
  create.headers = {{"Content-Type", "application/octet-stream"}};
  ORCHARD_ASSIGN_OR_RETURN(HttpResponse created, Send(create));
  Result<std::string> upload_id =
      s3internal::ParseInitiateMultipartUploadResult(created.BodyText());
  if (!upload_id.ok()) {
    return Status(upload_id.status().code(),
                  "CreateMultipartUpload " + url.ToString() + ": " + upload_id.status().message());
  }
  return upload_id;
}

Status S3Client::Impl::AbortMultipartUpload(const S3Url& url, const std::string& upload_id) {
  S3Request r = S3Request::ForObject("AbortMultipartUpload", "DELETE", url);
  r.query = {{"uploadId", upload_id}};
  return Send(r).status();
}

Status S3Client::Impl::CheckWritable(const S3Url& url) {
  // Starting and aborting a multipart upload needs exactly s3:PutObject and
  // s3:AbortMultipartUpload (the output policy), and leaves no object behind.
  ORCHARD_ASSIGN_OR_RETURN(const std::string upload_id, CreateMultipartUpload(url));
  return AbortMultipartUpload(url, upload_id);
}

Status S3Client::Impl::PutMultipart(const S3Url& url, uint64_t size, const PartReader& read) {
  const uint64_t part_size = PartSize(size);
  const uint64_t parts = (size + part_size - 1) / part_size;
  if (parts > kMaxParts) {
    return Status::InvalidArgument("upload to " + url.ToString() + " is too large for S3");
  }

  // 1. Create.
  ORCHARD_ASSIGN_OR_RETURN(const std::string upload_id, CreateMultipartUpload(url));

  auto abort = [&](Status cause) -> Status {
    Status aborted = AbortMultipartUpload(url, upload_id);
    if (!aborted.ok()) {
      return Status(cause.code(),
                    cause.message() + "; aborting the upload failed too (" + aborted.message() +
                        "), so its parts stay stored until a lifecycle rule removes them");
    }
    return cause;
  };

  // 2. Parts, at most upload_concurrency at once: each worker claims the next part number,
  // reads it into its own buffer and uploads it. The first failure stops the others.
  std::vector<std::string> etags(parts);
  std::atomic<uint64_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex error_mu;
  Status first_error;
  auto worker_body = [&]() {
    std::string scratch;
    while (!failed.load()) {
      const uint64_t index = next.fetch_add(1);
      if (index >= parts) return;
      const uint64_t offset = index * part_size;
      const uint64_t length = std::min(part_size, size - offset);
      Status st;
      Result<std::string_view> bytes = read(offset, length, scratch);
      if (!bytes.ok()) {
        st = bytes.status();
      } else {
        S3Request r = S3Request::ForObject(
            "UploadPart " + std::to_string(index + 1) + "/" + std::to_string(parts), "PUT", url);
        r.query = {{"partNumber", std::to_string(index + 1)}, {"uploadId", upload_id}};
        r.headers = {{"Content-Type", "application/octet-stream"}};
        r.body = *bytes;
        Result<HttpResponse> response = Send(r);
        if (!response.ok()) {
          st = response.status();
        } else if (const std::string* etag = response->Header("etag")) {
          etags[index] = *etag;
        } else {
          st = Status::CorruptData("UploadPart " + url.ToString() + ": no ETag in the response");
        }
      }
      if (!st.ok()) {
        std::lock_guard<std::mutex> lock(error_mu);
        if (first_error.ok()) first_error = st;
        failed = true;
        return;
      }
    }
  };
  // Threads must not let an exception escape (std::terminate); record it as a failure.
  auto worker = [&]() {
    try {
      worker_body();
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> lock(error_mu);
      if (first_error.ok()) first_error = Status::Internal(std::string("upload: ") + e.what());
      failed = true;
    }
  };
  const int threads = static_cast<int>(
      std::min<uint64_t>(parts, static_cast<uint64_t>(options.upload_concurrency)));
  std::vector<std::thread> pool;
  for (int i = 1; i < threads; ++i) {
    try {
      pool.emplace_back(worker);
    } catch (const std::system_error&) {
      break;  // fewer threads; the calling thread still uploads every remaining part
    }
  }
  worker();
  for (std::thread& t : pool) t.join();
  if (!first_error.ok()) return abort(first_error);

  // 3. Complete. S3 may answer 200 with an <Error> body, which Send() treats as a failure.
  const std::string xml = s3internal::CompleteMultipartUploadBody(etags);
  S3Request complete = S3Request::ForObject("CompleteMultipartUpload", "POST", url);
  complete.query = {{"uploadId", upload_id}};
  complete.headers = {{"Content-Type", "application/xml"}};
  complete.body = xml;
  complete.error_in_ok_body = true;
  Result<HttpResponse> completed = Send(complete);
  if (!completed.ok()) return abort(completed.status());
  return Status::OK();
}

Status S3Client::Impl::UploadFile(const std::string& local_path, const S3Url& url) {
  Fd file;
  file.fd = ::open(local_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (file.fd < 0) {
    const int err = errno;
    if (err == ENOENT) return Status::NotFound("no such file: " + local_path);
    return Status::IOError("cannot open " + local_path + ": " + std::strerror(err));
  }
  struct stat st;
  if (::fstat(file.fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    return Status::InvalidArgument(local_path + " is not a regular file");
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < options.multipart_threshold) {
    std::string bytes;
    ORCHARD_RETURN_NOT_OK(ReadFully(file.fd, 0, size, bytes, local_path));
    return PutSingle(url, bytes);
  }
  const int fd = file.fd;
  return PutMultipart(url, size,
                      [fd, &local_path](uint64_t offset, uint64_t length,
                                        std::string& scratch) -> Result<std::string_view> {
                        ORCHARD_RETURN_NOT_OK(ReadFully(fd, offset, length, scratch, local_path));
                        return std::string_view(scratch);
                      });
}

Result<std::vector<std::string>> S3Client::Impl::ListMultipartUploads(const std::string& bucket,
                                                                      const std::string& prefix) {
  S3Request r;
  r.operation = "ListMultipartUploads";
  r.method = "GET";
  r.bucket = bucket;
  r.bucket_level = true;
  r.location = "s3://" + bucket + "/" + prefix;
  r.query = {{"uploads", ""}};
  if (!prefix.empty()) r.query.emplace_back("prefix", prefix);
  ORCHARD_ASSIGN_OR_RETURN(HttpResponse response, Send(r));
  Result<std::vector<std::string>> ids =
      s3internal::ParseListMultipartUploadsResult(response.BodyText());
  if (!ids.ok()) {
    return Status(ids.status().code(),
                  "ListMultipartUploads " + r.location + ": " + ids.status().message());
  }
  return ids;
}

}  // namespace orchard
