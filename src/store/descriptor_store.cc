#include "orchard/descriptor_store.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>

#include "orchard/model.h"
#include "orchard/writer.h"
#include "util/crash_point.h"
#include "util/json_text.h"

namespace orchard {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr char kSegmentFormat[] = "orchard-segment/1";
constexpr char kStoreFormat[] = "orchard-store/1";
constexpr size_t kMaxOpenSegments = 16;

const std::string kSegmentsFolder = std::string(kStoreFolder) + "segments/";

// Generation of a segment name "<generation>-<sequence>", or -1.
int64_t GenerationOf(const std::string& name) {
  const size_t dash = name.find('-');
  if (dash == 0 || dash == std::string::npos) return -1;
  int64_t generation = 0;
  for (size_t i = 0; i < dash; ++i) {
    if (name[i] < '0' || name[i] > '9') return -1;
    generation = generation * 10 + (name[i] - '0');
  }
  return generation;
}

std::string_view AsText(const std::vector<uint8_t>& bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

}  // namespace

// ---- Fingerprint ----------------------------------------------------------------------------

std::string StoreFingerprint::ToJson() const {
  json doc = {{"format", kStoreFormat},       {"model_name", model_name},
              {"model_sha256", model_sha256}, {"backend", backend},
              {"precision", precision},       {"feature_layer", feature_layer},
              {"pooling", pooling},           {"input_size", {input_width, input_height}},
              {"descriptor_dim", dim},        {"jpeg_dct_scaling", jpeg_dct_scaling},
              {"max_pixels", max_pixels}};
  return DumpJson(doc, 1) + "\n";
}

Result<StoreFingerprint> StoreFingerprint::FromJson(std::string_view text) {
  const json doc = json::parse(text, nullptr, false);
  if (!doc.is_object() || doc.value("format", "") != kStoreFormat) {
    return Status::CorruptData("not an Orchard store description (format " +
                               std::string(kStoreFormat) + ")");
  }
  StoreFingerprint f;
  try {
    f.model_name = doc.at("model_name").get<std::string>();
    f.model_sha256 = doc.at("model_sha256").get<std::string>();
    f.backend = doc.at("backend").get<std::string>();
    f.precision = doc.at("precision").get<std::string>();
    f.feature_layer = doc.at("feature_layer").get<std::string>();
    f.pooling = doc.at("pooling").get<std::string>();
    f.input_width = doc.at("input_size").at(0).get<int>();
    f.input_height = doc.at("input_size").at(1).get<int>();
    f.dim = doc.at("descriptor_dim").get<int64_t>();
    f.jpeg_dct_scaling = doc.at("jpeg_dct_scaling").get<bool>();
    f.max_pixels = doc.at("max_pixels").get<uint64_t>();
  } catch (const json::exception& e) {
    return Status::CorruptData(std::string("store description: ") + e.what());
  }
  return f;
}

std::vector<std::string> StoreFingerprint::Differences(const StoreFingerprint& stored) const {
  std::vector<std::string> out;
  auto compare = [&](const char* what, const std::string& then, const std::string& now) {
    if (then != now)
      out.push_back(std::string(what) + ": " + then + " in the store, " + now + " now");
  };
  compare("model", stored.model_name, model_name);
  compare("model sha256", stored.model_sha256, model_sha256);
  compare("backend", stored.backend, backend);
  compare("precision", stored.precision, precision);
  compare("feature layer", stored.feature_layer, feature_layer);
  compare("pooling", stored.pooling, pooling);
  compare("input size",
          std::to_string(stored.input_width) + "x" + std::to_string(stored.input_height),
          std::to_string(input_width) + "x" + std::to_string(input_height));
  compare("descriptor dim", std::to_string(stored.dim), std::to_string(dim));
  compare("jpeg dct scaling", stored.jpeg_dct_scaling ? "true" : "false",
          jpeg_dct_scaling ? "true" : "false");
  compare("max pixels", std::to_string(stored.max_pixels), std::to_string(max_pixels));
  return out;
}

std::string SegmentName(int64_t generation, int64_t sequence) {
  char name[48];
  std::snprintf(name, sizeof(name), "%08lld-%08lld", static_cast<long long>(generation),
                static_cast<long long>(sequence));
  return name;
}

// ---- Index --------------------------------------------------------------------------------

const StoreIndex::Entry* StoreIndex::Find(const std::string& key) const {
  auto it = images_.find(key);
  return it == images_.end() ? nullptr : &it->second;
}

void StoreIndex::Add(const Segment& segment) { AddRecord(segment.name, segment.items); }

void StoreIndex::AddRecord(const std::string& name, std::vector<SegmentItem> items) {
  const auto id = static_cast<int32_t>(segments_.size());
  segments_.push_back(name);
  next_generation_ = std::max(next_generation_, GenerationOf(name) + 1);
  for (SegmentItem& item : items) {
    images_[std::move(item.key)] = Entry{id, item.row, std::move(item.content_id),
                                         std::move(item.stage), std::move(item.message)};
  }
}

// ---- Store --------------------------------------------------------------------------------

struct DescriptorStore::OpenSegment {
  std::string name;
  std::FILE* file = nullptr;
  int64_t rows = 0;
  ~OpenSegment() {
    if (file != nullptr) std::fclose(file);
  }
};

DescriptorStore::DescriptorStore(Storage& output, fs::path cache_dir)
    : output_(output), cache_dir_(std::move(cache_dir)) {}

DescriptorStore::~DescriptorStore() = default;

Result<StoreFingerprint> DescriptorStore::ReadFingerprint() {
  const std::string key = std::string(kStoreFolder) + "store.json";
  auto bytes = output_.Read(key);
  if (!bytes.ok()) return bytes.status();
  auto fingerprint = StoreFingerprint::FromJson(AsText(*bytes));
  if (!fingerprint.ok()) return fingerprint.status().WithContext(output_.Describe(key));
  return fingerprint;
}

Status DescriptorStore::WriteFingerprint(const StoreFingerprint& fingerprint) {
  return output_.Write(std::string(kStoreFolder) + "store.json", fingerprint.ToJson());
}

Result<StoreIndex> DescriptorStore::LoadIndex(int64_t dim) {
  std::vector<std::string> records;
  ORCHARD_RETURN_NOT_OK(output_.List([&](const ObjectInfo& info) -> Status {
    if (info.key.rfind(kSegmentsFolder, 0) == 0 && info.key.size() > 5 &&
        info.key.compare(info.key.size() - 5, 5, ".json") == 0) {
      records.push_back(info.key);
    }
    return Status::OK();
  }));
  std::sort(records.begin(), records.end());
  StoreIndex index;
  for (const std::string& key : records) {
    const std::string name =
        key.substr(kSegmentsFolder.size(), key.size() - kSegmentsFolder.size() - 5);
    ORCHARD_ASSIGN_OR_RETURN(auto bytes, output_.Read(key));
    auto corrupt = [&](const std::string& why) {
      return Status::CorruptData("descriptor store record " + output_.Describe(key) + ": " + why +
                                 " (remove the segment's two files to recompute its images)");
    };
    const json doc = json::parse(AsText(bytes), nullptr, false);
    if (!doc.is_object() || doc.value("format", "") != kSegmentFormat) {
      return corrupt("not a segment record");
    }
    if (GenerationOf(name) < 0) return corrupt("the name is not <generation>-<sequence>");
    if (doc.value("dim", int64_t{-1}) != dim) {
      return corrupt("descriptors of dim " + std::to_string(doc.value("dim", int64_t{-1})) +
                     ", expected " + std::to_string(dim));
    }
    const int64_t rows = doc.value("rows", int64_t{-1});
    const auto& items = doc.value("items", json::array());
    if (rows < 0 || !items.is_array() || !doc.contains("sha256") || !doc["sha256"].is_string() ||
        !doc.contains("descriptors") || !doc["descriptors"].is_string()) {
      return corrupt("missing rows, items, descriptors or sha256");
    }
    const std::string file = doc["descriptors"].get<std::string>();
    if (file.rfind(name, 0) != 0 || file.find('/') != std::string::npos || file.size() < 4 ||
        file.compare(file.size() - 4, 4, ".npy") != 0) {
      return corrupt("its descriptors file is not a .npy beside it named after the segment");
    }
    std::vector<SegmentItem> parsed;
    parsed.reserve(items.size());
    int64_t next_row = 0;
    for (const json& item : items) {
      SegmentItem s;
      if (!item.is_array() || (item.size() != 3 && item.size() != 5) ||
          !TextFromJson(item[0], &s.key) || !TextFromJson(item[1], &s.content_id) ||
          !item[2].is_number_integer()) {
        return corrupt("an item is not [key, content id, row(, stage, message)]");
      }
      s.row = item[2].get<int64_t>();
      if (s.row >= 0) {
        if (s.row != next_row++) return corrupt("descriptor rows are not in item order");
      } else if (item.size() != 5 || !TextFromJson(item[3], &s.stage) ||
                 !TextFromJson(item[4], &s.message)) {
        return corrupt("a failed item has no stage and message");
      }
      parsed.push_back(std::move(s));
    }
    if (next_row != rows) return corrupt("rows do not add up");
    {
      std::lock_guard lock(mutex_);
      files_[name] = {file, doc["sha256"].get<std::string>()};
      verified_.erase(name);
    }
    index.AddRecord(name, std::move(parsed));
  }
  return index;
}

Status DescriptorStore::Commit(const Segment& segment) {
  const int64_t rows =
      segment.dim > 0 ? static_cast<int64_t>(segment.descriptors.size()) / segment.dim : 0;
  std::string npy = NpyHeader(rows, segment.dim);
  npy.append(reinterpret_cast<const char*>(segment.descriptors.data()),
             segment.descriptors.size() * sizeof(float));
  const std::string sha256 = Sha256Hex(npy);
  json items = json::array();
  for (const SegmentItem& item : segment.items) {
    if (item.row >= 0) {
      items.push_back(json::array({TextToJson(item.key), TextToJson(item.content_id), item.row}));
    } else {
      items.push_back(json::array({TextToJson(item.key), TextToJson(item.content_id), -1,
                                   TextToJson(item.stage), TextToJson(item.message)}));
    }
  }
  // The descriptors' file is named by its content too: two attempts at one segment (a
  // retried or speculative Spark task) that computed different bits write different files,
  // and whichever record lands last names its own.
  const std::string file = segment.name + "-" + sha256.substr(0, 16) + ".npy";
  const json record = {
      {"format", kSegmentFormat}, {"dim", segment.dim}, {"rows", rows},
      {"descriptors", file},      {"sha256", sha256},   {"items", std::move(items)}};
  ORCHARD_RETURN_NOT_OK(output_.Write(kSegmentsFolder + file, npy));
  CrashPoint("commit");
  ORCHARD_RETURN_NOT_OK(
      output_.Write(kSegmentsFolder + segment.name + ".json", DumpJson(record, -1) + "\n"));
  std::lock_guard lock(mutex_);
  files_[segment.name] = {file, sha256};
  verified_.erase(segment.name);
  return Status::OK();
}

Result<DescriptorStore::OpenSegment*> DescriptorStore::Open(const std::string& segment,
                                                            int64_t dim) {
  for (size_t i = 0; i < open_.size(); ++i) {
    if (open_[i]->name == segment) {
      std::rotate(open_.begin() + static_cast<std::ptrdiff_t>(i),
                  open_.begin() + static_cast<std::ptrdiff_t>(i) + 1, open_.end());
      return open_.back().get();
    }
  }
  auto known = files_.find(segment);
  if (known == files_.end()) return Status::Internal("segment " + segment + " has no record");
  const auto& [file, sha256] = known->second;
  const std::string key = kSegmentsFolder + file;
  // Each segment is checked against its record once per store, not each time a walk opens
  // it again (the two walks of a run read every segment twice).
  std::optional<std::string> actual;
  std::string path = output_.LocalPath(key);
  if (path.empty()) {  // a remote store: one copy in the cache, read from there
    path = (cache_dir_ / file).string();
    std::error_code ec;
    if (!fs::exists(path, ec)) {
      ORCHARD_ASSIGN_OR_RETURN(auto bytes, output_.Read(key));
      actual = Sha256Hex(AsText(bytes));  // hashed as downloaded: no second read
      ORCHARD_RETURN_NOT_OK(WriteFileAtomically(path, AsText(bytes)));
    }
  }
  if (!verified_.contains(segment)) {
    if (!actual) {
      ORCHARD_ASSIGN_OR_RETURN(std::string hashed, Sha256File(path));
      actual = std::move(hashed);
    }
    if (*actual != sha256) {
      return Status::CorruptData("descriptor store segment " + output_.Describe(key) +
                                 " does not match the sha256 of its record (remove the "
                                 "segment's two files to recompute its images)");
    }
    verified_.insert(segment);
  }
  auto open = std::make_unique<OpenSegment>();
  open->name = segment;
  open->file = std::fopen(path.c_str(), "rb");
  if (open->file == nullptr) return Status::IOError("cannot open " + path);
  std::error_code ec;
  const auto bytes = fs::file_size(path, ec);
  const auto row_bytes = static_cast<uint64_t>(dim) * sizeof(float);
  if (ec || bytes < kNpyHeaderBytes || (bytes - kNpyHeaderBytes) % row_bytes != 0) {
    return Status::CorruptData("descriptor store segment " + output_.Describe(key) +
                               " is not a float32 matrix of " + std::to_string(dim) + " columns");
  }
  open->rows = static_cast<int64_t>((bytes - kNpyHeaderBytes) / row_bytes);
  if (open_.size() == kMaxOpenSegments) open_.erase(open_.begin());
  open_.push_back(std::move(open));
  return open_.back().get();
}

Status DescriptorStore::ReadRows(const std::string& segment, int64_t row, int64_t n, int64_t dim,
                                 float* out) {
  std::lock_guard lock(mutex_);
  ORCHARD_ASSIGN_OR_RETURN(OpenSegment * open, Open(segment, dim));
  if (row < 0 || n < 0 || row + n > open->rows) {
    return Status::CorruptData("descriptor store segment " + segment + " has " +
                               std::to_string(open->rows) + " rows; row " + std::to_string(row) +
                               " + " + std::to_string(n) + " requested");
  }
  const auto offset = static_cast<long>(kNpyHeaderBytes) +
                      static_cast<long>(row * dim) * static_cast<long>(sizeof(float));
  const auto count = static_cast<size_t>(n * dim);
  if (std::fseek(open->file, offset, SEEK_SET) != 0 ||
      std::fread(out, sizeof(float), count, open->file) != count) {
    return Status::IOError("cannot read descriptor store segment " + segment);
  }
  return Status::OK();
}

}  // namespace orchard
