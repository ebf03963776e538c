// preprocess_probe: runs DecodeImage (+ Preprocess) on one file and dumps the result, for
// the Python reference tests (tests/python/test_preprocess_reference.py).
//
//   preprocess_probe --image PATH --width W --height H --resize stretch|shorter_side_crop
//       --crop-fraction F --interpolation NAME --channel-order RGB|BGR --scale S
//       --mean a,b,c --std a,b,c --out FILE
//     writes the CHW tensor as 3 * H * W little-endian float32 values.
//   preprocess_probe --decode-only --image PATH --out FILE
//     writes the decoded RGB bytes (HWC, no header) and prints "W H" on stdout.
//
// Options left out keep the PreprocessSpec defaults. On error: one line on stderr, exit 1.

#include <array>
#include <bit>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "orchard/image.h"
#include "orchard/preprocess.h"
#include "orchard/status.h"

namespace {

static_assert(std::endian::native == std::endian::little, "the dump format is little-endian");

[[noreturn]] void Fail(const std::string& message) {
  std::cerr << "preprocess_probe: " << message << "\n";
  std::exit(1);
}

double ParseNumber(const std::string& flag, const std::string& text) {
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0') Fail("bad number for " + flag + ": \"" + text + "\"");
  return value;
}

int ParseInt(const std::string& flag, const std::string& text) {
  char* end = nullptr;
  const long value = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || value < 0 || value > 1'000'000) {
    Fail("bad integer for " + flag + ": \"" + text + "\"");
  }
  return static_cast<int>(value);
}

std::array<float, 3> ParseTriple(const std::string& flag, const std::string& text) {
  std::array<float, 3> out{};
  std::stringstream in(text);
  std::string item;
  size_t n = 0;
  while (std::getline(in, item, ',')) {
    if (n == 3) Fail(flag + " needs 3 comma-separated numbers, got \"" + text + "\"");
    out[n++] = static_cast<float>(ParseNumber(flag, item));
  }
  if (n != 3) Fail(flag + " needs 3 comma-separated numbers, got \"" + text + "\"");
  return out;
}

template <typename T>
T ValueOrFail(orchard::Result<T> result) {
  if (!result.ok()) Fail(result.status().ToString());
  return result.MoveValue();
}

void WriteFile(const std::string& path, const void* data, size_t size) {
  std::ofstream out(path, std::ios::binary);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
  out.close();
  if (!out) Fail("cannot write " + path);
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> flags;
  bool decode_only = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--decode-only") {
      decode_only = true;
    } else if (arg.rfind("--", 0) == 0 && i + 1 < argc) {
      flags[arg] = argv[++i];
    } else {
      Fail("unexpected argument \"" + arg + "\" (see the usage in preprocess_probe.cc)");
    }
  }
  auto take = [&](const std::string& flag) -> std::string {
    auto it = flags.find(flag);
    if (it == flags.end()) return {};
    std::string value = it->second;
    flags.erase(it);
    return value;
  };
  const std::string image_path = take("--image");
  const std::string out_path = take("--out");
  if (image_path.empty() || out_path.empty()) Fail("--image and --out are required");

  std::ifstream in(image_path, std::ios::binary);
  if (!in) Fail("cannot open " + image_path);
  const std::vector<uint8_t> bytes{std::istreambuf_iterator<char>(in),
                                   std::istreambuf_iterator<char>()};
  auto decoded = orchard::DecodeImage(bytes);
  if (!decoded.ok()) Fail(decoded.status().WithContext(image_path).ToString());
  const orchard::Image image = decoded.MoveValue();

  if (decode_only) {
    if (!flags.empty()) Fail("unexpected option " + flags.begin()->first + " with --decode-only");
    WriteFile(out_path, image.rgb.data(), image.rgb.size());
    std::cout << image.width << " " << image.height << "\n";
    return 0;
  }

  orchard::PreprocessSpec spec;
  std::string v;
  if (!(v = take("--width")).empty()) spec.width = ParseInt("--width", v);
  if (!(v = take("--height")).empty()) spec.height = ParseInt("--height", v);
  if (!(v = take("--resize")).empty()) spec.resize = ValueOrFail(orchard::ParseResizePolicy(v));
  if (!(v = take("--crop-fraction")).empty()) {
    spec.crop_fraction = ParseNumber("--crop-fraction", v);
  }
  if (!(v = take("--interpolation")).empty()) {
    spec.interpolation = ValueOrFail(orchard::ParseInterpolation(v));
  }
  if (!(v = take("--channel-order")).empty()) {
    spec.channel_order = ValueOrFail(orchard::ParseChannelOrder(v));
  }
  if (!(v = take("--scale")).empty()) spec.scale = static_cast<float>(ParseNumber("--scale", v));
  if (!(v = take("--mean")).empty()) spec.mean = ParseTriple("--mean", v);
  if (!(v = take("--std")).empty()) spec.stddev = ParseTriple("--std", v);
  if (!flags.empty()) Fail("unknown option " + flags.begin()->first);

  const orchard::Status valid = orchard::ValidatePreprocessSpec(spec);
  if (!valid.ok()) Fail(valid.ToString());
  std::vector<float> tensor(orchard::TensorElements(spec));
  const orchard::Status st = orchard::Preprocess(image, spec, tensor.data());
  if (!st.ok()) Fail(st.ToString());
  WriteFile(out_path, tensor.data(), tensor.size() * sizeof(float));
  return 0;
}
