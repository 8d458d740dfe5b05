// The subset of TOML 1.0 that sealsock's config file uses, parsed from text in memory.
//
// Supported: comments; bare, "basic" and 'literal' keys; dotted keys (a.b = 1); [tables] and
// [[arrays of tables]]; single-line basic strings with every TOML escape (\b \t \n \f \r \"
// \\ \uXXXX \UXXXXXXXX) and literal strings; integers (decimal with optional sign, 0x / 0o / 0b,
// underscores between digits); booleans; arrays (mixed types, over several lines, comments
// inside, trailing comma); inline tables ({ a = 1, b = "x" }, one line, closed once written).
// Not supported, each with an error that says so: multi-line strings, floats, dates and times.
//
// Rejected, each with the line and column and a sentence saying how to fix it: duplicate keys,
// tables defined twice, a dotted key or header reaching into a value or a closed inline table,
// invalid escapes, control characters (other than tab) in strings and comments, unterminated
// strings and arrays, bytes that are not UTF-8, a lone carriage return, integers that do not fit
// in 64 bits, input over max_input bytes, nesting deeper than max_depth, more than max_values
// values or more than max_keys keys in one table (so no input can cost more than linear-ish
// time and bounded memory).
//
// Error handling: the first syntax error ends the parse (what follows would only be noise);
// structural errors (duplicate keys, redefined tables) are collected and parsing goes on, with
// the offending entry dropped. Never throws for bad input, never crashes (fuzzed:
// tests/fuzz/config_fuzz.cc).
//
// Thread-safety: parse() is pure and reentrant. Allocation: yes (this is load-time code).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/diagnostic.h"

namespace sealsock::config::toml {

inline constexpr std::size_t max_input = 1024 * 1024;  // bytes of text
inline constexpr int max_depth = 32;                   // nested tables and arrays
inline constexpr std::size_t max_values = 100000;      // values in one document
inline constexpr std::size_t max_keys = 10000;         // keys in one table
inline constexpr std::size_t max_errors = 50;          // errors reported before giving up

struct Position {
    std::uint32_t line = 0;    // 1-based
    std::uint32_t column = 0;  // 1-based, in characters
};

enum class Type : std::uint8_t { string, integer, boolean, array, table };

// How a table or array came to exist: TOML's rules about what may be added later depend on it.
enum class Origin : std::uint8_t {
    value,            // written as a value (key = ...), or the root table
    implicit,         // a table created as a prefix of a [header] (may be defined once later)
    header,           // a table defined by a [header], or an element of an [[array]]
    dotted,           // a table created by a dotted key (a.b = 1)
    inline_table,     // a { } table: closed once written
    array_of_tables,  // an array built by [[headers]]
};

struct Member;

struct Value {
    Type type = Type::table;
    Origin origin = Origin::value;
    Position position;            // where the value starts (for a table: its header or '{')
    std::string string;           // Type::string, as UTF-8 with escapes resolved
    std::int64_t integer = 0;     // Type::integer
    bool boolean = false;         // Type::boolean
    std::vector<Value> items;     // Type::array
    std::vector<Member> members;  // Type::table, in file order
    int depth = 0;                // tables and arrays above this one

    // The member named `key` of a table, or nullptr.
    [[nodiscard]] const Member* find(std::string_view key) const;
    [[nodiscard]] Member* find(std::string_view key);
};

struct Member {
    std::string key;
    Position position;  // where the key is written
    Value value;
};

// A TOML type name with its article, for messages: "a string", "an integer", "an array".
std::string_view type_name(const Value& v);

struct Document {
    Value root;  // a table
    Diagnostics errors;
    [[nodiscard]] bool ok() const { return errors.empty(); }
};

// Parses `text`. `file` only labels the diagnostics. When errors is empty the root table holds
// the whole document; otherwise it holds what parsed before and around the errors.
Document parse(std::string_view text, std::string_view file);

}  // namespace sealsock::config::toml
