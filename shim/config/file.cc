#include "config/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include "config/toml.h"

namespace sealsock::config {
namespace {

struct Fd {
    int fd = -1;
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
};

std::string_view env(const char* name) {
    const char* v = std::getenv(name);
    return v == nullptr ? std::string_view() : std::string_view(v);
}

}  // namespace

Result<std::optional<std::string>> read_config_file(const std::string& path) {
    Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY)};
    if (f.fd < 0) {
        if (errno == ENOENT) return std::optional<std::string>();
        return make_error(std::string("cannot open: ") + std::strerror(errno));
    }
    struct stat st {};
    if (::fstat(f.fd, &st) != 0)
        return make_error(std::string("cannot stat: ") + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) return make_error("not a regular file");
    std::string text;
    char buf[16384];
    for (;;) {
        const ssize_t n = ::read(f.fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return make_error(std::string("cannot read: ") + std::strerror(errno));
        if (n == 0) break;
        text.append(buf, static_cast<std::size_t>(n));
        if (text.size() > toml::max_input)
            return make_error(
                "larger than 1 MiB, which no sealsock config needs; check that "
                "this is the right file");
    }
    return std::optional<std::string>(std::move(text));
}

LoadResult load_files(const Environment& environment) {
    std::vector<Source> sources;
    Diagnostics io_errors;
    for (const Location& where : config_locations(environment)) {
        auto text = read_config_file(where.path);
        if (!text) {
            io_errors.push_back({where.path, 0, 0, text.error().message});
        } else if (text.value()) {
            sources.push_back({where.path, std::move(*text.value())});
        } else if (where.required) {
            io_errors.push_back({where.path, 0, 0,
                                 "SEALSOCK_CONFIG names this file, which does not exist; create "
                                 "it or unset SEALSOCK_CONFIG"});
        }
    }
    LoadResult result = load(sources);
    result.errors.insert(result.errors.begin(), io_errors.begin(), io_errors.end());
    return result;
}

Environment process_environment() {
    return Environment{env("SEALSOCK_CONFIG"), env("XDG_CONFIG_HOME"), env("HOME")};
}

}  // namespace sealsock::config
