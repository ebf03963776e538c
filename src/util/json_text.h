// Text from the outside world (file names, paths, messages) in JSON, which must be UTF-8:
// valid UTF-8 is kept as a string, anything else as {"hex": "<its bytes>"}, so that no name
// crashes a writer and every byte can be recovered.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace orchard {

bool IsValidUtf8(std::string_view text);
nlohmann::json TextToJson(const std::string& text);
// The inverse of TextToJson; false if `value` is neither form.
bool TextFromJson(const nlohmann::json& value, std::string* text);
// dump() that cannot throw on text a caller forgot to pass through TextToJson: such bytes
// become U+FFFD instead of ending the process.
std::string DumpJson(const nlohmann::json& value, int indent);

}  // namespace orchard
