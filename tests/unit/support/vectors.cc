#include "support/vectors.h"

#include <doctest/doctest.h>

#include <cctype>
#include <fstream>
#include <stdexcept>

namespace sealsock::test {

Bytes hex(const std::string& text) {
    Bytes out;
    int high = -1;
    for (char c : text) {
        if (std::isspace(static_cast<unsigned char>(c))) continue;
        if (!std::isxdigit(static_cast<unsigned char>(c)))
            throw std::runtime_error("not a hex digit: " + std::string(1, c));
        const int v = std::isdigit(static_cast<unsigned char>(c))
                          ? c - '0'
                          : std::tolower(static_cast<unsigned char>(c)) - 'a' + 10;
        if (high < 0) {
            high = v;
        } else {
            out.push_back(static_cast<std::uint8_t>(high << 4 | v));
            high = -1;
        }
    }
    if (high >= 0) throw std::runtime_error("odd number of hex digits");
    return out;
}

const Bytes& VectorCase::operator[](const std::string& field) const {
    auto it = fields.find(field);
    REQUIRE_MESSAGE(it != fields.end(), "vector case " << name << " has no field " << field);
    return it->second;
}

std::uint64_t VectorCase::number(const std::string& field) const {
    const Bytes& b = (*this)[field];
    REQUIRE(b.size() <= 8);
    std::uint64_t v = 0;
    for (auto x : b)
        v = v << 8 | x;
    return v;
}

const VectorCase& VectorFile::operator[](const std::string& name) const {
    for (const auto& c : cases)
        if (c.name == name) return c;
    FAIL("no vector case " << name);
    throw std::logic_error("unreachable");
}

VectorFile load_vectors(const std::string& file) {
    const std::string path = std::string(SEALSOCK_VECTOR_DIR) + "/" + file;
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot open " + path);
    VectorFile vf;
    std::string line, field, value;
    int lineno = 0;
    auto flush = [&] {
        if (field.empty()) return;
        if (vf.cases.empty()) throw std::runtime_error(path + ": field before any [case]");
        vf.cases.back().fields[field] = hex(value);
        field.clear();
        value.clear();
    };
    while (std::getline(in, line)) {
        ++lineno;
        try {
            if (line.empty() || line[0] == '#') continue;
            if (std::isspace(static_cast<unsigned char>(line[0]))) {
                if (line.find_first_not_of(" \t") == std::string::npos) continue;
                if (field.empty()) throw std::runtime_error("continuation without a field");
                value += line;
                continue;
            }
            flush();
            if (line[0] == '[') {
                const auto close = line.find(']');
                if (close == std::string::npos) throw std::runtime_error("unclosed [");
                vf.cases.push_back(VectorCase{line.substr(1, close - 1), {}});
                continue;
            }
            const auto eq = line.find('=');
            if (eq == std::string::npos) throw std::runtime_error("expected name = hex");
            field = line.substr(0, line.find_last_not_of(" \t", eq - 1) + 1);
            value = line.substr(eq + 1);
        } catch (const std::runtime_error& e) {
            throw std::runtime_error(path + ":" + std::to_string(lineno) + ": " + e.what());
        }
    }
    flush();
    return vf;
}

}  // namespace sealsock::test
