#include "config/toml.h"

#include <limits>
#include <utility>

namespace sealsock::config::toml {
namespace {

constexpr std::size_t npos = std::string_view::npos;

bool is_control(unsigned char c) {
    return (c < 0x20 && c != '\t') || c == 0x7f;
}

bool is_bare_key_char(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

// Characters that can belong to an unquoted scalar (true, 42, 0x1f, 1e3, 1979-05-27, 07:32:00).
bool is_scalar_char(unsigned char c) {
    return is_bare_key_char(c) || c == '+' || c == '.' || c == ':';
}

// TOML's one-letter escapes and the characters they stand for (\u and \U are handled apart).
constexpr std::pair<char, char> simple_escapes[] = {
    {'b', '\b'}, {'t', '\t'}, {'n', '\n'}, {'f', '\f'}, {'r', '\r'}, {'"', '"'}, {'\\', '\\'},
};

char hex_digit(unsigned v) {
    return "0123456789ABCDEF"[v & 0xf];
}

std::string codepoint_name(unsigned c) {
    std::string s = "U+00";
    s += hex_digit(c >> 4);
    s += hex_digit(c);
    return s;
}

// What the text at `pos` is, for "expected X but found Y" messages.
std::string describe(std::string_view in, std::size_t pos) {
    if (pos >= in.size()) return "the end of the file";
    const auto c = static_cast<unsigned char>(in[pos]);
    if (c == '\n' || c == '\r') return "the end of the line";
    if (c == '\t') return "a tab";
    if (c == ' ') return "a space";
    if (is_control(c)) return "control character " + codepoint_name(c);
    if (c >= 0x80) return "a non-ASCII character";
    return std::string("`") + static_cast<char>(c) + "`";
}

// Offset of the first byte that does not start a well-formed UTF-8 character (no overlong forms,
// no surrogates, nothing above U+10FFFF), or npos.
std::size_t invalid_utf8(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            ++i;
            continue;
        }
        std::size_t len = 0;
        std::uint32_t cp = 0;
        std::uint32_t min = 0;
        if ((c & 0xE0) == 0xC0) {
            len = 2, cp = c & 0x1Fu, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3, cp = c & 0x0Fu, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4, cp = c & 0x07u, min = 0x10000;
        } else {
            return i;
        }
        if (len > s.size() - i) return i;
        for (std::size_t k = 1; k < len; ++k) {
            const auto cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xC0) != 0x80) return i;
            cp = (cp << 6) | (cc & 0x3Fu);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
        i += len;
    }
    return npos;
}

void append_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

int digit_value(unsigned char c, int base) {
    int v = 99;
    if (c >= '0' && c <= '9') v = c - '0';
    if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
    if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
    return v < base ? v : -1;
}

// Parses a TOML integer token. Returns an empty string on success, else the reason it is not one
// (a sentence fragment that follows "`TOKEN` is not a valid integer: ").
std::string parse_integer(std::string_view tok, std::int64_t& out) {
    bool negative = false;
    std::string_view body = tok;
    if (!body.empty() && (body[0] == '+' || body[0] == '-')) {
        negative = body[0] == '-';
        body.remove_prefix(1);
    }
    int base = 10;
    if (body.size() >= 2 && body[0] == '0' &&
        (body[1] == 'x' || body[1] == 'o' || body[1] == 'b')) {
        base = body[1] == 'x' ? 16 : body[1] == 'o' ? 8 : 2;
        if (body.size() != tok.size()) return "hexadecimal, octal and binary integers take no sign";
        body.remove_prefix(2);
    } else {
        if (body == "inf" || body == "nan" || body.find_first_of(".eE") != npos)
            return "floating-point numbers are not used by sealsock; write a whole number";
        if (body.find_first_of(":-") != npos)
            return "dates and times are not used by sealsock; write a number or a \"string\"";
        if (body.size() > 1 && body[0] == '0')
            return "leading zeros are not allowed (write 7, not 07)";
    }
    if (body.empty()) return "it has no digits";
    const std::uint64_t limit = negative ? std::uint64_t{1} << 63 : (std::uint64_t{1} << 63) - 1;
    std::uint64_t magnitude = 0;
    bool after_digit = false;
    for (const char ch : body) {
        const auto c = static_cast<unsigned char>(ch);
        if (c == '_') {
            if (!after_digit) return "an underscore must stand between two digits";
            after_digit = false;
            continue;
        }
        const int d = digit_value(c, base);
        if (d < 0)
            return std::string("`") + ch + "` is not a digit in base " + std::to_string(base);
        const auto ud = static_cast<std::uint64_t>(d);
        if (magnitude > (limit - ud) / static_cast<std::uint64_t>(base))
            return "it does not fit in a 64-bit signed integer";
        magnitude = magnitude * static_cast<std::uint64_t>(base) + ud;
        after_digit = true;
    }
    if (!after_digit) return "an underscore must stand between two digits";
    out =
        negative ? static_cast<std::int64_t>(0 - magnitude) : static_cast<std::int64_t>(magnitude);
    return {};
}

struct KeyPart {
    std::string name;
    Position position;
};

std::string dotted_name(const std::vector<KeyPart>& parts, std::size_t upto) {
    std::string s;
    for (std::size_t i = 0; i <= upto && i < parts.size(); ++i) {
        if (i != 0) s += '.';
        s += parts[i].name;
    }
    return s;
}

std::string on_line(const Value& v) {
    return " (line " + std::to_string(v.position.line) + ")";
}

class Parser {
  public:
    Parser(std::string_view text, std::string_view file) : in_(text), file_(file) {
        doc_.root.position = {1, 1};
    }

    Document run() {
        if (in_.size() > max_input) {
            doc_.errors.push_back({file_, 0, 0,
                                   "the file is larger than 1 MiB, which no sealsock config needs; "
                                   "check that this is the right file"});
            return std::move(doc_);
        }
        if (const std::size_t bad = invalid_utf8(in_); bad != npos) {
            skip_to(bad);
            fail(here(), "this byte is not valid UTF-8; save the file as UTF-8");
            return std::move(doc_);
        }
        if (in_.substr(0, 3) == "\xEF\xBB\xBF") pos_ = 3;  // a byte-order mark
        current_ = &doc_.root;
        while (!stopped_ && !at_end())
            statement();
        return std::move(doc_);
    }

  private:
    // ---- cursor -------------------------------------------------------------------------------

    [[nodiscard]] bool at_end() const { return pos_ >= in_.size(); }
    [[nodiscard]] unsigned char peek(std::size_t ahead = 0) const {
        return pos_ + ahead < in_.size() ? static_cast<unsigned char>(in_[pos_ + ahead]) : 0;
    }
    [[nodiscard]] Position here() const { return {line_, column_}; }
    [[nodiscard]] std::string found() const { return describe(in_, pos_); }

    // Steps over one byte that is not a line feed. Columns count characters, not bytes.
    void advance() {
        const auto c = static_cast<unsigned char>(in_[pos_++]);
        if ((c & 0xC0) != 0x80) ++column_;
    }
    void skip_to(std::size_t offset) {
        while (pos_ < offset) {
            if (in_[pos_] == '\n') {
                ++pos_, ++line_, column_ = 1;
            } else {
                advance();
            }
        }
    }

    // ---- errors -------------------------------------------------------------------------------

    // A syntax error: reported, and the parse stops.
    bool fail(Position p, std::string message) {
        doc_.errors.push_back({file_, p.line, p.column, std::move(message)});
        stopped_ = true;
        return false;
    }

    // A structural error: reported, the entry is dropped and the parse goes on.
    void report(Position p, std::string message) {
        doc_.errors.push_back({file_, p.line, p.column, std::move(message)});
        if (doc_.errors.size() >= max_errors)
            fail(p, "too many errors; fix the ones above and try again");
    }

    // ---- layout -------------------------------------------------------------------------------

    void skip_spaces() {
        while (peek() == ' ' || peek() == '\t')
            advance();
    }

    bool comment() {
        advance();  // '#'
        while (!at_end() && peek() != '\n' && peek() != '\r') {
            if (is_control(peek()))
                return fail(here(), "control character " + codepoint_name(peek()) +
                                        " in a comment; delete it");
            advance();
        }
        return true;
    }

    bool newline() {
        if (peek() == '\r') {
            if (peek(1) != '\n')
                return fail(here(),
                            "a carriage return must be followed by a line feed; save the file "
                            "with Unix (LF) or Windows (CRLF) line endings");
            advance();
        }
        ++pos_, ++line_, column_ = 1;
        return true;
    }

    // Spaces, comments and line breaks, as allowed between array items.
    bool blank() {
        for (;;) {
            skip_spaces();
            if (peek() == '#') {
                if (!comment()) return false;
            } else if (!at_end() && (peek() == '\n' || peek() == '\r')) {
                if (!newline()) return false;
            } else {
                return true;
            }
        }
    }

    bool end_of_line(const char* after) {
        skip_spaces();
        if (peek() == '#' && !comment()) return false;
        if (at_end()) return true;
        if (peek() == '\n' || peek() == '\r') return newline();
        return fail(here(), "unexpected " + found() + " after " + after +
                                "; put each key = value and each [header] on a line of its own");
    }

    void statement() {
        skip_spaces();
        if (at_end()) return;
        const unsigned char c = peek();
        if (c == '#') {
            comment();
        } else if (c == '\n' || c == '\r') {
            newline();
        } else if (c == '[') {
            if (header()) end_of_line("the header");
        } else {
            if (keyval(*current_)) end_of_line("the value");
        }
    }

    // ---- keys ---------------------------------------------------------------------------------

    bool key(std::vector<KeyPart>& parts) {
        for (;;) {
            if (parts.size() >= static_cast<std::size_t>(max_depth))
                return fail(here(), "a key with more than 32 dotted parts; use fewer levels");
            KeyPart part{{}, here()};
            if (!simple_key(part.name)) return false;
            parts.push_back(std::move(part));
            skip_spaces();
            if (peek() != '.') return true;
            advance();
            skip_spaces();
        }
    }

    bool simple_key(std::string& out) {
        const unsigned char c = peek();
        if (!at_end() && c == '"') {
            if (peek(1) == '"' && peek(2) == '"')
                return fail(here(), "a key cannot be a multi-line string");
            return basic_string(out);
        }
        if (!at_end() && c == '\'') return literal_string(out);
        if (at_end() || !is_bare_key_char(c))
            return fail(here(),
                        "expected a key (letters, digits, _ and -, or a \"quoted key\") "
                        "but found " +
                            found());
        while (!at_end() && is_bare_key_char(peek())) {
            out += static_cast<char>(peek());
            advance();
        }
        return true;
    }

    // ---- strings ------------------------------------------------------------------------------

    bool unterminated(Position start, char quote) {
        return fail(start, std::string("this string is not closed: end it with ") + quote +
                               " on the same line (multi-line strings are not supported; use "
                               "\\n in a \"basic string\" for a line break)");
    }

    bool basic_string(std::string& out) {
        const Position start = here();
        advance();  // '"'
        for (;;) {
            if (at_end() || peek() == '\n' || peek() == '\r') return unterminated(start, '"');
            const unsigned char c = peek();
            if (c == '"') {
                advance();
                return true;
            }
            if (c == '\\') {
                if (!escape(out)) return false;
                continue;
            }
            if (is_control(c))
                return fail(here(), "control character " + codepoint_name(c) +
                                        " in a string; write it as the escape \\u00" +
                                        hex_digit(c >> 4) + hex_digit(c));
            out += static_cast<char>(c);
            advance();
        }
    }

    bool escape(std::string& out) {
        const Position start = here();
        advance();  // '\\'
        if (at_end()) return unterminated(start, '"');
        const unsigned char c = peek();
        if (c == 'u' || c == 'U') return unicode_escape(start, c == 'u' ? 4 : 8, out);
        const char* simple = nullptr;
        for (const auto& [letter, meaning] : simple_escapes)
            if (letter == c) simple = &meaning;
        if (simple == nullptr)
            return fail(start, "invalid escape: a backslash followed by " + found() +
                                   "; strings know \\b \\t \\n \\f \\r \\\" \\\\ \\uXXXX and "
                                   "\\UXXXXXXXX. Write \\\\ for a backslash, or use a 'literal "
                                   "string' in which backslashes are plain");
        out += *simple;
        advance();
        return true;
    }

    bool unicode_escape(Position start, int digits, std::string& out) {
        advance();  // 'u' or 'U'
        std::uint32_t cp = 0;
        for (int i = 0; i < digits; ++i) {
            const int d = at_end() ? -1 : digit_value(peek(), 16);
            if (d < 0)
                return fail(start, std::string(digits == 4 ? "\\u" : "\\U") + " needs exactly " +
                                       std::to_string(digits) + " hexadecimal digits");
            cp = cp << 4 | static_cast<std::uint32_t>(d);
            advance();
        }
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return fail(start,
                        "this escape is not a Unicode scalar value (surrogates and values "
                        "above U+10FFFF are not characters)");
        append_utf8(out, cp);
        return true;
    }

    bool literal_string(std::string& out) {
        const Position start = here();
        advance();  // '\''
        for (;;) {
            if (at_end() || peek() == '\n' || peek() == '\r') return unterminated(start, '\'');
            const unsigned char c = peek();
            if (c == '\'') {
                advance();
                return true;
            }
            if (is_control(c))
                return fail(here(), "control character " + codepoint_name(c) +
                                        " in a 'literal string'; delete it, or use a \"basic "
                                        "string\" with an escape");
            out += static_cast<char>(c);
            advance();
        }
    }

    // ---- values -------------------------------------------------------------------------------

    bool value(Value& v, int depth) {
        if (depth > max_depth)
            return fail(here(), "values nested more than 32 levels deep; flatten the structure");
        if (++values_ > max_values)
            return fail(here(), "more than 100000 values; no sealsock config is that large");
        v.position = here();
        v.depth = depth;
        const unsigned char c = at_end() ? 0 : peek();
        if (c == '"' || c == '\'') {
            if (peek(1) == c && peek(2) == c)
                return fail(here(),
                            "multi-line strings are not supported; write the string on "
                            "one line");
            v.type = Type::string;
            return c == '"' ? basic_string(v.string) : literal_string(v.string);
        }
        if (c == '[') return array(v, depth);
        if (c == '{') return inline_table(v);
        return scalar(v);
    }

    bool scalar(Value& v) {
        const Position start = here();
        const std::size_t begin = pos_;
        while (!at_end() && is_scalar_char(peek()))
            advance();
        const std::string_view tok = in_.substr(begin, pos_ - begin);
        if (tok.empty())
            return fail(start,
                        "expected a value (a \"string\", an integer, true or false, an "
                        "[array] or an { inline table }) but found " +
                            found());
        if (tok == "true" || tok == "false") {
            v.type = Type::boolean;
            v.boolean = tok == "true";
            return true;
        }
        const auto first = static_cast<unsigned char>(tok[0]);
        if (!(first >= '0' && first <= '9') && first != '+' && first != '-') {
            if (tok == "inf" || tok == "nan")
                return fail(start, "floating-point numbers are not used by sealsock");
            return fail(start, quote(tok) + " is not a value; strings need quotes, as in \"" +
                                   std::string(tok.substr(0, 60)) + "\"");
        }
        v.type = Type::integer;
        const std::string why = parse_integer(tok, v.integer);
        if (!why.empty()) return fail(start, quote(tok) + " is not a valid integer: " + why);
        return true;
    }

    bool array(Value& v, int depth) {
        const Position start = here();
        v.type = Type::array;
        advance();  // '['
        for (;;) {
            if (!blank()) return false;
            if (at_end()) break;
            if (peek() == ']') {
                advance();
                return true;
            }
            Value item;
            if (!value(item, depth + 1)) return false;
            v.items.push_back(std::move(item));
            if (!blank()) return false;
            if (at_end()) break;
            if (peek() == ',') {
                advance();
            } else if (peek() == ']') {
                advance();
                return true;
            } else {
                return fail(here(), "expected , or ] after an array item but found " + found() +
                                        " (the array starts on line " + std::to_string(start.line) +
                                        ")");
            }
        }
        return fail(start, "this array is not closed: add ] after its last item");
    }

    // Keys inside go one level below the table (its depth was set by value()).
    bool inline_table(Value& v) {
        const Position start = here();
        v.type = Type::table;
        advance();  // '{'
        skip_spaces();
        if (peek() == '}') {
            advance();
            v.origin = Origin::inline_table;
            return true;
        }
        for (;;) {
            if (!keyval(v)) return false;
            skip_spaces();
            if (peek() == ',') {
                advance();
                skip_spaces();
                if (peek() == '}')
                    return fail(here(),
                                "a trailing comma is not allowed in an inline table; "
                                "remove it");
            } else if (peek() == '}') {
                advance();
                v.origin = Origin::inline_table;
                return true;
            } else if (at_end() || peek() == '\n' || peek() == '\r') {
                return fail(start,
                            "this inline table is not closed on its line: add } (an "
                            "inline table must fit on one line; use a [section] for a "
                            "longer one)");
            } else {
                return fail(here(), "expected , or } in the inline table but found " + found());
            }
        }
    }

    // ---- tables -------------------------------------------------------------------------------

    bool room(const Value& table, Position p) {
        if (table.members.size() < max_keys) return true;
        return fail(p, "more than 10000 keys in one table; no sealsock config is that large");
    }

    bool deep_enough(const Value& parent, Position p) {
        if (parent.depth < max_depth) return true;
        return fail(p, "tables nested more than 32 levels deep; flatten the structure");
    }

    Value* add_table(Value& parent, const KeyPart& part, Origin origin) {
        if (!room(parent, part.position) || !deep_enough(parent, part.position)) return nullptr;
        Value t;
        t.type = Type::table;
        t.origin = origin;
        t.position = part.position;
        t.depth = parent.depth + 1;
        parent.members.push_back(Member{part.name, part.position, std::move(t)});
        return &parent.members.back().value;
    }

    // key = value, into `table` (the current section or an inline table being built).
    bool keyval(Value& table) {
        std::vector<KeyPart> parts;
        if (!key(parts)) return false;
        if (peek() != '=')
            return fail(here(), "expected = after the key " + quote(dotted_name(parts, npos)) +
                                    " but found " + found());
        advance();
        skip_spaces();
        Value v;
        if (!value(v, table.depth + static_cast<int>(parts.size()))) return false;
        insert(table, parts, std::move(v));
        return !stopped_;
    }

    void insert(Value& table, const std::vector<KeyPart>& parts, Value&& v) {
        Value* t = &table;
        for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
            Member* m = t->find(parts[i].name);
            if (m == nullptr) {
                t = add_table(*t, parts[i], Origin::dotted);
                if (t == nullptr) return;
            } else if (m->value.type == Type::table && m->value.origin == Origin::dotted) {
                t = &m->value;
            } else {
                return report(parts[i].position,
                              quote(dotted_name(parts, i)) + " is already " +
                                  std::string(type_name(m->value)) + on_line(m->value) +
                                  "; a dotted key cannot add to it. Write the key in that "
                                  "table's own section");
            }
        }
        const KeyPart& last = parts.back();
        if (const Member* m = t->find(last.name); m != nullptr)
            return report(last.position, "duplicate key " + quote(dotted_name(parts, npos)) +
                                             ": it is already set on line " +
                                             std::to_string(m->position.line) +
                                             "; remove one of the two");
        if (!room(*t, last.position)) return;
        t->members.push_back(Member{last.name, last.position, std::move(v)});
    }

    bool header() {
        const Position start = here();
        advance();  // '['
        const bool is_array = peek() == '[';
        if (is_array) advance();
        skip_spaces();
        std::vector<KeyPart> parts;
        if (!key(parts)) return false;
        const char* close = is_array ? "]]" : "]";
        for (int i = 0; i < (is_array ? 2 : 1); ++i) {
            if (peek() != ']')
                return fail(here(), std::string("expected ") + close +
                                        " to close the header but found " + found());
            advance();
        }
        open_table(parts, is_array, start);
        return !stopped_;
    }

    // Makes the table a [header] or [[header]] names the current one.
    void open_table(const std::vector<KeyPart>& parts, bool is_array, Position start) {
        discard_ = Value{};
        current_ = &discard_;  // where keys go when the header is rejected
        Value* t = &doc_.root;
        for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
            Member* m = t->find(parts[i].name);
            if (m == nullptr) {
                t = add_table(*t, parts[i], Origin::implicit);
                if (t == nullptr) return;
            } else if (m->value.type == Type::table && m->value.origin != Origin::inline_table) {
                t = &m->value;
            } else if (m->value.type == Type::array && m->value.origin == Origin::array_of_tables) {
                t = &m->value.items.back();
            } else {
                return report(parts[i].position,
                              quote(dotted_name(parts, i)) + " is already " +
                                  std::string(type_name(m->value)) + on_line(m->value) +
                                  ", so this header cannot make a table inside it");
            }
        }
        const std::string name = dotted_name(parts, npos);
        const KeyPart& last = parts.back();
        Member* m = t->find(last.name);
        if (m == nullptr) {
            Value* created =
                add_table(*t, last, is_array ? Origin::array_of_tables : Origin::header);
            if (created == nullptr) return;
            created->position = start;
            if (is_array) {
                created->type = Type::array;
                add_element(*created, start);
            } else {
                current_ = created;
            }
            return;
        }
        Value& existing = m->value;
        if (is_array && existing.type == Type::array && existing.origin == Origin::array_of_tables)
            return add_element(existing, start);
        if (!is_array && existing.type == Type::table && existing.origin == Origin::implicit) {
            existing.origin = Origin::header;
            existing.position = start;
            current_ = &existing;
            return;
        }
        if (existing.type == Type::array && existing.origin == Origin::array_of_tables)
            return report(start, quote(name) + " is an array of tables (first [[" + name +
                                     "]] on line " + std::to_string(existing.position.line) +
                                     "); write [[" + name + "]] to add an entry to it");
        if (!is_array && existing.type == Type::table && existing.origin == Origin::header)
            return report(start, "table [" + name + "] is defined twice (first on line " +
                                     std::to_string(existing.position.line) +
                                     "); merge the two sections into one");
        report(start, quote(name) + " is already " + std::string(type_name(existing)) +
                          on_line(existing) + " and cannot also be " +
                          (is_array ? "an array of tables" : "a [table]"));
    }

    void add_element(Value& aot, Position start) {
        if (aot.items.size() >= max_keys) {
            fail(start, "more than 10000 entries in one array of tables");
            return;
        }
        if (++values_ > max_values) {
            fail(start, "more than 100000 values; no sealsock config is that large");
            return;
        }
        Value element;
        element.type = Type::table;
        element.origin = Origin::header;
        element.position = start;
        element.depth = aot.depth + 1;
        aot.items.push_back(std::move(element));
        current_ = &aot.items.back();
    }

    std::string_view in_;
    std::size_t pos_ = 0;
    std::uint32_t line_ = 1;
    std::uint32_t column_ = 1;
    std::string file_;
    Document doc_;
    Value* current_ = nullptr;  // the table key = value lines go into
    Value discard_;             // the current table after a rejected header
    std::size_t values_ = 0;
    bool stopped_ = false;
};

}  // namespace

const Member* Value::find(std::string_view key) const {
    for (const Member& m : members)
        if (m.key == key) return &m;
    return nullptr;
}

Member* Value::find(std::string_view key) {
    for (Member& m : members)
        if (m.key == key) return &m;
    return nullptr;
}

std::string_view type_name(const Value& v) {
    switch (v.type) {
        case Type::string:
            return "a string";
        case Type::integer:
            return "an integer";
        case Type::boolean:
            return "a boolean";
        case Type::array:
            return v.origin == Origin::array_of_tables ? "an array of tables" : "an array";
        case Type::table:
            return v.origin == Origin::inline_table ? "an inline table" : "a table";
    }
    return "a value";
}

Document parse(std::string_view text, std::string_view file) {
    return Parser(text, file).run();
}

}  // namespace sealsock::config::toml
