/* fuzz.h: what the fuzz targets share. Each tests/fuzz/fuzz_<name>.c defines
 * LLVMFuzzerTestOneInput for one reader or parser; built with clang -fsanitize=fuzzer (make fuzz)
 * it is a libFuzzer target, and linked with replay.c (make test) it reruns the kept inputs of
 * tests/fuzz/regress/<name>/ and the generated seeds. Readers that take a path get the input
 * written to a file of this process's own (or, for formats of several files, a folder). */
#ifndef KNOB_FUZZ_H
#define KNOB_FUZZ_H

#include "knob.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fuzz_dir_path[512];

/* removes the folder's files, one level of sub-folders included, and the folder */
static inline void fuzz_rm(const char *dir, int depth)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char p[1024];
            if (snprintf(p, sizeof p, "%s/%.200s", dir, e->d_name) >= (int)sizeof p)
                continue;
            if (unlink(p) != 0 && depth > 0)
                fuzz_rm(p, depth - 1);
        }
        closedir(d);
    }
    rmdir(dir);
}

static inline void fuzz_cleanup(void) { fuzz_rm(fuzz_dir_path, 1); }

/* A folder of this process's own under $TMPDIR (or /tmp), made once, removed at exit. */
static inline const char *fuzz_dir(void)
{
    if (!fuzz_dir_path[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(fuzz_dir_path, sizeof fuzz_dir_path, "%s/knob-fuzz-%ld", t && t[0] ? t : "/tmp", (long)getpid());
        mkdir(fuzz_dir_path, 0700);
        atexit(fuzz_cleanup);
    }
    return fuzz_dir_path;
}

/* Writes data to fuzz_dir()/name and returns the path (a static buffer per call site's name). */
static inline const char *fuzz_file(const char *name, const uint8_t *data, size_t size)
{
    static char path[8][640];
    static int next;
    char *p = path[next++ % 8];
    snprintf(p, sizeof path[0], "%s/%s", fuzz_dir(), name);
    FILE *f = fopen(p, "wb");
    if (!f)
        abort();   /* the harness itself failed: not a finding */
    if (size && fwrite(data, 1, size, f) != size)
        abort();
    fclose(f);
    return p;
}

/* Splits data at the first occurrence of the 4-byte separator "\n--\n": a for the part before, b
 * for the part after (all of data and nothing when there is none). For readers of two files. */
static inline void fuzz_split(const uint8_t *data, size_t size, const uint8_t **a, size_t *na,
                              const uint8_t **b, size_t *nb)
{
    static const char sep[] = "\n--\n";
    *a = data, *na = size, *b = data + size, *nb = 0;
    for (size_t i = 0; i + 4 <= size; i++)
        if (memcmp(data + i, sep, 4) == 0) {
            *na = i;
            *b = data + i + 4;
            *nb = size - i - 4;
            return;
        }
}

/* A failed reader must still say something, in one line. */
static inline void fuzz_check_err(knob_status s, const knob_err *err)
{
    if (s == KNOB_OK)
        return;
    if (!err->msg[0] || strchr(err->msg, '\n'))
        abort();
}

#endif
