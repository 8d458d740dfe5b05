// shim/config/toml: the TOML subset, positives and negatives, with exact error positions.
#include "config/toml.h"

#include <doctest/doctest.h>

#include <string>

using namespace sealsock::config;
using namespace sealsock::config::toml;

namespace {

Document ok(std::string_view text) {
    Document d = parse(text, "t.toml");
    INFO(format(d.errors));
    REQUIRE(d.ok());
    return d;
}

// The one (first) error for `text`, which must not parse.
Diagnostic error_of(std::string_view text) {
    Document d = parse(text, "t.toml");
    REQUIRE_FALSE(d.ok());
    return d.errors.front();
}

void check_error(std::string_view text, std::uint32_t line, std::uint32_t column,
                 std::string_view words) {
    const Diagnostic e = error_of(text);
    INFO(format(e));
    CHECK(e.file == "t.toml");
    CHECK(e.line == line);
    CHECK(e.column == column);
    CHECK(e.message.find(words) != std::string::npos);
}

const Value& at(const Value& table, std::string_view key) {
    const Member* m = table.find(key);
    REQUIRE_MESSAGE(m != nullptr, key);
    return m->value;
}

}  // namespace

TEST_SUITE("config.toml") {
    TEST_CASE("scalars, comments and blank lines") {
        const Document d =
            ok("# a comment\n"
               "\n"
               "a = \"text\"   # trailing comment\n"
               "b = 'C:\\raw\\path'\n"
               "c = 42\n"
               "d = -1_000_000\n"
               "e = true\n"
               "f = false\n"
               "\"quoted key\" = 1\n"
               "'literal key' = 2\n"
               "bare-key_9 = +7\n"
               "hex = 0xff_FF\n"
               "oct = 0o17\n"
               "bin = 0b101\n"
               "zero = 0\n"
               "min = -9223372036854775808\n"
               "max = 9223372036854775807\n");
        const Value& r = d.root;
        CHECK(at(r, "a").string == "text");
        CHECK(at(r, "b").string == "C:\\raw\\path");
        CHECK(at(r, "c").integer == 42);
        CHECK(at(r, "d").integer == -1000000);
        CHECK(at(r, "e").boolean);
        CHECK_FALSE(at(r, "f").boolean);
        CHECK(at(r, "quoted key").integer == 1);
        CHECK(at(r, "literal key").integer == 2);
        CHECK(at(r, "bare-key_9").integer == 7);
        CHECK(at(r, "hex").integer == 0xffff);
        CHECK(at(r, "oct").integer == 15);
        CHECK(at(r, "bin").integer == 5);
        CHECK(at(r, "zero").integer == 0);
        CHECK(at(r, "min").integer == INT64_MIN);
        CHECK(at(r, "max").integer == INT64_MAX);
        CHECK(r.members.front().position.line == 3);
        CHECK(at(r, "c").position.line == 5);
        CHECK(at(r, "c").position.column == 5);
    }

    TEST_CASE("escapes in basic strings") {
        const Document d = ok(R"(s = "tab\there \"q\" back\\slash \u00e9 \U0001F600 \b\f\r\n")");
        CHECK(at(d.root, "s").string ==
              "tab\there \"q\" back\\slash \xC3\xA9 \xF0\x9F\x98\x80 \b\f\r\n");
    }

    TEST_CASE("CRLF line endings, a byte-order mark and a file without a final newline") {
        const Document d =
            ok("\xEF\xBB\xBF"
               "a = 1\r\n[t]\r\nb = 2");
        CHECK(at(d.root, "a").integer == 1);
        CHECK(at(at(d.root, "t"), "b").integer == 2);
        CHECK(at(at(d.root, "t"), "b").position.line == 3);
    }

    TEST_CASE("tables, arrays of tables and dotted keys") {
        const Document d =
            ok("top = 1\n"
               "[server]\n"
               "port = 1\n"
               "tls.suite = \"x\"\n"
               "tls.level.n = 2\n"
               "[server.extra]\n"
               "k = 3\n"
               "[[rule]]\n"
               "name = \"a\"\n"
               "[[rule]]\n"
               "name = \"b\"\n"
               "[rule.sub]\n"
               "x = 1\n"
               "[a.b.c]\n"
               "[a]\n"
               "z = 1\n");
        const Value& server = at(d.root, "server");
        CHECK(server.origin == Origin::header);
        CHECK(at(at(server, "tls"), "suite").string == "x");
        CHECK(at(at(at(server, "tls"), "level"), "n").integer == 2);
        CHECK(at(at(server, "extra"), "k").integer == 3);
        const Value& rule = at(d.root, "rule");
        REQUIRE(rule.type == Type::array);
        REQUIRE(rule.items.size() == 2);
        CHECK(rule.items[0].position.line == 8);
        CHECK(at(rule.items[1], "name").string == "b");
        CHECK(at(at(rule.items[1], "sub"), "x").integer == 1);
        CHECK(at(at(at(d.root, "a"), "b"), "c").type == Type::table);
        CHECK(at(at(d.root, "a"), "z").integer == 1);
    }

    TEST_CASE("arrays: several lines, comments, trailing comma, nesting, mixed types") {
        const Document d =
            ok("a = [\n"
               "  \"x\",   # one\n"
               "  'y',\n"
               "\n"
               "  3,\n"
               "]\n"
               "b = []\n"
               "c = [[1, 2], [\"z\"]]\n"
               "d = [ { n = 1 }, {} ]\n");
        const Value& a = at(d.root, "a");
        REQUIRE(a.items.size() == 3);
        CHECK(a.items[1].string == "y");
        CHECK(a.items[2].integer == 3);
        CHECK(a.items[2].position.line == 5);
        CHECK(at(d.root, "b").items.empty());
        CHECK(at(d.root, "c").items[1].items[0].string == "z");
        CHECK(at(at(d.root, "d").items[0], "n").integer == 1);
    }

    TEST_CASE("inline tables") {
        const Document d = ok("t = { a = 1, b.c = \"x\", 'q' = true }\n");
        const Value& t = at(d.root, "t");
        CHECK(t.origin == Origin::inline_table);
        CHECK(at(t, "a").integer == 1);
        CHECK(at(at(t, "b"), "c").string == "x");
        check_error("t = { a = 1 }\nt.b = 2\n", 2, 1, "already an inline table");
        check_error("t = { a = 1 }\n[t.x]\n", 2, 2, "already an inline table");
        check_error("t = { a = 1, }\n", 1, 14, "trailing comma");
        check_error("t = { a = 1\n", 1, 5, "not closed on its line");
        check_error("t = { a = 1, a = 2 }\n", 1, 14, "duplicate key `a`");
    }

    TEST_CASE("duplicate keys and redefined tables are errors, and parsing goes on") {
        const Document d = parse(
            "a = 1\n"
            "a = 2\n"
            "[t]\n"
            "x = 1\n"
            "[t]\n"
            "y = 1\n"
            "[u]\n"
            "z = 1\n",
            "t.toml");
        REQUIRE(d.errors.size() == 2);
        CHECK(d.errors[0].line == 2);
        CHECK(d.errors[0].message.find("duplicate key `a`: it is already set on line 1") !=
              std::string::npos);
        CHECK(d.errors[1].line == 5);
        CHECK(d.errors[1].message.find("table [t] is defined twice (first on line 3)") !=
              std::string::npos);
        CHECK(at(at(d.root, "u"), "z").integer == 1);  // parsing went on
    }

    TEST_CASE("structural errors") {
        check_error("a.b = 1\na.b = 2\n", 2, 3, "duplicate key `a.b`");
        check_error("a = 1\na.b = 2\n", 2, 1, "`a` is already an integer");
        check_error("a = 1\n[a]\n", 2, 1, "already an integer");
        check_error("a = [1]\n[[a]]\n", 2, 1, "already an array");
        check_error("[[a]]\n[a]\n", 2, 1, "array of tables");
        check_error("[a]\n[[a]]\n", 2, 1, "already a table");
        check_error("[a]\nb.c = 1\n[a.b]\n", 3, 1, "already a table");
        check_error("[a.b]\n[a]\nb.c = 1\n", 3, 1, "dotted key cannot add");
        check_error("[a]\nx = 1\n[a]\n", 3, 1, "defined twice");
        check_error("x = 1\n[x.y]\n", 2, 2, "`x` is already an integer");
    }

    TEST_CASE("syntax errors name the line and column and stop the parse") {
        check_error("a = \"open\n", 1, 5, "not closed");
        check_error("a = 'open\n", 1, 5, "not closed");
        check_error("ok = 1\nb = \"bad \\q escape\"\n", 2, 10, "invalid escape");
        check_error("a = \"\\u12\"\n", 1, 6, "4 hexadecimal digits");
        check_error("a = \"\\uD800\"\n", 1, 6, "not a Unicode scalar value");
        check_error("a = \"\\U00110000\"\n", 1, 6, "not a Unicode scalar value");
        check_error("a = \"x\x01y\"\n", 1, 7, "control character U+0001");
        check_error("a = 'x\x7fy'\n", 1, 7, "control character U+007F");
        check_error("# note \x02\n", 1, 8, "in a comment");
        check_error("a = \"\"\"multi\"\"\"\n", 1, 5, "multi-line strings are not supported");
        check_error("a = '''multi'''\n", 1, 5, "multi-line strings are not supported");
        check_error("a = 1.5\n", 1, 5, "floating-point");
        check_error("a = 1e3\n", 1, 5, "floating-point");
        check_error("a = inf\n", 1, 5, "floating-point");
        check_error("a = 1979-05-27\n", 1, 5, "dates and times");
        check_error("a = 007\n", 1, 5, "leading zeros");
        check_error("a = 1__0\n", 1, 5, "underscore");
        check_error("a = _1\n", 1, 5, "not a value");
        check_error("a = 1_\n", 1, 5, "underscore");
        check_error("a = 9223372036854775808\n", 1, 5, "64-bit");
        check_error("a = -9223372036854775809\n", 1, 5, "64-bit");
        check_error("a = 0xZ\n", 1, 5, "not a digit in base 16");
        check_error("a = -0x1\n", 1, 5, "no sign");
        check_error("a = yes\n", 1, 5, "strings need quotes");
        check_error("a =\n", 1, 4, "expected a value");
        check_error("a 1\n", 1, 3, "expected = after the key `a`");
        check_error("= 1\n", 1, 1, "expected a key");
        check_error("a = 1 b = 2\n", 1, 7, "on a line of its own");
        check_error("[t\n", 1, 3, "expected ] to close");
        check_error("[[t]\n", 1, 5, "expected ]] to close");
        check_error("[t] x = 1\n", 1, 5, "on a line of its own");
        check_error("a = [1, 2\n", 1, 5, "array is not closed");
        check_error("a = [1 2]\n", 1, 8, "expected , or ]");
        check_error("a = [1,,2]\n", 1, 8, "expected a value");
        check_error("a = 1\rb = 2\n", 1, 6, "carriage return");
        check_error("a = 1\n\n  x = \"\xff\"\n", 3, 8, "not valid UTF-8");
        check_error("a = \"\xC0\x80\"\n", 1, 6, "not valid UTF-8");      // overlong
        check_error("a = \"\xED\xA0\x80\"\n", 1, 6, "not valid UTF-8");  // surrogate
        check_error("\xc3\xa9 = 1\n", 1, 1, "expected a key");
        check_error("k\xc3\xa9y = 1\n", 1, 2, "expected = after the key `k`");
        // Columns count characters: "é" is one column.
        check_error("a = '\xc3\xa9' b\n", 1, 9, "on a line of its own");
    }

    TEST_CASE("a syntax error stops the parse; structural errors before it are kept") {
        const Document d = parse("a = 1\na = 2\nb = @\nc = nonsense\n", "t.toml");
        REQUIRE(d.errors.size() == 2);
        CHECK(d.errors[0].line == 2);
        CHECK(d.errors[1].line == 3);
    }

    TEST_CASE("limits: size, depth, number of values") {
        std::string big(max_input + 1, '#');
        const Diagnostic e = error_of(big);
        CHECK(e.line == 0);
        CHECK(e.message.find("larger than 1 MiB") != std::string::npos);

        std::string deep = "a = " + std::string(40, '[') + std::string(40, ']') + "\n";
        check_error(deep, 1, 37, "nested more than 32");
        std::string deep_inline = "a = ";
        for (int i = 0; i < 40; ++i)
            deep_inline += "{b=";
        deep_inline += "1" + std::string(40, '}') + "\n";
        CHECK(error_of(deep_inline).message.find("32") != std::string::npos);
        std::string long_key = "a";
        for (int i = 0; i < 40; ++i)
            long_key += ".a";
        CHECK(error_of(long_key + " = 1\n").message.find("32 dotted parts") != std::string::npos);
        CHECK(error_of("[" + long_key + "]\n").message.find("32 dotted parts") !=
              std::string::npos);

        std::string many = "a = [";
        for (std::size_t i = 0; i < max_values + 1; ++i)
            many += "1,";
        many += "]\n";
        REQUIRE(many.size() < max_input);
        CHECK(error_of(many).message.find("more than 100000 values") != std::string::npos);
    }

    TEST_CASE("at most max_errors errors are reported") {
        std::string text;
        for (std::size_t i = 0; i < 2 * max_errors; ++i)
            text += "a = 1\n";
        const Document d = parse(text, "t.toml");
        CHECK(d.errors.size() == max_errors + 1);
        CHECK(d.errors.back().message.find("too many errors") != std::string::npos);
    }

    TEST_CASE("empty and comment-only documents are empty tables") {
        CHECK(ok("").root.members.empty());
        CHECK(ok("# nothing\n\n   \t\n").root.members.empty());
    }
}
