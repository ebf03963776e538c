// The CSV outputs: features.csv (rows with a descriptor) and errors.csv (the others).
#include "orchard/csv.h"
#include "orchard/sink.h"
#include "orchard/writer.h"

namespace orchard {
namespace {

class FeaturesCsvSink : public ResultSink {
 public:
  std::string name() const override { return "features.csv"; }

  Status Begin(const SinkContext& context) override {
    k_ = context.k;
    ORCHARD_ASSIGN_OR_RETURN(file_, AtomicFile::Create((context.dir / name()).string()));
    std::string header = "path,label";
    for (int64_t j = 1; j <= k_; ++j) header += ",pc_" + std::to_string(j);
    return file_->Append(header + "\n");
  }

  Status Write(const ResultRows& rows) override {
    text_.clear();
    for (int64_t i = 0; i < rows.n; ++i) {
      text_ += CsvField(rows.paths[i]);
      text_ += ',';
      text_ += CsvField(rows.labels[i]);
      const float* values = rows.reduced + i * k_;
      for (int64_t j = 0; j < k_; ++j) {
        text_ += ',';
        text_ += FormatFloat(values[j]);
      }
      text_ += '\n';
    }
    return file_->Append(text_);
  }

  Status Commit() override { return file_->Close(); }

 private:
  int64_t k_ = 0;
  std::unique_ptr<AtomicFile> file_;
  std::string text_;
};

class ErrorsCsvSink : public ErrorSink {
 public:
  explicit ErrorsCsvSink(std::unique_ptr<AtomicFile> file) : file_(std::move(file)) {}

  Status Write(const ErrorRow& row) override {
    return file_->Append(CsvField(row.path) + "," + CsvField(row.stage) + "," +
                         CsvField(row.message) + "\n");
  }

  Status Commit() override { return file_->Close(); }

 private:
  std::unique_ptr<AtomicFile> file_;
};

}  // namespace

std::unique_ptr<ResultSink> MakeFeaturesCsvSink() { return std::make_unique<FeaturesCsvSink>(); }

Result<std::unique_ptr<ErrorSink>> ErrorSink::Create(const std::filesystem::path& dir) {
  ORCHARD_ASSIGN_OR_RETURN(auto file, AtomicFile::Create((dir / "errors.csv").string()));
  ORCHARD_RETURN_NOT_OK(file->Append("path,stage,message\n"));
  return std::unique_ptr<ErrorSink>(new ErrorsCsvSink(std::move(file)));
}

}  // namespace orchard
