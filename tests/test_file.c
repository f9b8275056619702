/* test_file.c: atomic writes that cannot be hijacked or torn, and whole-file reads that refuse
 * what is not a regular file. Symlinks are planted at every temporary name the writer could pick
 * first, and at the output itself; their targets must come through untouched. */
#include "test.h"

#include <errno.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void path_in_tmp(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", test_tmpdir(), name);
}

static int put(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    int ok = fputs(text, f) >= 0;
    return fclose(f) == 0 && ok;
}

/* the file's bytes as a string (static buffer), or "" */
static const char *slurp(const char *path)
{
    static char buf[256];
    buf[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (!f)
        return buf;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static knob_status write_text(const char *path, const char *text, knob_err *err)
{
    knob_atomic a;
    knob_status s = knob_atomic_open(&a, path, err);
    if (s)
        return s;
    fputs(text, a.f);
    return knob_atomic_commit(&a, err);
}

TEST(atomic_write_skips_planted_symlinks)
{
    char out[1024], victim[1024], tmp[1300];
    path_in_tmp(out, sizeof out, "atomic-out.txt");
    path_in_tmp(victim, sizeof victim, "atomic-victim.txt");
    CHECK(put(victim, "precious"));
    /* symlinks at the first 10 names the writer tries, all pointing at the victim */
    for (int n = 0; n < 10; n++) {
        knob_atomic_tmp_name(tmp, sizeof tmp, out, (long)getpid(), n);
        unlink(tmp);
        CHECK(symlink(victim, tmp) == 0);
    }
    knob_err err = {0};
    CHECK_OK(write_text(out, "new contents", &err));
    CHECK(strcmp(slurp(victim), "precious") == 0);
    CHECK(strcmp(slurp(out), "new contents") == 0);
    struct stat st;
    CHECK(lstat(out, &st) == 0 && S_ISREG(st.st_mode));
    for (int n = 0; n < 10; n++) {   /* the planted links are left as they were */
        knob_atomic_tmp_name(tmp, sizeof tmp, out, (long)getpid(), n);
        CHECK(lstat(tmp, &st) == 0 && S_ISLNK(st.st_mode));
        unlink(tmp);
    }
}

TEST(atomic_write_replaces_a_symlink_at_the_output)
{
    char out[1024], victim[1024];
    path_in_tmp(out, sizeof out, "atomic-link-out.txt");
    path_in_tmp(victim, sizeof victim, "atomic-link-victim.txt");
    CHECK(put(victim, "keep me"));
    unlink(out);
    CHECK(symlink(victim, out) == 0);
    knob_err err = {0};
    CHECK_OK(write_text(out, "written", &err));
    struct stat st;
    CHECK(lstat(out, &st) == 0 && S_ISREG(st.st_mode));   /* the link itself was replaced */
    CHECK(strcmp(slurp(out), "written") == 0);
    CHECK(strcmp(slurp(victim), "keep me") == 0);
}

TEST(atomic_write_uses_the_umask_and_gives_up_when_every_name_is_taken)
{
    char out[1024], tmp[1300];
    path_in_tmp(out, sizeof out, "atomic-mode.txt");
    mode_t old = umask(027);
    knob_err err = {0};
    CHECK_OK(write_text(out, "x", &err));
    umask(old);
    struct stat st;
    CHECK(stat(out, &st) == 0 && (st.st_mode & 0777) == 0640);
    /* all candidate names occupied: one line, nothing written, the old file intact */
    for (int n = 0; n < 100; n++) {
        knob_atomic_tmp_name(tmp, sizeof tmp, out, (long)getpid(), n);
        CHECK(put(tmp, "squatter"));
    }
    CHECK_FAILS_WITH(write_text(out, "y", &err), KNOB_ERR_IO, "every candidate name is taken");
    CHECK(strcmp(slurp(out), "x") == 0);
    for (int n = 0; n < 100; n++) {
        knob_atomic_tmp_name(tmp, sizeof tmp, out, (long)getpid(), n);
        CHECK(strcmp(slurp(tmp), "squatter") == 0);
        unlink(tmp);
    }
}

TEST(atomic_abort_leaves_the_old_file_and_no_temp)
{
    char out[1024], tmp[sizeof ((knob_atomic *)0)->tmp];
    path_in_tmp(out, sizeof out, "atomic-abort.txt");
    CHECK(put(out, "old"));
    knob_atomic a;
    knob_err err = {0};
    CHECK_OK(knob_atomic_open(&a, out, &err));
    snprintf(tmp, sizeof tmp, "%s", a.tmp);
    fputs("half", a.f);
    knob_atomic_abort(&a);
    CHECK(strcmp(slurp(out), "old") == 0);
    CHECK(access(tmp, F_OK) != 0 && errno == ENOENT);
}

TEST(read_file_refuses_what_is_not_a_regular_file)
{
    char fifo[1024];
    path_in_tmp(fifo, sizeof fifo, "read-fifo");
    unlink(fifo);
    CHECK(mkfifo(fifo, 0600) == 0);
    unsigned char *buf = NULL;
    size_t n = 0;
    knob_err err = {0};
    double t0 = knob_now();
    /* a FIFO with no writer: an answer at once, not a wait */
    CHECK_FAILS_WITH(knob_read_file(fifo, &buf, &n, &err), KNOB_ERR_IO, "not a regular file");
    CHECK(knob_now() - t0 < 1.0);
    CHECK(buf == NULL);
    CHECK_FAILS_WITH(knob_read_file(test_tmpdir(), &buf, &n, &err), KNOB_ERR_IO, "is a directory");
    CHECK_FAILS_WITH(knob_read_file("/dev/zero", &buf, &n, &err), KNOB_ERR_IO, "not a regular file");
    CHECK(strchr(err.msg, '\n') == NULL);
    unlink(fifo);
}

TEST(atomic_commit_sweeps_temp_files_of_dead_processes)
{
    char out[1024], victim[1024], dead[1300], dead_link[1300], live[1300], other[1300];
    path_in_tmp(out, sizeof out, "atomic-sweep.txt");
    path_in_tmp(victim, sizeof victim, "atomic-sweep-victim.txt");
    CHECK(put(victim, "untouched"));
    pid_t child = fork();
    if (child == 0)
        _exit(0);
    CHECK(child > 0);
    int status;
    CHECK(waitpid(child, &status, 0) == child);   /* child's pid now names no process */
    knob_atomic_tmp_name(dead, sizeof dead, out, (long)child, 0);
    knob_atomic_tmp_name(dead_link, sizeof dead_link, out, (long)child, 1);
    knob_atomic_tmp_name(live, sizeof live, out, (long)getppid(), 0);   /* a process that exists */
    knob_atomic_tmp_name(other, sizeof other, out, (long)child, 0);
    char *dot = strstr(other, ".tmp.");
    memcpy(dot + 5, "otherhost", 9);   /* another host's (or PID namespace's) temp file: never judged */
    CHECK(put(dead, "half a file"));
    unlink(dead_link);
    CHECK(symlink(victim, dead_link) == 0);
    CHECK(put(live, "being written"));
    CHECK(put(other, "someone else's"));
    knob_err err = {0};
    CHECK_OK(write_text(out, "done", &err));
    CHECK(access(dead, F_OK) != 0);
    struct stat st;
    CHECK(lstat(dead_link, &st) != 0);                      /* the link itself went */
    CHECK(strcmp(slurp(victim), "untouched") == 0);         /* not its target */
    CHECK(strcmp(slurp(live), "being written") == 0);
    CHECK(strcmp(slurp(other), "someone else's") == 0);
    unlink(live);
    unlink(other);
}

TEST(atomic_write_keeps_the_mode_of_the_file_it_replaces)
{
    char out[1024];
    path_in_tmp(out, sizeof out, "atomic-private.txt");
    CHECK(put(out, "secret"));
    CHECK(chmod(out, 0600) == 0);
    knob_err err = {0};
    CHECK_OK(write_text(out, "new secret", &err));
    struct stat st;
    CHECK(stat(out, &st) == 0 && (st.st_mode & 0777) == 0600);
    CHECK(strcmp(slurp(out), "new secret") == 0);
}
