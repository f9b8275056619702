/* image.c: greyscale images in and out: PNG through libpng, PGM (netpbm P2 and P5) by hand, and the
 * MNIST-style preparation that turns a photo or drawing of a digit into a 28x28 input.
 *
 * Reading picks the format by the file's first bytes, never its name. PNGs of any colour type and
 * bit depth are expanded by libpng to 8 or 16 bits per channel; we then take luma
 * (0.299 R + 0.587 G + 0.114 B on the stored values, as most image tools' "convert to grey" does)
 * and composite alpha on white (a transparent background reads as paper). libpng reports errors by
 * longjmp; its messages are caught and become our one-line error, and its warnings are dropped.
 * The whole file is read first and libpng reads from memory, so a short file is reported as
 * truncated instead of as a read error.
 *
 * Writing goes through knob_atomic_open / commit: 8-bit grey or RGB PNG, or binary PGM.
 */
#include "knob_internal.h"

#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <string.h>

#define IMG_MAX_SIDE   65536
#define IMG_MAX_PIXELS ((size_t)1 << 26)   /* 64 megapixels: a 256 MB float image */

void knob_image_free(knob_image *im)
{
    if (!im)
        return;
    knob_free(im->px);
    memset(im, 0, sizeof *im);
}

static knob_status image_alloc(knob_image *im, int w, int h, const char *path, knob_err *err)
{
    if (w <= 0 || h <= 0 || w > IMG_MAX_SIDE || h > IMG_MAX_SIDE || (size_t)w * (size_t)h > IMG_MAX_PIXELS)
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: image size %dx%d not supported (1 to %d per side, %zu pixels)",
                         path, w, h, IMG_MAX_SIDE, IMG_MAX_PIXELS);
    im->px = knob_malloc((size_t)w * (size_t)h * sizeof(float));
    if (!im->px)
        return knob_fail(err, KNOB_ERR_NOMEM, "%s: cannot allocate a %dx%d image", path, w, h);
    im->w = w;
    im->h = h;
    return KNOB_OK;
}

/* ------------------------------------------------------------------------------------------------
 * PNG reading */

typedef struct {
    const unsigned char *buf;
    size_t len, pos;
    char msg[200];
} png_src;

static void png_on_error(png_structp png, png_const_charp msg)
{
    png_src *src = png_get_error_ptr(png);
    snprintf(src->msg, sizeof src->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static void png_read_mem(png_structp png, png_bytep out, png_size_t n)
{
    png_src *src = png_get_io_ptr(png);
    if (n > src->len - src->pos)
        png_error(png, "truncated PNG data");
    memcpy(out, src->buf + src->pos, n);
    src->pos += n;
}

static void *png_mem_alloc(png_structp png, png_alloc_size_t n)
{
    (void)png;
    return knob_malloc(n);
}

static void png_mem_free(png_structp png, png_voidp p)
{
    (void)png;
    knob_free(p);
}

static knob_status png_load(knob_image *im, const char *path, const unsigned char *buf, size_t len, knob_err *err)
{
    png_src src = {buf, len, 0, ""};
    png_structp png = png_create_read_struct_2(PNG_LIBPNG_VER_STRING, &src, png_on_error, png_on_warning, NULL,
                                               png_mem_alloc, png_mem_free);
    if (!png)
        return knob_fail(err, KNOB_ERR_NOMEM, "%s: cannot start the PNG reader", path);
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return knob_fail(err, KNOB_ERR_NOMEM, "%s: cannot start the PNG reader", path);
    }
    /* state that the longjmp must not lose lives in volatile locals */
    unsigned char *volatile row = NULL;
    unsigned char **volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        knob_free(row);
        knob_free(rows);
        png_destroy_read_struct(&png, &info, NULL);
        knob_image_free(im);
        if (strstr(src.msg, "truncated") || strstr(src.msg, "Read Error"))
            return knob_fail(err, KNOB_ERR_FORMAT, "%s: truncated PNG data", path);
        if (strstr(src.msg, "memory") || strstr(src.msg, "Out of"))
            return knob_fail(err, KNOB_ERR_NOMEM, "%s: out of memory reading PNG (%s)", path, src.msg);
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: bad PNG: %s", path, src.msg);
    }
    png_set_read_fn(png, &src, png_read_mem);
    png_set_user_limits(png, IMG_MAX_SIDE, IMG_MAX_SIDE);
    png_read_info(png, info);
    png_uint_32 w, h;
    int depth, color;
    png_get_IHDR(png, info, &w, &h, &depth, &color, NULL, NULL, NULL);
    if ((size_t)w * h > IMG_MAX_PIXELS)
        png_error(png, "image too large");
    png_set_expand(png);          /* palette -> RGB, grey < 8 bits -> 8 bits, tRNS -> alpha */
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    const int ch = png_get_channels(png, info);
    const int bytes = png_get_bit_depth(png, info) == 16 ? 2 : 1;
    const size_t rowbytes = png_get_rowbytes(png, info);
    if (rowbytes < (size_t)w * (size_t)ch * (size_t)bytes || ch < 1 || ch > 4)
        png_error(png, "unexpected row layout");
    if (image_alloc(im, (int)w, (int)h, path, err)) {
        png_destroy_read_struct(&png, &info, NULL);
        return err ? err->code : KNOB_ERR_FORMAT;
    }
    /* one buffer holding every row: interlaced images need all rows at once */
    row = knob_malloc(rowbytes * h);
    rows = knob_malloc(sizeof(unsigned char *) * h);
    if (!row || !rows)
        png_error(png, "Out of memory");
    for (png_uint_32 y = 0; y < h; y++)
        rows[y] = row + rowbytes * y;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    const float maxv = bytes == 2 ? 65535.0f : 255.0f;
    for (png_uint_32 y = 0; y < h; y++) {
        const unsigned char *p = rows[y];
        for (png_uint_32 x = 0; x < w; x++) {
            float c[4];
            for (int k = 0; k < ch; k++, p += bytes)
                c[k] = (bytes == 2 ? (float)(p[0] << 8 | p[1]) : (float)p[0]) / maxv;
            float grey = ch >= 3 ? 0.299f * c[0] + 0.587f * c[1] + 0.114f * c[2] : c[0];
            if (ch == 2 || ch == 4) {
                float a = c[ch - 1];
                grey = a * grey + (1.0f - a);   /* composite on white */
            }
            im->px[(size_t)y * w + x] = grey < 0.0f ? 0.0f : grey > 1.0f ? 1.0f : grey;
        }
    }
    knob_free(row);
    knob_free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    return KNOB_OK;
}

/* ------------------------------------------------------------------------------------------------
 * PGM reading: "P2" or "P5", whitespace, comments from '#' to the end of the line, width, height,
 * maxval (1 to 65535); P5 then one whitespace byte and binary samples (1 byte each, 2 big-endian
 * bytes when maxval > 255); P2 decimal samples. Bytes after the raster are ignored (netpbm allows
 * several images in one file; we read the first). */

static int is_ws(int c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

static void pgm_skip(const unsigned char *b, size_t len, size_t *pos)
{
    while (*pos < len) {
        if (is_ws(b[*pos]))
            (*pos)++;
        else if (b[*pos] == '#')
            while (*pos < len && b[*pos] != '\n')
                (*pos)++;
        else
            break;
    }
}

/* Reads a decimal number <= 65535 after whitespace and comments: 1, 0 at the end of the data, -1
 * for anything else. */
static int pgm_uint(const unsigned char *b, size_t len, size_t *pos, unsigned *out)
{
    pgm_skip(b, len, pos);
    if (*pos >= len)
        return 0;
    if (b[*pos] < '0' || b[*pos] > '9')
        return -1;
    unsigned v = 0;
    while (*pos < len && b[*pos] >= '0' && b[*pos] <= '9') {
        v = v * 10 + (unsigned)(b[*pos] - '0');
        if (v > 1000000)
            return -1;
        (*pos)++;
    }
    if (*pos < len && !is_ws(b[*pos]) && b[*pos] != '#')
        return -1;
    *out = v;
    return 1;
}

static knob_status pgm_load(knob_image *im, const char *path, const unsigned char *b, size_t len, knob_err *err)
{
    const int binary = b[1] == '5';
    size_t pos = 2;
    unsigned hdr[3];
    static const char *const what[3] = {"width", "height", "maxval"};
    for (int i = 0; i < 3; i++) {
        int r = pgm_uint(b, len, &pos, &hdr[i]);
        if (r == 0)
            return knob_fail(err, KNOB_ERR_FORMAT, "%s: truncated PGM header (no %s)", path, what[i]);
        if (r < 0)
            return knob_fail(err, KNOB_ERR_FORMAT, "%s: bad PGM header: %s is not a number up to 1000000", path, what[i]);
    }
    if (hdr[2] < 1 || hdr[2] > 65535)
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: PGM maxval %u not in 1 to 65535", path, hdr[2]);
    if (hdr[0] < 1 || hdr[1] < 1)
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: PGM image size %ux%u is empty", path, hdr[0], hdr[1]);
    /* the data must be there before anything is sized from the header */
    const size_t n = (size_t)hdr[0] * (size_t)hdr[1], bps = hdr[2] > 255 ? 2 : 1;
    if (binary && (pos >= len || !is_ws(b[pos])))
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: truncated PGM data (no whitespace after the header)", path);
    if (binary && len - pos - 1 < n * bps)
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: truncated PGM data: expected %zu bytes, found %zu", path,
                         n * bps, len - pos - 1);
    if (!binary && (len - pos) / 2 + 1 < n)   /* each sample takes a digit and a separator */
        return knob_fail(err, KNOB_ERR_FORMAT, "%s: truncated PGM data: expected %zu samples in %zu bytes", path,
                         n, len - pos);
    knob_status st = image_alloc(im, (int)hdr[0], (int)hdr[1], path, err);
    if (st)
        return st;
    const float maxval = (float)hdr[2];   /* v / maxval: correctly rounded, so 51 / 255 is 0.2f */
    if (binary) {
        pos++;
        for (size_t i = 0; i < n; i++) {
            unsigned v = bps == 2 ? (unsigned)b[pos + 2 * i] << 8 | b[pos + 2 * i + 1] : b[pos + i];
            if (v > hdr[2]) {
                knob_image_free(im);
                return knob_fail(err, KNOB_ERR_FORMAT, "%s: PGM sample %zu is %u, above maxval %u", path, i, v, hdr[2]);
            }
            im->px[i] = (float)v / maxval;
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            unsigned v;
            int r = pgm_uint(b, len, &pos, &v);
            if (r <= 0 || v > hdr[2]) {
                knob_image_free(im);
                if (r == 0)
                    return knob_fail(err, KNOB_ERR_FORMAT, "%s: truncated PGM data: expected %zu samples, found %zu",
                                     path, n, i);
                if (r < 0)
                    return knob_fail(err, KNOB_ERR_FORMAT, "%s: PGM sample %zu is not a number", path, i);
                return knob_fail(err, KNOB_ERR_FORMAT, "%s: PGM sample %zu is %u, above maxval %u", path, i, v, hdr[2]);
            }
            im->px[i] = (float)v / maxval;
        }
    }
    return KNOB_OK;
}

knob_status knob_image_load(knob_image *im, const char *path, knob_err *err)
{
    memset(im, 0, sizeof *im);
    unsigned char *buf;
    size_t len;
    knob_status st = knob_read_file(path, &buf, &len, err);
    if (st)
        return st;
    static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (len >= 8 && memcmp(buf, png_sig, 8) == 0)
        st = png_load(im, path, buf, len, err);
    else if (len >= 2 && buf[0] == 'P' && (buf[1] == '2' || buf[1] == '5'))
        st = pgm_load(im, path, buf, len, err);
    else
        st = knob_fail(err, KNOB_ERR_FORMAT, "%s: not a PNG or PGM image", path);
    knob_free(buf);
    if (st)
        knob_image_free(im);
    return st;
}

/* ------------------------------------------------------------------------------------------------
 * Writers */

static void png_write_to(png_structp png, png_bytep p, png_size_t n)
{
    FILE *f = png_get_io_ptr(png);
    if (fwrite(p, 1, n, f) != n)
        png_error(png, "write failed");
}

static void png_flush_none(png_structp png) { (void)png; }

knob_status knob_png_write(const char *path, int w, int h, int channels, const uint8_t *px, knob_err *err)
{
    if (w <= 0 || h <= 0 || w > IMG_MAX_SIDE || h > IMG_MAX_SIDE || (channels != 1 && channels != 3))
        return knob_fail(err, KNOB_ERR_USAGE, "%s: cannot write a %dx%d PNG with %d channels (1 or 3)", path, w, h,
                         channels);
    knob_atomic a;
    knob_status st = knob_atomic_open(&a, path, err);
    if (st)
        return st;
    png_src msg = {NULL, 0, 0, ""};
    png_structp png = png_create_write_struct_2(PNG_LIBPNG_VER_STRING, &msg, png_on_error, png_on_warning, NULL,
                                                png_mem_alloc, png_mem_free);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        knob_atomic_abort(&a);
        return knob_fail(err, KNOB_ERR_NOMEM, "%s: cannot start the PNG writer", path);
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        knob_atomic_abort(&a);
        return knob_fail(err, KNOB_ERR_IO, "%s: PNG write failed: %s", path, msg.msg);
    }
    png_set_write_fn(png, a.f, png_write_to, png_flush_none);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++)
        png_write_row(png, (png_const_bytep)(px + (size_t)y * (size_t)w * (size_t)channels));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return knob_atomic_commit(&a, err);
}

knob_status knob_pgm_write(const char *path, int w, int h, const uint8_t *px, knob_err *err)
{
    if (w <= 0 || h <= 0 || w > IMG_MAX_SIDE || h > IMG_MAX_SIDE)
        return knob_fail(err, KNOB_ERR_USAGE, "%s: cannot write a %dx%d PGM", path, w, h);
    knob_atomic a;
    knob_status st = knob_atomic_open(&a, path, err);
    if (st)
        return st;
    fprintf(a.f, "P5\n%d %d\n255\n", w, h);
    fwrite(px, 1, (size_t)w * (size_t)h, a.f);   /* knob_atomic_commit checks the stream's error flag */
    return knob_atomic_commit(&a, err);
}

/* ------------------------------------------------------------------------------------------------
 * MNIST-style preparation.
 *
 * 1. Background: the median of the border pixels (a 256-bin histogram, no allocation; the level is
 *    the mean of the border pixels in the median's bin). If it is above 0.5 the image is dark ink
 *    on light paper and is inverted.
 * 2. Ink = (v - background) / (max - background), clipped to [0, 1]: paper becomes 0 and the
 *    strongest stroke 1. An image whose contrast max - background is under 0.02 is blank: zeros.
 * 3. The bounding box of ink above 0.1 is cut out and scaled by s = 20 / max(box width, height)
 *    to nw x nh (each at least 1), by area averaging when shrinking (each output pixel is the
 *    mean of the input area it covers) and bilinear interpolation when enlarging.
 * 4. The patch is pasted into a zero 28x28 field so that its centre of mass, in continuous
 *    coordinates where pixel (i, j) covers [j, j+1) x [i, i+1), lands as near as whole pixels allow
 *    to (14, 14), the middle of the field; the offset is clamped to keep the patch inside. */

#define MNIST_BOX 20

typedef struct {
    const float *px;
    int w, h, invert;
    float bg, norm;
} ink_map;

/* ink at pixel (x, y): 0 for paper, 1 for the strongest stroke */
static float ink_at(const ink_map *m, int x, int y)
{
    float v = m->px[(size_t)y * (size_t)m->w + (size_t)x];
    v = ((m->invert ? 1.0f - v : v) - m->bg) * m->norm;
    return v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
}

/* mean ink over the rectangle [x0, x1) x [y0, y1) in continuous coordinates */
static float area_mean(const ink_map *m, double x0, double x1, double y0, double y1)
{
    double sum = 0.0, area = 0.0;
    for (int y = (int)floor(y0); y < (int)ceil(y1); y++) {
        double wy = fmin(y1, y + 1.0) - fmax(y0, (double)y);
        if (wy <= 0)
            continue;
        for (int x = (int)floor(x0); x < (int)ceil(x1); x++) {
            double wx = fmin(x1, x + 1.0) - fmax(x0, (double)x);
            if (wx <= 0)
                continue;
            sum += wx * wy * (double)ink_at(m, x, y);
            area += wx * wy;
        }
    }
    return area > 0 ? (float)(sum / area) : 0.0f;
}

/* bilinear ink at continuous point (x, y) (pixel centres at +0.5), edges clamped to the box */
static float bilinear_at(const ink_map *m, double x, double y, int bx0, int by0, int bx1, int by1)
{
    x -= 0.5;
    y -= 0.5;
    x = fmin(fmax(x, (double)bx0), (double)bx1);
    y = fmin(fmax(y, (double)by0), (double)by1);
    int x0 = (int)floor(x), y0 = (int)floor(y);
    int x1 = KNOB_MIN(x0 + 1, bx1), y1 = KNOB_MIN(y0 + 1, by1);
    double fx = x - x0, fy = y - y0;
    double top = (1 - fx) * ink_at(m, x0, y0) + fx * ink_at(m, x1, y0);
    double bot = (1 - fx) * ink_at(m, x0, y1) + fx * ink_at(m, x1, y1);
    return (float)((1 - fy) * top + fy * bot);
}

void knob_image_to_mnist(const knob_image *im, float out[28 * 28])
{
    memset(out, 0, 28 * 28 * sizeof(float));
    const int W = im->w, H = im->h;
    if (W <= 0 || H <= 0 || !im->px)
        return;
    /* 1. border median */
    int hist[256] = {0}, n_border = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            if (y != 0 && y != H - 1 && x != 0 && x != W - 1)
                continue;
            float v = im->px[(size_t)y * (size_t)W + (size_t)x];
            int bin = (int)(v * 255.0f + 0.5f);
            hist[bin < 0 ? 0 : bin > 255 ? 255 : bin]++;
            n_border++;
        }
    int median = 0;
    for (int acc = 0; median < 255; median++)
        if ((acc += hist[median]) * 2 >= n_border)
            break;
    /* the background level: the mean of the border pixels in the median's bin (exact for even paper) */
    double bsum = 0.0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            if (y != 0 && y != H - 1 && x != 0 && x != W - 1)
                continue;
            float v = im->px[(size_t)y * (size_t)W + (size_t)x];
            int bin = (int)(v * 255.0f + 0.5f);
            if ((bin < 0 ? 0 : bin > 255 ? 255 : bin) == median)
                bsum += v;
        }
    const float level = (float)(bsum / hist[median]);
    ink_map m = {im->px, W, H, median > 127, 0.0f, 1.0f};
    m.bg = m.invert ? 1.0f - level : level;
    /* 2. contrast */
    float maxv = 0.0f;
    for (size_t i = 0; i < (size_t)W * (size_t)H; i++) {
        float v = m.invert ? 1.0f - im->px[i] : im->px[i];
        maxv = v > maxv ? v : maxv;
    }
    if (!(maxv - m.bg >= 0.02f))
        return;
    m.norm = 1.0f / (maxv - m.bg);
    /* 3. bounding box, then scale into a patch of at most 20 x 20 */
    int bx0 = W, by0 = H, bx1 = -1, by1 = -1;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            if (ink_at(&m, x, y) > 0.1f) {
                bx0 = KNOB_MIN(bx0, x);
                bx1 = KNOB_MAX(bx1, x);
                by0 = KNOB_MIN(by0, y);
                by1 = KNOB_MAX(by1, y);
            }
    if (bx1 < 0)
        return;
    const int bw = bx1 - bx0 + 1, bh = by1 - by0 + 1;
    const double s = (double)MNIST_BOX / KNOB_MAX(bw, bh);
    const int nw = KNOB_MAX(1, KNOB_MIN(MNIST_BOX, (int)floor(bw * s + 0.5)));
    const int nh = KNOB_MAX(1, KNOB_MIN(MNIST_BOX, (int)floor(bh * s + 0.5)));
    const double sx = (double)bw / nw, sy = (double)bh / nh;   /* input pixels per patch pixel */
    float patch[MNIST_BOX * MNIST_BOX];
    double mass = 0.0, mx = 0.0, my = 0.0;
    for (int y = 0; y < nh; y++)
        for (int x = 0; x < nw; x++) {
            float v;
            if (sx >= 1.0 && sy >= 1.0)
                v = area_mean(&m, bx0 + x * sx, bx0 + (x + 1) * sx, by0 + y * sy, by0 + (y + 1) * sy);
            else
                v = bilinear_at(&m, bx0 + (x + 0.5) * sx, by0 + (y + 0.5) * sy, bx0, by0, bx1, by1);
            patch[y * nw + x] = v;
            mass += v;
            mx += v * (x + 0.5);
            my += v * (y + 0.5);
        }
    /* 4. paste with the centre of mass at (14, 14) */
    if (mass <= 0.0)
        return;
    int ox = (int)floor(14.0 - mx / mass + 0.5), oy = (int)floor(14.0 - my / mass + 0.5);
    ox = KNOB_MAX(0, KNOB_MIN(28 - nw, ox));
    oy = KNOB_MAX(0, KNOB_MIN(28 - nh, oy));
    for (int y = 0; y < nh; y++)
        for (int x = 0; x < nw; x++)
            out[(oy + y) * 28 + ox + x] = patch[y * nw + x];
}
