// The descriptor store: every descriptor a run has computed, kept beside its results so that
// an interrupted run resumes where it stopped and a grown collection is updated without
// featurizing the same image twice.
//
// It lives in the output location (a local folder or an s3:// prefix), under _orchard/:
//
//   _orchard/store.json                what the descriptors depend on (StoreFingerprint)
//   _orchard/segments/<name>-<sha16>.npy  float32 (rows, dim) descriptors, C order, NPY 1.0,
//                                         named after the segment and its content's sha256
//   _orchard/segments/<name>.json         the segment's commit record: for every image of
//                                         the segment, its key, content identity and
//                                         descriptor row (or why it failed), and the name
//                                         and sha256 of its .npy
//
// A segment is committed when its record is written, after its descriptors: a crash between
// the two leaves an .npy without a record, which is ignored (and overwritten by the run that
// redoes it). Records are read oldest first (names sort by generation, then sequence), so a
// later commit of a key replaces an earlier one. Storage::Write is atomic on local disk
// (rename) and on S3 (PUT), so a record is never seen half-written.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "orchard/status.h"
#include "orchard/storage.h"

namespace orchard {

inline constexpr char kStoreFolder[] = "_orchard/";

// What descriptors depend on besides the image bytes. Descriptors from stores whose
// fingerprints differ are never mixed.
struct StoreFingerprint {
  std::string model_name;
  std::string model_sha256;  // of the file that runs (the int8 variant's with int8)
  std::string backend;
  std::string precision;  // the precision that runs (after any fallback)
  std::string feature_layer;
  std::string pooling;
  int input_width = 0;
  int input_height = 0;
  int64_t dim = 0;
  bool jpeg_dct_scaling = false;
  uint64_t max_pixels = 0;

  std::string ToJson() const;
  static Result<StoreFingerprint> FromJson(std::string_view text);
  // One line per field that differs, e.g. "model sha256: 1a2b... in the store, 3c4d... now";
  // empty when the descriptors are interchangeable.
  std::vector<std::string> Differences(const StoreFingerprint& stored) const;
};

// One image of a segment.
struct SegmentItem {
  std::string key;
  std::string content_id;  // ContentIdentity() of the object when it was read
  int64_t row = -1;        // its row in the segment's descriptors; -1 when it failed
  std::string stage;       // for a failed image: read, decode, preprocess or extract
  std::string message;
};

// One commit: consecutive images of one run, their descriptors and failures.
struct Segment {
  std::string name;  // unique in the store; see SegmentName()
  int64_t dim = 0;
  std::vector<SegmentItem> items;
  std::vector<float> descriptors;  // rows x dim, in item order
};

// "<generation>-<sequence>" zero-padded so that names sort in commit order. A run takes the
// next generation, so two runs never write the same name; within a run the sequence
// follows the listing.
std::string SegmentName(int64_t generation, int64_t sequence);

// Where each stored image is: key -> its latest commit. About 100 bytes per image plus the
// key and, for failures, the message.
class StoreIndex {
 public:
  struct Entry {
    int32_t segment = -1;  // index into segment_names()
    int64_t row = -1;      // -1: the image failed (stage and message say why)
    std::string content_id;
    std::string stage;
    std::string message;
  };

  const Entry* Find(const std::string& key) const;
  void Add(const Segment& segment);  // also used by the run for its own commits
  const std::vector<std::string>& segment_names() const { return segments_; }
  size_t size() const { return images_.size(); }
  // One more than the largest generation of any segment (1 for an empty store).
  int64_t next_generation() const { return next_generation_; }

 private:
  friend class DescriptorStore;
  void AddRecord(const std::string& name, std::vector<SegmentItem> items);
  std::vector<std::string> segments_;
  std::unordered_map<std::string, Entry> images_;
  int64_t next_generation_ = 1;
};

class DescriptorStore {
 public:
  // `output`: the storage of the output location. `cache_dir`: a local folder for segments
  // copied from a store that is not on local disk (S3).
  DescriptorStore(Storage& output, std::filesystem::path cache_dir);
  ~DescriptorStore();
  DescriptorStore(const DescriptorStore&) = delete;
  DescriptorStore& operator=(const DescriptorStore&) = delete;

  // kNotFound when the location holds no store.
  Result<StoreFingerprint> ReadFingerprint();
  Status WriteFingerprint(const StoreFingerprint& fingerprint);
  // Reads every commit record. A record that is not what it claims (unparsable, wrong dim,
  // rows that do not add up) is kCorruptData naming it.
  Result<StoreIndex> LoadIndex(int64_t dim);
  // Writes the segment's descriptors, then the record that commits them.
  Status Commit(const Segment& segment);
  // Reads `n` consecutive descriptor rows of a segment into `out` (n x dim floats). The
  // segment's .npy is checked against its record's sha256 the first time it is opened.
  Status ReadRows(const std::string& segment, int64_t row, int64_t n, int64_t dim, float* out);

 private:
  struct OpenSegment;
  Result<OpenSegment*> Open(const std::string& segment, int64_t dim);

  Storage& output_;
  std::filesystem::path cache_dir_;
  std::mutex mutex_;
  struct SegmentFile {
    std::string name;    // the .npy its record names
    std::string sha256;  // of that file
  };
  std::unordered_map<std::string, SegmentFile> files_;  // segment -> what its record says
  std::unordered_set<std::string> verified_;            // segments whose sha256 was checked
  std::vector<std::unique_ptr<OpenSegment>> open_;      // most recently used last
};

}  // namespace orchard
