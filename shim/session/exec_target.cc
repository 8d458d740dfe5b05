#include "session/exec_target.h"

#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "sys/real.h"

namespace sealsock {
namespace {

constexpr char kLibrary[] = "libsealsock.so";

// The basename of path [begin, end).
bool names_the_shim(const char* begin, const char* end) {
    const char* base = begin;
    for (const char* p = begin; p < end; ++p)
        if (*p == '/') base = p + 1;
    const std::size_t n = static_cast<std::size_t>(end - base);
    return n == sizeof kLibrary - 1 && std::memcmp(base, kLibrary, n) == 0;
}

bool preloads_shim(char* const envp[]) {
    constexpr char kVar[] = "LD_PRELOAD=";
    for (char* const* e = envp; e != nullptr && *e != nullptr; ++e) {
        if (std::strncmp(*e, kVar, sizeof kVar - 1) != 0) continue;
        const char* p = *e + sizeof kVar - 1;
        while (*p != '\0') {  // entries are separated by ':' or spaces (ld.so(8))
            const char* end = p;
            while (*end != '\0' && *end != ':' && *end != ' ')
                ++end;
            if (end > p && names_the_shim(p, end)) return true;
            p = *end == '\0' ? end : end + 1;
        }
    }
    return false;
}

bool read_at(int fd, void* buf, std::size_t n, off_t at) {
    return pread(fd, buf, n, at) == static_cast<ssize_t>(n);
}

// Whether the ELF file has a section named `.go.buildinfo` (every Go binary since Go 1.13).
bool is_go(int fd, const Elf64_Ehdr& eh) {
    if (eh.e_shoff == 0 || eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shstrndx >= eh.e_shnum)
        return false;
    Elf64_Shdr names{};
    if (!read_at(fd, &names, sizeof names,
                 static_cast<off_t>(eh.e_shoff + eh.e_shstrndx * sizeof(Elf64_Shdr))))
        return false;
    constexpr char kGo[] = ".go.buildinfo";
    for (unsigned i = 0; i < eh.e_shnum && i < 4096; ++i) {
        Elf64_Shdr sh{};
        if (!read_at(fd, &sh, sizeof sh, static_cast<off_t>(eh.e_shoff + i * sizeof sh))) break;
        char name[sizeof kGo] = {};
        if (sh.sh_name < names.sh_size &&
            read_at(fd, name, sizeof name, static_cast<off_t>(names.sh_offset + sh.sh_name)) &&
            std::memcmp(name, kGo, sizeof kGo) == 0)
            return true;
    }
    return false;
}

const char* judge_elf(int fd) {
    Elf64_Ehdr eh{};
    if (!read_at(fd, &eh, sizeof eh, 0) || std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0)
        return "it is not an ELF file the shim can inspect";
    if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_phentsize != sizeof(Elf64_Phdr))
        return "it is not a 64-bit ELF file the shim can inspect";
    bool interp = false;
    for (unsigned i = 0; i < eh.e_phnum && i < 4096; ++i) {
        Elf64_Phdr ph{};
        if (!read_at(fd, &ph, sizeof ph, static_cast<off_t>(eh.e_phoff + i * sizeof ph)))
            return "its program headers cannot be read";
        if (ph.p_type == PT_INTERP) interp = true;
    }
    if (!interp) return "it is statically linked (nothing can be preloaded into it)";
    if (is_go(fd, eh)) return "it is a Go program (its runtime bypasses the shim)";
    return nullptr;
}

const char* judge(int fd, int depth);

// "#!interpreter": judge the interpreter instead.
const char* judge_script(int fd, int depth) {
    char line[PATH_MAX + 3] = {};
    const ssize_t n = pread(fd, line, sizeof line - 1, 0);
    if (n < 3 || depth > 2) return "its script interpreter cannot be inspected";
    char* p = line + 2;
    while (*p == ' ' || *p == '\t')
        ++p;
    char* end = p;
    while (*end != '\0' && *end != ' ' && *end != '\t' && *end != '\n')
        ++end;
    *end = '\0';
    const int interp = open(p, O_RDONLY | O_CLOEXEC);
    if (interp < 0) return "its script interpreter cannot be inspected";
    const char* why = judge(interp, depth + 1);
    (void)sys::close(interp);
    return why;
}

const char* judge(int fd, int depth) {
    struct stat st {};
    if (fstat(fd, &st) != 0) return "it cannot be inspected";
    if ((st.st_mode & (S_ISUID | S_ISGID)) != 0)
        return "it is set-user-ID or set-group-ID (the loader ignores the preload)";
    char magic[2] = {};
    if (read_at(fd, magic, 2, 0) && magic[0] == '#' && magic[1] == '!')
        return judge_script(fd, depth);
    return judge_elf(fd);
}

// PATH lookup as execvp does it, into `out`. False when nothing executable is found.
bool search(const char* file, char* const envp[], char (&out)[PATH_MAX]) {
    const char* path = "/usr/local/bin:/usr/bin:/bin";
    for (char* const* e = envp; e != nullptr && *e != nullptr; ++e)
        if (std::strncmp(*e, "PATH=", 5) == 0) path = *e + 5;
    const std::size_t flen = std::strlen(file);
    for (const char* p = path;;) {
        const char* end = std::strchr(p, ':');
        const std::size_t dlen =
            end == nullptr ? std::strlen(p) : static_cast<std::size_t>(end - p);
        if (dlen + flen + 2 <= sizeof out) {
            std::memcpy(out, dlen == 0 ? "." : p, dlen == 0 ? 1 : dlen);
            const std::size_t d = dlen == 0 ? 1 : dlen;
            out[d] = '/';
            std::memcpy(out + d + 1, file, flen + 1);
            if (access(out, X_OK) == 0) return true;
        }
        if (end == nullptr) return false;
        p = end + 1;
    }
}

}  // namespace

const char* file_cannot_carry_shim(int fd) noexcept {
    return judge(fd, 0);
}

const char* shim_missing(const ExecTarget& target, char* const envp[]) noexcept {
    if (!preloads_shim(envp)) return "its environment does not preload libsealsock.so";
    int fd = -1;
    if (target.file != nullptr) {
        char found[PATH_MAX];
        const char* file = target.file;
        if (target.search_path && std::strchr(file, '/') == nullptr) {
            if (!search(file, envp, found)) return "it cannot be found in PATH";
            file = found;
        }
        const int dir = target.fd >= 0 ? target.fd : AT_FDCWD;
        fd = openat(dir, file, O_RDONLY | O_CLOEXEC);
    } else if (target.fd >= 0) {
        return file_cannot_carry_shim(target.fd);
    }
    if (fd < 0) return "it cannot be read to check that it can carry the shim";
    const char* why = judge(fd, 0);
    (void)sys::close(fd);
    return why;
}

namespace {

// glibc's file action record (posix/spawn_int.h, glibc 2.36): a tag, then a union whose dup2
// member is {fd, newfd}; 32 bytes each, in posix_spawn_file_actions_t::__actions.
struct SpawnAction {
    int tag;
    int pad;
    int fd;
    int newfd;
    unsigned char rest[16];
};
static_assert(sizeof(SpawnAction) == 32);
constexpr int kDup2Tag = 1;

// Whether the layout above is this C library's: one dup2 action must read back as written.
bool layout_known() noexcept {
    static const bool known = [] {
        posix_spawn_file_actions_t fa;
        if (posix_spawn_file_actions_init(&fa) != 0) return false;
        bool ok = posix_spawn_file_actions_adddup2(&fa, 7, 9) == 0 && fa.__used == 1 &&
                  fa.__actions != nullptr;
        if (ok) {
            SpawnAction a{};
            std::memcpy(&a, fa.__actions, sizeof a);
            ok = a.tag == kDup2Tag && a.fd == 7 && a.newfd == 9;
        }
        posix_spawn_file_actions_destroy(&fa);
        return ok;
    }();
    return known;
}

}  // namespace

int spawn_dup2_sources(const posix_spawn_file_actions_t* actions, int* out, int max) noexcept {
    if (actions == nullptr || actions->__used <= 0) return 0;
    if (!layout_known() || actions->__actions == nullptr) return -1;
    int n = 0;
    for (int i = 0; i < actions->__used; ++i) {
        SpawnAction a{};
        std::memcpy(&a,
                    reinterpret_cast<const unsigned char*>(actions->__actions) +
                        static_cast<std::size_t>(i) * sizeof a,
                    sizeof a);
        if (a.tag != kDup2Tag) continue;
        if (n < max) out[n] = a.fd;
        ++n;
    }
    return n;
}

}  // namespace sealsock
