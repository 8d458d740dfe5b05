// Reads the test-vector files in tests/vectors/ (format described in tests/vectors/README.md).
#pragma once

#include "support/common.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace sealsock::test {

struct VectorCase {
    std::string name;
    std::map<std::string, Bytes> fields;

    // The field's bytes; fails the current test if it is missing.
    const Bytes& operator[](const std::string& field) const;
    bool has(const std::string& field) const { return fields.count(field) != 0; }
    // A field of up to 8 bytes read as a big-endian number.
    std::uint64_t number(const std::string& field) const;
};

struct VectorFile {
    std::vector<VectorCase> cases;
    // The case named `name`; fails the current test if it is missing.
    const VectorCase& operator[](const std::string& name) const;
};

// Loads tests/vectors/<file>. Throws std::runtime_error naming the line on a malformed file.
VectorFile load_vectors(const std::string& file);

Bytes hex(const std::string& text);

}  // namespace sealsock::test
