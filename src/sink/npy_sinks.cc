// The NPY outputs: features.npy (reduced) and raw.npy (descriptors before PCA).
#include "orchard/sink.h"
#include "orchard/writer.h"

namespace orchard {
namespace {

class NpySink : public ResultSink {
 public:
  explicit NpySink(bool raw) : raw_(raw) {}

  std::string name() const override { return raw_ ? "raw.npy" : "features.npy"; }

  Status Begin(const SinkContext& context) override {
    ORCHARD_ASSIGN_OR_RETURN(writer_, NpyWriter::Create((context.dir / name()).string(),
                                                        raw_ ? context.dim : context.k));
    return Status::OK();
  }

  Status Write(const ResultRows& rows) override {
    return writer_->Append(rows.n, raw_ ? rows.raw : rows.reduced);
  }

  Status Commit() override { return writer_->Close(); }

 private:
  bool raw_;
  std::unique_ptr<NpyWriter> writer_;
};

}  // namespace

std::unique_ptr<ResultSink> MakeFeaturesNpySink() { return std::make_unique<NpySink>(false); }
std::unique_ptr<ResultSink> MakeRawNpySink() { return std::make_unique<NpySink>(true); }

std::vector<std::unique_ptr<ResultSink>> StandardSinks(bool save_raw) {
  std::vector<std::unique_ptr<ResultSink>> sinks;
  sinks.push_back(MakeFeaturesCsvSink());
  sinks.push_back(MakeFeaturesNpySink());
  if (save_raw) sinks.push_back(MakeRawNpySink());
  return sinks;
}

}  // namespace orchard
