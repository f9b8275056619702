/* idx.c: the IDX format of the MNIST and Fashion-MNIST files.
 *
 * Layout: a 4-byte magic 0x00 0x00 TYPE N_DIMS, N_DIMS big-endian 32-bit sizes, then the payload
 * of prod(sizes) elements, row-major. Only TYPE 0x08 (unsigned byte) is read: it is the only type
 * the image and label files use. Files are read through zlib's gzread, which reads gzip and plain
 * files alike, in large chunks. The payload must be exactly prod(sizes) bytes: a short file and
 * trailing bytes are both errors, so a truncated download is caught here rather than as a model
 * that trains on zeros.
 */
#include "knob_internal.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define IDX_MAX_BYTES ((size_t)1 << 31)   /* refuse payloads over 2 GiB */
#define IDX_CHUNK     (1u << 20)

/* Reads up to n bytes; returns the count read (short at the end of the data, or where a gzip
 * stream is cut short), or -1 on a corrupt stream (message in *why). */
static long long gz_read_all(gzFile f, uint8_t *buf, size_t n, const char **why)
{
    size_t got = 0;
    while (got < n) {
        unsigned want = (unsigned)KNOB_MIN(n - got, (size_t)IDX_CHUNK);
        int r = gzread(f, buf + got, want);
        if (r < 0) {
            int code = Z_OK;
            *why = gzerror(f, &code);
            if (code == Z_BUF_ERROR)   /* "unexpected end of file": a truncation */
                break;
            return -1;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (long long)got;
}

knob_status knob_idx_read(const char *path, int *n_dims, int dims[4], uint8_t **data, knob_err *err)
{
    *data = NULL;
    *n_dims = 0;
    int fd;
    knob_status os = knob_open_regular(path, &fd, NULL, err);
    if (os)
        return os;
    gzFile f = gzdopen(fd, "rb");   /* gzclose closes fd */
    if (!f) {
        close(fd);
        return knob_fail(err, KNOB_ERR_IO, "%s: cannot open: out of memory", path);
    }
    gzbuffer(f, 1u << 17);
    const char *why = NULL;
    uint8_t hdr[4 + 4 * 4];
    knob_status st = KNOB_OK;
    long long got = gz_read_all(f, hdr, 4, &why);
    if (got < 0) {
        st = knob_fail(err, KNOB_ERR_FORMAT, "%s: %s", path, why);
        goto done;
    }
    if (got < 4) {
        st = knob_fail(err, KNOB_ERR_FORMAT, "%s: truncated: %lld of 4 bytes of magic number", path,
                       got);
        goto done;
    }
    if (hdr[0] != 0 || hdr[1] != 0) {
        st = knob_fail(err, KNOB_ERR_FORMAT,
                       "%s: not an IDX file (magic number %02x %02x %02x %02x, expected 00 00 08 0N)",
                       path, hdr[0], hdr[1], hdr[2], hdr[3]);
        goto done;
    }
    if (hdr[2] != 0x08) {
        st = knob_fail(err, KNOB_ERR_FORMAT,
                       "%s: IDX element type 0x%02x not supported (only 0x08, unsigned byte)", path, hdr[2]);
        goto done;
    }
    int nd = hdr[3];
    if (nd < 1 || nd > 4) {
        st = knob_fail(err, KNOB_ERR_FORMAT, "%s: IDX file has %d dimensions (expected 1 to 4)", path, nd);
        goto done;
    }
    got = gz_read_all(f, hdr + 4, (size_t)(4 * nd), &why);
    if (got < 0) {
        st = knob_fail(err, KNOB_ERR_FORMAT, "%s: %s", path, why);
        goto done;
    }
    if (got < 4 * nd) {
        st = knob_fail(err, KNOB_ERR_FORMAT, "%s: truncated: header needs %d bytes of sizes, found %lld",
                       path, 4 * nd, got);
        goto done;
    }
    size_t total = 1;
    for (int i = 0; i < nd; i++) {
        const uint8_t *b = hdr + 4 + 4 * i;
        uint32_t v = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
        if (v > (uint32_t)INT32_MAX) {
            st = knob_fail(err, KNOB_ERR_FORMAT, "%s: dimension %d is %u, too large", path, i, v);
            goto done;
        }
        dims[i] = (int)v;
        if (total && v && total > IDX_MAX_BYTES / v) {
            st = knob_fail(err, KNOB_ERR_FORMAT, "%s: data size exceeds %zu bytes", path, IDX_MAX_BYTES);
            goto done;
        }
        total *= v;
    }
    /* The header's sizes are a claim: the buffer grows with the data that really arrives (a gzip
     * file's size says nothing of what it inflates to), so a lying header costs at most twice the
     * real data, never IDX_MAX_BYTES at once. */
    size_t want = total + 1, cap = want < ((size_t)1 << 20) ? want : ((size_t)1 << 20), have = 0;
    uint8_t *buf = knob_malloc(cap);   /* + 1 in want: probes for trailing bytes */
    for (;;) {
        if (!buf) {
            st = knob_fail(err, KNOB_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, cap);
            goto done;
        }
        got = gz_read_all(f, buf + have, cap - have, &why);
        if (got < 0) {
            knob_free(buf);
            st = knob_fail(err, KNOB_ERR_FORMAT, "%s: %s", path, why);
            goto done;
        }
        have += (size_t)got;
        if (have < cap || cap == want)
            break;
        size_t next = cap > want / 2 ? want : 2 * cap;
        uint8_t *nb = knob_realloc(buf, next);
        if (!nb)
            knob_free(buf);
        buf = nb;
        cap = next;
    }
    got = (long long)have;
    if ((size_t)got < total) {
        knob_free(buf);
        st = knob_fail(err, KNOB_ERR_FORMAT, "%s: truncated: expected %zu bytes of data, found %lld", path,
                       total, got);
        goto done;
    }
    if ((size_t)got > total) {
        knob_free(buf);
        st = knob_fail(err, KNOB_ERR_FORMAT, "%s: trailing bytes after %zu bytes of data", path, total);
        goto done;
    }
    *n_dims = nd;
    *data = buf;
done:
    gzclose(f);
    return st;
}
