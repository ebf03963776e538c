#include <bit>
#include <string>

#include "orchard/writer.h"

namespace orchard {

static_assert(std::endian::native == std::endian::little, "the .npy writer assumes little-endian");

std::string NpyHeader(int64_t rows, int64_t cols) {
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(rows) +
                     ", " + std::to_string(cols) + "), }";
  // Magic (6) + version (2) + header length (2) + dict, space-padded, ending in '\n'.
  std::string header = "\x93NUMPY";
  header += '\x01';
  header += '\x00';
  const size_t dict_len = kNpyHeaderBytes - 10;
  dict.resize(dict_len - 1, ' ');
  dict += '\n';
  header += static_cast<char>(dict_len & 0xff);
  header += static_cast<char>(dict_len >> 8);
  return header + dict;
}

Result<std::unique_ptr<NpyWriter>> NpyWriter::Create(const std::string& path, int64_t cols) {
  if (cols <= 0) return Status::InvalidArgument("npy: column count must be positive");
  ORCHARD_ASSIGN_OR_RETURN(auto file, AtomicFile::Create(path));
  ORCHARD_RETURN_NOT_OK(file->Append(NpyHeader(0, cols)));
  return std::unique_ptr<NpyWriter>(new NpyWriter(std::move(file), cols));
}

Status NpyWriter::Append(int64_t n, const float* rows) {
  if (n <= 0) return Status::OK();
  ORCHARD_RETURN_NOT_OK(file_->Append(std::string_view(
      reinterpret_cast<const char*>(rows), static_cast<size_t>(n * cols_) * sizeof(float))));
  rows_ += n;
  return Status::OK();
}

Status NpyWriter::Close() {
  if (closed_) return Status::OK();
  closed_ = true;
  ORCHARD_RETURN_NOT_OK(file_->WriteAt(0, NpyHeader(rows_, cols_)));
  return file_->Close();
}

}  // namespace orchard
