// Byte counts for messages, in the unit that keeps them readable and never rounds them to
// zero: "512 bytes", "13.1 MiB", "2.25 GiB", "198 GiB".
#pragma once

#include <string>

namespace orchard {

std::string HumanBytes(double bytes);

}  // namespace orchard
