#include "orchard/s3.h"

namespace orchard {

Result<std::unique_ptr<Storage>> OpenStorage(const std::string& location, const S3Options& s3) {
  if (IsS3Url(location)) return OpenS3Storage(location, s3);
  return OpenLocalStorage(location);
}

}  // namespace orchard
