/* file.c: whole-file reads and atomic writes (an exclusively created temp file beside the target,
 * fsync, rename, fsync of the folder), so a crash or an error never leaves a half-written file
 * where a good one was, and a planted symlink never redirects a write. */
#include "knob_internal.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The temporary file is PATH.tmp.<tag>.<pid>.<n>, created with O_CREAT | O_EXCL | O_NOFOLLOW: a
 * file or a symlink that someone planted at that name is never opened, let alone written through;
 * the next n is tried instead. <tag> names this host and PID namespace (hostname and the pid
 * namespace's inode), so that the sweep below only ever judges temp files of processes it can see.
 * The mode is the replaced file's, or 0666 less the umask for a new file. */
#define ATOMIC_TRIES 100

/* "<host>-<pid namespace inode>", the host part cut to [A-Za-z0-9_] and 32 characters */
static void tmp_tag(char *buf, size_t size)
{
    char host[65] = "";
    if (gethostname(host, sizeof host - 1) != 0)
        host[0] = '\0';
    host[32] = '\0';
    for (char *c = host; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9')))
            *c = '_';
    char ns[64] = "";
    ssize_t n = readlink("/proc/self/ns/pid", ns, sizeof ns - 1);   /* "pid:[4026531836]" */
    ns[n > 0 ? n : 0] = '\0';
    unsigned long long ino = 0;
    const char *lb = strchr(ns, '[');
    if (lb)
        ino = strtoull(lb + 1, NULL, 10);
    snprintf(buf, size, "%s-%llu", host[0] ? host : "host", ino);
}

void knob_atomic_tmp_name(char *buf, size_t size, const char *path, long pid, int n)
{
    char tag[128];
    tmp_tag(tag, sizeof tag);
    snprintf(buf, size, "%s.tmp.%s.%ld.%d", path, tag, pid, n);
}

knob_status knob_atomic_open(knob_atomic *a, const char *path, knob_err *err)
{
    memset(a, 0, sizeof *a);
    if (!path[0])
        return knob_fail(err, KNOB_ERR_USAGE, "output file name is empty");
    if (strlen(path) + 128 >= sizeof a->tmp)
        return knob_fail(err, KNOB_ERR_USAGE, "%.128s...: path too long", path);
    snprintf(a->path, sizeof a->path, "%s", path);
    int fd = -1, e = 0;
    for (int n = 0; n < ATOMIC_TRIES && fd < 0; n++) {
        knob_atomic_tmp_name(a->tmp, sizeof a->tmp, path, (long)getpid(), n);
        fd = open(a->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
        e = errno;
        if (fd < 0 && e != EEXIST)
            break;
    }
    if (fd < 0)
        return knob_fail(err, KNOB_ERR_IO, "%s: cannot create temp file beside it: %s", path,
                         e == EEXIST ? "every candidate name is taken" : strerror(e));
    struct stat old;   /* replacing a file keeps its permissions (a private checkpoint stays private) */
    if (lstat(path, &old) == 0 && S_ISREG(old.st_mode))
        (void)fchmod(fd, old.st_mode & 0777);
    a->f = fdopen(fd, "wb");
    if (!a->f) {
        e = errno;
        close(fd);
        unlink(a->tmp);
        return knob_fail(err, KNOB_ERR_IO, "%s: cannot open the temporary file: %s", a->tmp, strerror(e));
    }
    return KNOB_OK;
}

/* fsync of the folder that holds path, so that the rename itself survives a power cut (what SQLite
 * does after creating or deleting a journal). Folders that cannot be opened or fsynced (some
 * filesystems refuse) are not an error: the data itself was already fsynced. */
/* The folder that holds path ("." for a bare name, "/" for a name in the root) into dir. */
static void parent_dir(const char *path, char *dir, size_t size)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, size, ".");
    else
        snprintf(dir, size, "%.*s", slash == path ? 1 : (int)(slash - path), path);
}

static void sync_parent(const char *path)
{
    char dir[4096];
    parent_dir(path, dir, sizeof dir);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/* Removes PATH.tmp.<tag>.<pid>.<n> files that a process killed mid-write left beside path: only names
 * of exactly that form with this host's and PID namespace's tag, only for processes that no longer
 * exist there (kill(pid, 0) says ESRCH), and with unlink, which removes a symlink itself, never its
 * target. Best effort: nothing here is an error. */
static void sweep_stale(const char *path)
{
    char dir[4096];
    parent_dir(path, dir, sizeof dir);
    const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
    char tag[128];
    tmp_tag(tag, sizeof tag);
    size_t nb = strlen(base), nt = strlen(tag);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *nm = e->d_name;
        if (strncmp(nm, base, nb) != 0 || strncmp(nm + nb, ".tmp.", 5) != 0 || strncmp(nm + nb + 5, tag, nt) != 0 ||
            nm[nb + 5 + nt] != '.')
            continue;   /* not ours, or written from another host or PID namespace */
        char *end;
        long pid = strtol(nm + nb + 6 + nt, &end, 10);
        if (pid <= 0 || *end != '.' || !end[1])
            continue;
        strtol(end + 1, &end, 10);
        if (*end != '\0' || (pid_t)pid == getpid())
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        char full[8192];
        if (snprintf(full, sizeof full, "%s/%s", dir, nm) < (int)sizeof full)
            unlink(full);
    }
    closedir(d);
}

knob_status knob_atomic_commit(knob_atomic *a, knob_err *err)
{
    if (!a->f)
        return knob_fail(err, KNOB_ERR_USAGE, "%s: atomic write not open", a->path);
    int bad = ferror(a->f) || fflush(a->f) != 0;
    int e = errno;
    if (!bad && fsync(fileno(a->f)) != 0) {
        bad = 1;
        e = errno;
    }
    if (fclose(a->f) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    a->f = NULL;
    if (bad) {
        unlink(a->tmp);
        return knob_fail(err, KNOB_ERR_IO, "%s: write failed: %s", a->path, strerror(e));
    }
    /* rename replaces a symlink at path by the new file; it never writes through it */
    if (rename(a->tmp, a->path) != 0) {
        e = errno;
        unlink(a->tmp);
        return knob_fail(err, KNOB_ERR_IO, "%s: cannot rename temp file into place: %s", a->path, strerror(e));
    }
    sync_parent(a->path);
    sweep_stale(a->path);
    return KNOB_OK;
}

void knob_atomic_abort(knob_atomic *a)
{
    if (a->f) {
        fclose(a->f);
        a->f = NULL;
        unlink(a->tmp);
    }
}

knob_status knob_open_regular(const char *path, int *fd_out, size_t *size, knob_err *err)
{
    *fd_out = -1;
    if (!path[0])
        return knob_fail(err, KNOB_ERR_IO, "'': the file name is empty");
    /* O_NONBLOCK: opening a FIFO with no writer would otherwise wait forever */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return knob_fail(err, KNOB_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    int ok = fstat(fd, &st) == 0;
    if (!ok || !S_ISREG(st.st_mode)) {
        int is_dir = ok && S_ISDIR(st.st_mode);
        close(fd);
        return knob_fail(err, KNOB_ERR_IO, "%s: %s", path, is_dir ? "is a directory, not a file" : "not a regular file");
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl != -1)
        (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    *fd_out = fd;
    if (size)
        *size = (size_t)st.st_size;
    return KNOB_OK;
}

knob_status knob_fopen_regular(const char *path, FILE **f, size_t *size, knob_err *err)
{
    *f = NULL;
    int fd;
    knob_status s = knob_open_regular(path, &fd, size, err);
    if (s)
        return s;
    if (!(*f = fdopen(fd, "rb"))) {
        int e = errno;
        close(fd);
        return knob_fail(err, KNOB_ERR_IO, "%s: cannot open: %s", path, strerror(e));
    }
    return KNOB_OK;
}

knob_status knob_read_file(const char *path, unsigned char **out, size_t *len, knob_err *err)
{
    *out = NULL;
    *len = 0;
    FILE *f;
    size_t n = 0;
    knob_status s = knob_fopen_regular(path, &f, &n, err);
    if (s)
        return s;
    unsigned char *buf = knob_malloc(n + 1);
    if (!buf) {
        fclose(f);
        return knob_fail(err, KNOB_ERR_NOMEM, "%s: cannot allocate %zu bytes to read it", path, n + 1);
    }
    size_t got = fread(buf, 1, n, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || got != n) {
        knob_free(buf);
        return knob_fail(err, KNOB_ERR_IO, "%s: read %zu of %zu bytes", path, got, n);
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return KNOB_OK;
}

knob_status knob_mkdirs(const char *dir, knob_err *err)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf)
        return knob_fail(err, KNOB_ERR_USAGE, "%.128s...: path too long", dir);
    if (!buf[0])   /* the loop below starts at buf[1] */
        return knob_fail(err, KNOB_ERR_USAGE, "directory name is empty");
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == 0) {
            char c = *p;
            *p = 0;
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return knob_fail(err, KNOB_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
            *p = c;
            if (!c)
                break;
        }
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return knob_fail(err, KNOB_ERR_IO, "%s: not a directory", dir);
    return KNOB_OK;
}

const char *knob_data_dir(char *buf, size_t n)
{
    const char *env = getenv("KNOB_DATA");
    if (env && env[0]) {
        snprintf(buf, n, "%s", env);
        return buf;
    }
    char exe[4096];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = '\0';
        /* strip the binary's name and the build folder: <repo>/<build>/knob -> <repo> */
        for (int k = 0; k < 2; k++) {
            char *slash = strrchr(exe, '/');
            if (!slash)
                break;
            *slash = '\0';
        }
        char cand[4096 + 8];
        snprintf(cand, sizeof cand, "%s/data", exe);
        struct stat st;
        if (exe[0] && stat(cand, &st) == 0 && S_ISDIR(st.st_mode)) {
            snprintf(buf, n, "%s", cand);
            return buf;
        }
    }
    snprintf(buf, n, "data");
    return buf;
}
