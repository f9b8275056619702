/* output.c: printing helpers shared by the commands, and the checks that an output path can be
 * written, made before a command does any work. */
#include "cli.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

/* A JSON string literal: quotes, backslashes and control characters escaped; UTF-8 passes through. */
void cli_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        switch (c) {
        case '"':  fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        case '\b': fputs("\\b", f); break;
        case '\f': fputs("\\f", f); break;
        default:
            if (c < 0x20)
                fprintf(f, "\\u%04x", c);
            else
                fputc(c, f);
        }
    }
    fputc('"', f);
}

/* "PATH: cause (--out)", or "PATH: cause" for a positional argument. */
static knob_status out_fail(const char *flag, const char *path, const char *why, knob_err *err)
{
    if (flag)
        return knob_fail(err, KNOB_ERR_IO, "%.256s: %s (%s)", path, why, flag);
    return knob_fail(err, KNOB_ERR_IO, "%.256s: %s", path, why);
}

knob_status cli_check_out_dir(const char *dir, const char *flag, knob_err *err)
{
    struct stat st;
    if (!dir || !dir[0])
        return knob_fail(err, KNOB_ERR_USAGE, "%s: directory name is empty", flag ? flag : "output");
    if (stat(dir, &st) == 0)
        return S_ISDIR(st.st_mode) ? KNOB_OK : out_fail(flag, dir, "exists and is not a directory", err);
    if (errno == ENOENT)
        return KNOB_OK;   /* created later; a missing parent is created with it */
    return out_fail(flag, dir, errno == ENOTDIR ? "a part of the path is a file, not a directory" : strerror(errno), err);
}

knob_status cli_check_out_file(const char *path, const char *flag, knob_err *err)
{
    struct stat st;
    if (!path || !path[0])
        return knob_fail(err, KNOB_ERR_USAGE, "%s: the file name is empty", flag ? flag : "output");
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return out_fail(flag, path, "is a directory; expected a file name", err);
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash)
        return KNOB_OK;
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    if (!dir[0])
        return KNOB_OK;   /* "/name" */
    if (stat(dir, &st) != 0)
        return out_fail(flag, path, errno == ENOTDIR ? "a part of the path is a file, not a directory"
                                                     : "its directory does not exist", err);
    if (!S_ISDIR(st.st_mode))
        return out_fail(flag, path, "a part of the path is a file, not a directory", err);
    return KNOB_OK;
}
