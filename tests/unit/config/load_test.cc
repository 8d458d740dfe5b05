// shim/config/load and file: where the files are, the precedence between them, merging, and
// reading files (missing, unreadable, too large) into diagnostics.
#include "config/load.h"

#include <doctest/doctest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "config/file.h"
#include "config/match.h"
#include "config/toml.h"

using namespace sealsock;
using namespace sealsock::config;

namespace {

struct TempDir {
    std::string path;
    TempDir() {
        char name[] = "/tmp/sealsock-config-test.XXXXXX";
        REQUIRE(mkdtemp(name) != nullptr);
        path = name;
    }
    ~TempDir() {
        const std::string cmd = "rm -rf '" + path + "'";
        if (std::system(cmd.c_str()) != 0) MESSAGE("could not remove " << path);
    }
    std::string write(const std::string& rel, const std::string& text) const {
        const std::string p = path + "/" + rel;
        const std::size_t slash = p.rfind('/');
        const std::string cmd = "mkdir -p '" + p.substr(0, slash) + "'";
        REQUIRE(std::system(cmd.c_str()) == 0);
        std::ofstream(p) << text;
        return p;
    }
};

const char* user_text = R"(
audit_log = "stderr"
[[outbound]]
name = "user db"
destinations = ["db.example.com"]
mode = "off"
)";

const char* system_text = R"(
enabled = true
audit_log = "syslog"
agent_socket = "/run/sealsock/agent.sock"
[[outbound]]
name = "system db"
destinations = ["*.example.com"]
[[inbound]]
name = "ssh"
ports = [22]
allow = ["any"]
)";

}  // namespace

TEST_SUITE("config.load") {
    TEST_CASE("locations: SEALSOCK_CONFIG alone, else the user file then the system file") {
        auto l = config_locations({"/tmp/mine.toml", "/x", "/home/a"});
        REQUIRE(l.size() == 1);
        CHECK(l[0].path == "/tmp/mine.toml");
        CHECK(l[0].required);

        l = config_locations({"", "/home/a/.cfg", "/home/a"});
        REQUIRE(l.size() == 2);
        CHECK(l[0].path == "/home/a/.cfg/sealsock/sealsock.toml");
        CHECK_FALSE(l[0].required);
        CHECK(l[1].path == "/etc/sealsock/sealsock.toml");

        l = config_locations({"", "relative/ignored", "/home/a"});
        CHECK(l[0].path == "/home/a/.config/sealsock/sealsock.toml");

        l = config_locations({"", "", ""});
        REQUIRE(l.size() == 1);
        CHECK(l[0].path == "/etc/sealsock/sealsock.toml");
    }

    TEST_CASE("merge: user rules first, top-level keys from the first file that sets them") {
        const std::vector<Source> sources = {{"user.toml", user_text}, {"sys.toml", system_text}};
        const LoadResult r = load(sources);
        INFO(format(r.errors));
        REQUIRE(r.ok());
        const Config& c = r.config;
        CHECK(c.files == std::vector<std::string>{"user.toml", "sys.toml"});
        CHECK(c.enabled);
        CHECK(c.audit_log == "stderr");                       // the user file's
        CHECK(c.agent_socket == "/run/sealsock/agent.sock");  // only the system file sets it
        REQUIRE(c.outbound.size() == 2);
        CHECK(c.outbound[0].name == "user db");
        CHECK(c.outbound[0].origin.file == "user.toml");
        CHECK(c.outbound[1].origin.file == "sys.toml");
        CHECK(c.inbound.size() == 1);
        // The user's "off" rule comes first and wins for its host.
        const std::array<std::uint8_t, 4> a{192, 0, 2, 1};
        CHECK(match_outbound(c, {"/bin/x", a, "db.example.com", 5432})->name == "user db");
        CHECK(match_outbound(c, {"/bin/x", a, "db2.example.com", 5432})->name == "system db");
    }

    TEST_CASE("the user file can turn sealsock off, and back on") {
        std::vector<Source> sources = {{"u", "enabled = false\n"}, {"s", "enabled = true\n"}};
        CHECK_FALSE(load(sources).config.enabled);
        sources = {{"u", "enabled = true\n"}, {"s", "enabled = false\n"}};
        CHECK(load(sources).config.enabled);
        sources = {{"u", "# nothing\n"}, {"s", "enabled = false\n"}};
        CHECK_FALSE(load(sources).config.enabled);
    }

    TEST_CASE("defaults with no file at all") {
        const LoadResult r = load({});
        CHECK(r.ok());
        CHECK(r.config.enabled);
        CHECK(r.config.audit_log == "syslog");
        CHECK(r.config.agent_socket.empty());
        CHECK(r.config.outbound.empty());
    }

    TEST_CASE("errors in any file fail the load and name their file") {
        const std::vector<Source> sources = {{"user.toml", "enabled = 1\n"},
                                             {"sys.toml", "\n[[outbound]]\nmode = \"x\"\n"}};
        const LoadResult r = load(sources);
        REQUIRE(r.errors.size() == 2);
        CHECK(format(r.errors[0]) ==
              "user.toml:1:11: `enabled` must be true or false, not an integer");
        CHECK(r.errors[1].file == "sys.toml");
        CHECK(r.errors[1].line == 3);
    }

    TEST_CASE("reading files: missing, present, not regular, too large") {
        TempDir dir;
        auto missing = read_config_file(dir.path + "/none.toml");
        REQUIRE(missing.ok());
        CHECK_FALSE(missing.value().has_value());
        const std::string p = dir.write("a.toml", "enabled = true\n");
        auto present = read_config_file(p);
        REQUIRE(present.ok());
        CHECK(*present.value() == "enabled = true\n");
        CHECK(read_config_file(dir.path).error().message == "not a regular file");
        const std::string big = dir.write("big.toml", std::string(toml::max_input + 1, '#'));
        CHECK(read_config_file(big).error().message.find("larger than 1 MiB") != std::string::npos);
        if (geteuid() != 0) {
            REQUIRE(chmod(p.c_str(), 0) == 0);
            CHECK(read_config_file(p).error().message.find("cannot open") != std::string::npos);
        }
    }

    TEST_CASE("load_files: SEALSOCK_CONFIG must exist; user and system files may be missing") {
        TempDir dir;
        const std::string home = dir.path + "/home";
        LoadResult r = load_files({"", "", home});  // no user file; /etc may or may not exist
        if (access("/etc/sealsock/sealsock.toml", F_OK) != 0) {
            CHECK(r.ok());
            CHECK(r.config.outbound.empty());
        }

        r = load_files({(dir.path + "/absent.toml"), "", home});
        REQUIRE(r.errors.size() == 1);
        CHECK(r.errors[0].line == 0);
        CHECK(format(r.errors[0])
                  .find("absent.toml: SEALSOCK_CONFIG names this file, which does "
                        "not exist") != std::string::npos);

        const std::string env_file = dir.write("env.toml", "[[outbound]]\nname = \"env\"\n");
        dir.write("home/.config/sealsock/sealsock.toml", "[[outbound]]\nname = \"user\"\n");
        r = load_files({env_file, "", home});
        REQUIRE(r.ok());
        REQUIRE(r.config.outbound.size() == 1);
        CHECK(r.config.outbound[0].name == "env");  // SEALSOCK_CONFIG alone

        r = load_files({"", "", home});
        REQUIRE(r.ok());
        REQUIRE_FALSE(r.config.outbound.empty());
        CHECK(r.config.outbound[0].name == "user");
        CHECK(r.config.files[0] == home + "/.config/sealsock/sealsock.toml");

        dir.write("xdg/sealsock/sealsock.toml", "[[outbound]]\nname = \"xdg\"\nbad = 1\n");
        r = load_files({"", dir.path + "/xdg", home});
        REQUIRE_FALSE(r.ok());
        CHECK(format(r.errors[0]) ==
              dir.path +
                  "/xdg/sealsock/sealsock.toml:3:1: unknown key `bad` in an [[outbound]] "
                  "rule; a rule takes name, enabled, programs, destinations, ports, mode, "
                  "identity, suites, server_name, expect, via, rotate_bytes, rotate_seconds, "
                  "rotate_records");
    }
}
