// Small shared definitions for the unit tests.
#pragma once

#include <cstdint>
#include <vector>

namespace sealsock::test {

using Bytes = std::vector<std::uint8_t>;

}  // namespace sealsock::test
