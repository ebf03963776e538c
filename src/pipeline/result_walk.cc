#include "pipeline/result_walk.h"

#include "orchard/pipeline.h"
#include "pipeline/spill.h"

namespace orchard {

namespace {
constexpr char kNotAnImage[] = "not an image file name (accepted: .jpg .jpeg .png .webp .bmp)";
}  // namespace

Result<WalkCounts> WalkResults(const std::filesystem::path& listing, const StoreIndex& index,
                               DescriptorStore& store, int64_t dim,
                               const std::function<Status(const DescriptorChunk&)>& on_chunk,
                               const std::function<Status(const ErrorRow&)>& on_error) {
  ORCHARD_ASSIGN_OR_RETURN(auto reader, RecordReader::Open(listing));
  WalkCounts counts;
  DescriptorChunk chunk;
  chunk.raw.resize(static_cast<size_t>(kResultChunkRows * dim));
  auto flush = [&]() -> Status {
    if (chunk.n == 0) return Status::OK();
    ORCHARD_RETURN_NOT_OK(on_chunk(chunk));
    chunk.first += chunk.n;
    chunk.n = 0;
    chunk.paths.clear();
    chunk.labels.clear();
    return Status::OK();
  };
  std::vector<std::string> fields;
  for (;;) {
    ORCHARD_ASSIGN_OR_RETURN(bool more, reader->Next(&fields));
    if (!more) break;
    const std::string& key = fields.at(0);
    if (fields.at(1) != "1") {
      ++counts.failed;
      if (on_error) ORCHARD_RETURN_NOT_OK(on_error({key, "list", kNotAnImage}));
      continue;
    }
    const StoreIndex::Entry* entry = index.Find(key);
    if (entry == nullptr || entry->content_id != fields.at(2)) {
      return Status::Internal("no stored outcome for " + key);
    }
    if (entry->row < 0) {
      ++counts.failed;
      if (on_error) ORCHARD_RETURN_NOT_OK(on_error({key, entry->stage, entry->message}));
      continue;
    }
    ORCHARD_RETURN_NOT_OK(store.ReadRows(index.segment_names().at(entry->segment), entry->row, 1,
                                         dim, chunk.raw.data() + chunk.n * dim));
    chunk.paths.push_back(key);
    chunk.labels.push_back(LabelOf(key));
    ++chunk.n;
    ++counts.processed;
    if (chunk.n == kResultChunkRows) ORCHARD_RETURN_NOT_OK(flush());
  }
  ORCHARD_RETURN_NOT_OK(flush());
  return counts;
}

}  // namespace orchard
