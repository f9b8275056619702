/* test_image.c: image files and pictures. PGM parsed from hand-written bytes; PNGs written by
 * knob_png_write checked byte by byte (signature, IHDR) and read back; PNGs of other colour types,
 * bit depths, alpha and interlacing written with libpng directly and compared with luma computed
 * by hand; truncated and corrupted files; the MNIST-style preparation on drawn shapes whose
 * result is known exactly; grid layout and tile shading. */
#include "test.h"

#include <png.h>
#include <setjmp.h>
#include <sys/stat.h>

static void tmp_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", test_tmpdir(), name);
}

static int write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    int ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* ------------------------------------------------------------------------------------------------
 * PGM */

TEST(pgm_p2_and_p5_parse)
{
    knob_err err;
    char path[512];
    tmp_path(path, sizeof path, "a.pgm");
    knob_image im;
    const char p2[] = "P2\n# made by hand\n3 2\n# max\n4\n0 1 2\n3 4\t4\n";
    CHECK(write_bytes(path, p2, sizeof p2 - 1));
    CHECK_OK(knob_image_load(&im, path, &err));
    CHECK(im.w == 3 && im.h == 2);
    const float want2[6] = {0.0f, 0.25f, 0.5f, 0.75f, 1.0f, 1.0f};
    for (int i = 0; i < 6 && im.px; i++)
        CHECK(im.px[i] == want2[i]);
    knob_image_free(&im);
    const unsigned char p5[] = "P5 2 2 255\n\x00\x33\xcc\xff";
    CHECK(write_bytes(path, p5, sizeof p5 - 1));
    CHECK_OK(knob_image_load(&im, path, &err));
    CHECK(im.w == 2 && im.h == 2 && im.px[0] == 0.0f && im.px[1] == 0.2f && im.px[2] == 0.8f && im.px[3] == 1.0f);
    knob_image_free(&im);
    /* 16-bit samples, big-endian, maxval 1000 */
    const unsigned char p16[] = "P5\n2 1\n1000\n\x03\xe8\x01\xf4";
    CHECK(write_bytes(path, p16, sizeof p16 - 1));
    CHECK_OK(knob_image_load(&im, path, &err));
    CHECK(im.w == 2 && im.h == 1 && im.px[0] == 1.0f && im.px[1] == 0.5f);
    knob_image_free(&im);
    /* the writer, read back; the name does not decide the format */
    uint8_t px[6] = {0, 51, 102, 153, 204, 255};
    tmp_path(path, sizeof path, "w.png");   /* a PGM under a .png name */
    CHECK_OK(knob_pgm_write(path, 3, 2, px, &err));
    CHECK_OK(knob_image_load(&im, path, &err));
    CHECK(im.w == 3 && im.h == 2);
    for (int i = 0; i < 6 && im.px; i++)
        CHECK(im.px[i] == (float)px[i] / 255.0f);
    knob_image_free(&im);
}

TEST(pgm_errors)
{
    knob_err err;
    char path[512];
    tmp_path(path, sizeof path, "bad.pgm");
    knob_image im;
    const struct {
        const char *bytes;
        const char *want;
    } cases[] = {
        {"P5 4 4 255\n\x01\x02\x03", "truncated PGM data: expected 16 bytes, found 3"},
        {"P5 4 4 255", "truncated PGM data"},
        {"P5 4 4", "truncated PGM header (no maxval)"},
        {"P2 2 2 9\n1 2 3", "truncated PGM data: expected 4 samples, found 3"},
        {"P2 2 1 9\n1 12", "PGM sample 1 is 12, above maxval 9"},
        {"P2 2 1 9\n1 x", "PGM sample 1 is not a number"},
        {"P5 2 1 0\n\x00\x00", "maxval 0 not in 1 to 65535"},
        {"P5 2 1 70000\n\x00\x00", "maxval 70000"},
        {"P5 0 1 255\n", "is empty"},
        {"P5 a 1 255\n", "bad PGM header: width"},
        {"P5 2 1 100\n\x01\x65", "PGM sample 1 is 101, above maxval 100"},
        {"GIF89a", "not a PNG or PGM image"},
        {"", "not a PNG or PGM image"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK(write_bytes(path, cases[i].bytes, strlen(cases[i].bytes)));
        memset(&err, 0, sizeof err);
        knob_status s = knob_image_load(&im, path, &err);
        if (s != KNOB_ERR_FORMAT || !strstr(err.msg, cases[i].want) || !strstr(err.msg, path) || im.px)
            test_fail_at(__FILE__, __LINE__, "case %zu: status %s, msg '%s', want '%s'", i, knob_status_name(s),
                         err.msg, cases[i].want);
    }
    char missing[512];
    tmp_path(missing, sizeof missing, "none.pgm");
    CHECK_FAILS_WITH(knob_image_load(&im, missing, &err), KNOB_ERR_IO, "none.pgm");
}

/* ------------------------------------------------------------------------------------------------
 * PNG */

static uint32_t be32(const unsigned char *b) { return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3]; }

TEST(png_write_then_read)
{
    knob_err err;
    char path[512];
    tmp_path(path, sizeof path, "grey.png");
    uint8_t px[5 * 3];
    for (int i = 0; i < 15; i++)
        px[i] = (uint8_t)(i * 17);
    CHECK_OK(knob_png_write(path, 5, 3, 1, px, &err));
    unsigned char *b;
    size_t len;
    CHECK_OK(knob_read_file(path, &b, &len, &err));
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    CHECK(len > 33 && memcmp(b, sig, 8) == 0);
    CHECK(memcmp(b + 12, "IHDR", 4) == 0 && be32(b + 16) == 5 && be32(b + 20) == 3);
    CHECK(b[24] == 8 && b[25] == 0);   /* bit depth 8, colour type 0 (grey) */
    knob_free(b);
    knob_image im;
    CHECK_OK(knob_image_load(&im, path, &err));
    CHECK(im.w == 5 && im.h == 3);
    for (int i = 0; i < 15 && im.px; i++)
        CHECK(im.px[i] == (float)px[i] / 255.0f);
    knob_image_free(&im);
    /* RGB: luma by hand, 0.299 R + 0.587 G + 0.114 B */
    uint8_t rgb[2 * 3] = {255, 0, 0, 10, 200, 30};
    CHECK_OK(knob_png_write(path, 2, 1, 3, rgb, &err));
    CHECK_OK(knob_read_file(path, &b, &len, &err));
    CHECK(b[25] == 2);   /* colour type 2 (RGB) */
    knob_free(b);
    CHECK_OK(knob_image_load(&im, path, &err));
    CHECK_NEAR(im.px[0], 0.299, 0, 1e-6);
    CHECK_NEAR(im.px[1], (0.299 * 10 + 0.587 * 200 + 0.114 * 30) / 255.0, 0, 1e-6);
    knob_image_free(&im);
    /* bad arguments; a folder that does not exist leaves nothing behind */
    CHECK_FAILS_WITH(knob_png_write(path, 0, 1, 1, px, &err), KNOB_ERR_USAGE, "0x1");
    CHECK_FAILS_WITH(knob_png_write(path, 1, 1, 2, px, &err), KNOB_ERR_USAGE, "2 channels");
    char nodir[512];
    tmp_path(nodir, sizeof nodir, "no/such/dir/x.png");
    CHECK_FAILS_WITH(knob_png_write(nodir, 1, 1, 1, px, &err), KNOB_ERR_IO, "no/such/dir");
    CHECK(!file_exists(nodir));
}

/* libpng writer for the test: any colour type and bit depth, optional palette and interlacing.
 * rows: packed as the PNG stores them (big-endian 16-bit samples). */
static int write_png_raw(const char *path, int w, int h, int depth, int color, int interlace, const uint8_t *data,
                         size_t row_bytes, const png_color *pal, int n_pal, const uint8_t *trns, int n_trns)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        return 0;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (pal)
        png_set_PLTE(png, info, pal, n_pal);
    if (trns)
        png_set_tRNS(png, info, trns, n_trns, NULL);
    png_write_info(png, info);
    png_bytep rows[64];
    for (int y = 0; y < h; y++)
        rows[y] = (png_bytep)(data + (size_t)y * row_bytes);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return fclose(f) == 0;
}

TEST(png_colour_types_read_as_luma)
{
    knob_err err;
    char path[512];
    tmp_path(path, sizeof path, "c.png");
    knob_image im;
    /* RGBA 8-bit: opaque red; half-transparent blue over white; fully transparent black = white */
    const uint8_t rgba[3 * 4] = {255, 0, 0, 255, 0, 0, 255, 128, 0, 0, 0, 0};
    CHECK(write_png_raw(path, 3, 1, 8, PNG_COLOR_TYPE_RGBA, 0, rgba, 12, NULL, 0, NULL, 0));
    CHECK_OK(knob_image_load(&im, path, &err));
    CHECK(im.w == 3 && im.h == 1);
    const double a = 128 / 255.0;
    CHECK_NEAR(im.px[0], 0.299, 0, 1e-6);
    CHECK_NEAR(im.px[1], a * 0.114 + (1 - a), 0, 1e-6);
    CHECK_NEAR(im.px[2], 1.0, 0, 1e-6);
    knob_image_free(&im);
    /* 16-bit grey + alpha */
    const uint8_t ga16[2 * 4] = {0x80, 0x00, 0xff, 0xff, 0x00, 0x00, 0x40, 0x00};
    CHECK(write_png_raw(path, 2, 1, 16, PNG_COLOR_TYPE_GRAY_ALPHA, 0, ga16, 8, NULL, 0, NULL, 0));
    CHECK_OK(knob_image_load(&im, path, &err));
    CHECK_NEAR(im.px[0], 32768 / 65535.0, 0, 1e-6);
    CHECK_NEAR(im.px[1], 1.0 - 16384 / 65535.0, 0, 1e-6);   /* black at alpha 0.25 over white */
    knob_image_free(&im);
    /* 1-bit grey, 8 pixels in one byte: 1 0 1 1 0 0 0 1 */
    const uint8_t g1[1] = {0xB1};
    CHECK(write_png_raw(path, 8, 1, 1, PNG_COLOR_TYPE_GRAY, 0, g1, 1, NULL, 0, NULL, 0));
    CHECK_OK(knob_image_load(&im, path, &err));
    const int bits[8] = {1, 0, 1, 1, 0, 0, 0, 1};
    for (int i = 0; i < 8; i++)
        CHECK(im.px[i] == (float)bits[i]);
    knob_image_free(&im);
    /* 2-bit palette with a transparent entry */
    png_color pal[3] = {{0, 0, 0}, {0, 255, 0}, {100, 100, 100}};
    uint8_t trns[3] = {255, 255, 0};
    const uint8_t p2[1] = {0x18};   /* indices 0 1 2 0 */
    CHECK(write_png_raw(path, 4, 1, 2, PNG_COLOR_TYPE_PALETTE, 0, p2, 1, pal, 3, trns, 3));
    CHECK_OK(knob_image_load(&im, path, &err));
    CHECK_NEAR(im.px[0], 0.0, 0, 1e-6);
    CHECK_NEAR(im.px[1], 0.587, 0, 1e-6);
    CHECK_NEAR(im.px[2], 1.0, 0, 1e-6);   /* transparent: paper */
    CHECK_NEAR(im.px[3], 0.0, 0, 1e-6);
    knob_image_free(&im);
    /* interlaced 8-bit grey, 9x7 */
    uint8_t g8[9 * 7];
    for (int i = 0; i < 63; i++)
        g8[i] = (uint8_t)(i * 4);
    CHECK(write_png_raw(path, 9, 7, 8, PNG_COLOR_TYPE_GRAY, 1, g8, 9, NULL, 0, NULL, 0));
    CHECK_OK(knob_image_load(&im, path, &err));
    CHECK(im.w == 9 && im.h == 7);
    int same = 1;
    for (int i = 0; i < 63 && im.px; i++)
        same &= im.px[i] == (float)g8[i] / 255.0f;
    CHECK(same);
    knob_image_free(&im);
}

TEST(png_truncated_and_corrupt)
{
    knob_err err;
    char good[512], path[512];
    tmp_path(good, sizeof good, "good.png");
    tmp_path(path, sizeof path, "cut.png");
    uint8_t px[16 * 16];
    for (int i = 0; i < 256; i++)
        px[i] = (uint8_t)((i * 131) ^ (i >> 3));
    CHECK_OK(knob_png_write(good, 16, 16, 1, px, &err));
    unsigned char *b;
    size_t len;
    CHECK_OK(knob_read_file(good, &b, &len, &err));
    knob_image im;
    for (size_t cut = 8; cut < len; cut += 3) {
        CHECK(write_bytes(path, b, cut));
        memset(&err, 0, sizeof err);
        knob_status s = knob_image_load(&im, path, &err);
        if (s == KNOB_OK || !strstr(err.msg, path) || strchr(err.msg, '\n') || im.px)
            test_fail_at(__FILE__, __LINE__, "cut at %zu: status %s, msg '%s'", cut, knob_status_name(s), err.msg);
    }
    CHECK(write_bytes(path, b, len / 2));
    CHECK_FAILS_WITH(knob_image_load(&im, path, &err), KNOB_ERR_FORMAT, "truncated PNG data");
    /* flipped bytes after the signature: an error or (where a CRC is not checked) a valid image */
    for (size_t at = 8; at < len; at += 5) {
        unsigned char keep = b[at];
        b[at] ^= 0x5a;
        CHECK(write_bytes(path, b, len));
        memset(&err, 0, sizeof err);
        knob_status s = knob_image_load(&im, path, &err);
        CHECK(s == KNOB_OK ? im.w == 16 && im.h == 16 : (err.msg[0] && strstr(err.msg, path) && !im.px));
        knob_image_free(&im);
        b[at] = keep;
    }
    knob_free(b);
}

/* ------------------------------------------------------------------------------------------------
 * MNIST-style preparation */

static knob_image make_image(int w, int h, float bg)
{
    knob_image im = {w, h, malloc((size_t)w * h * sizeof(float))};
    for (int i = 0; i < w * h; i++)
        im.px[i] = bg;
    return im;
}

static void fill_rect(knob_image *im, int x0, int y0, int w, int h, float v)
{
    for (int y = y0; y < y0 + h; y++)
        for (int x = x0; x < x0 + w; x++)
            im->px[y * im->w + x] = v;
}

/* checks out is exactly 1 inside [x0, x0+w) x [y0, y0+h) and 0 elsewhere; returns 1 if so */
static int is_box(const float *out, int x0, int y0, int w, int h)
{
    for (int y = 0; y < 28; y++)
        for (int x = 0; x < 28; x++) {
            int in = x >= x0 && x < x0 + w && y >= y0 && y < y0 + h;
            if (fabsf(out[y * 28 + x] - (in ? 1.0f : 0.0f)) > 1e-5f)
                return 0;
        }
    return 1;
}

TEST(image_to_mnist_shapes)
{
    float out[28 * 28];
    /* dark square on white paper, shrunk 30 -> 20 by area averaging: a bright 20x20 square whose
     * centre of mass is the middle of the field, pixels 4..23 (continuous centre 14) */
    knob_image im = make_image(100, 60, 1.0f);
    fill_rect(&im, 10, 20, 30, 30, 0.0f);
    knob_image_to_mnist(&im, out);
    CHECK(is_box(out, 4, 4, 20, 20));
    /* bright tall bar on black: 10 x 40 -> 5 x 20, centred: columns 12..16 (centre 14.5, the
     * nearest whole-pixel placement to 14), rows 4..23 */
    for (int i = 0; i < 100 * 60; i++)
        im.px[i] = 0.0f;
    fill_rect(&im, 70, 5, 10, 40, 1.0f);
    knob_image_to_mnist(&im, out);
    CHECK(is_box(out, 12, 4, 5, 20) || is_box(out, 11, 4, 5, 20));
    /* a small square is enlarged to fill 20x20 */
    knob_image small = make_image(10, 10, 0.0f);
    fill_rect(&small, 2, 5, 4, 4, 0.8f);
    knob_image_to_mnist(&small, out);
    CHECK(is_box(out, 4, 4, 20, 20));
    /* grey paper and grey ink are stretched: paper 0.7, ink 0.2 -> 0 and 1 */
    for (int i = 0; i < 100 * 60; i++)
        im.px[i] = 0.7f;
    fill_rect(&im, 50, 10, 20, 20, 0.2f);
    knob_image_to_mnist(&im, out);
    CHECK(is_box(out, 4, 4, 20, 20));
    /* blank images: zeros */
    for (int i = 0; i < 100 * 60; i++)
        im.px[i] = 1.0f;
    out[5] = 3.0f;
    knob_image_to_mnist(&im, out);
    CHECK(is_box(out, 0, 0, 0, 0));
    for (int i = 0; i < 100 * 60; i++)
        im.px[i] = 0.0f;
    knob_image_to_mnist(&im, out);
    CHECK(is_box(out, 0, 0, 0, 0));
    free(im.px);
    free(small.px);
    /* mass off-centre: the centre of mass, not the box, goes to (14, 14) */
    knob_image l = make_image(40, 40, 0.0f);
    fill_rect(&l, 10, 10, 2, 20, 1.0f);    /* an L: a bar down the left and along the bottom */
    fill_rect(&l, 10, 28, 20, 2, 1.0f);
    knob_image_to_mnist(&l, out);
    double m = 0, mx = 0, my = 0;
    for (int y = 0; y < 28; y++)
        for (int x = 0; x < 28; x++) {
            m += out[y * 28 + x];
            mx += out[y * 28 + x] * (x + 0.5);
            my += out[y * 28 + x] * (y + 0.5);
        }
    CHECK(m > 0);
    CHECK_NEAR(mx / m, 14.0, 0, 0.5);
    CHECK_NEAR(my / m, 14.0, 0, 0.5);
    free(l.px);
}

/* ------------------------------------------------------------------------------------------------
 * Grids */

static const uint8_t *grid_px(const knob_grid *g, int x, int y) { return g->rgb + ((size_t)y * g->w + x) * 3; }

TEST(grid_layout_and_shading)
{
    knob_err err;
    knob_grid g;
    CHECK_OK(knob_grid_init(&g, 5, 3, 2, 3, 2, 1, &err));
    CHECK(g.cols == 3 && g.rows == 2 && g.label_h == 10);
    CHECK(g.w == 3 * 3 * 2 + 4 * 2 && g.h == 2 * (2 * 2 + 10) + 3 * 2);
    knob_grid_free(&g);
    CHECK_OK(knob_grid_init(&g, 2, 5, 28, 28, 1, 0, &err));
    CHECK(g.cols == 2 && g.rows == 1 && g.w == 2 * 28 + 3 * 2 && g.h == 28 + 2 * 2);
    knob_grid_free(&g);
    CHECK_FAILS_WITH(knob_grid_init(&g, 0, 1, 2, 2, 1, 0, &err), KNOB_ERR_USAGE, "grid: bad layout");
    CHECK_FAILS_WITH(knob_grid_init(&g, 1, 1, 2, 2, 0, 0, &err), KNOB_ERR_USAGE, "scale 0");
    CHECK_FAILS_WITH(knob_grid_init(&g, 100000, 100000, 28, 28, 4, 0, &err), KNOB_ERR_USAGE, "too large");
    CHECK(g.rgb == NULL);

    /* one row of three 1x3 tiles at scale 1: tile i starts at x = 2 + i * (3 + 2), y = 2 */
    CHECK_OK(knob_grid_init(&g, 4, 4, 1, 3, 1, 0, &err));
    knob_grid_tile(&g, 0, (const float[]){-1.0f, 0.0f, 1.0f}, KNOB_GRID_SIGNED);
    knob_grid_tile(&g, 1, (const float[]){2.0f, 4.0f, 6.0f}, KNOB_GRID_MINMAX);
    knob_grid_tile(&g, 2, (const float[]){0.0f, 0.5f, 1.0f}, KNOB_GRID_UNIT);
    knob_grid_tile(&g, 3, (const float[]){3.0f, 3.0f, NAN}, KNOB_GRID_MINMAX);
    const uint8_t want[3] = {0, 128, 255};
    for (int t = 0; t < 3; t++)
        for (int k = 0; k < 3; k++) {
            const uint8_t *p = grid_px(&g, 2 + t * 5 + k, 2);
            CHECK(p[0] == want[k] && p[1] == want[k] && p[2] == want[k]);
        }
    CHECK(grid_px(&g, 17, 2)[0] == 128 && grid_px(&g, 18, 2)[1] == 128);   /* constant: mid-grey */
    CHECK(grid_px(&g, 19, 2)[0] == 255 && grid_px(&g, 19, 2)[1] == 0);      /* NaN: red */
    CHECK(grid_px(&g, 1, 2)[0] == 255 && grid_px(&g, 5, 2)[0] == 255);       /* gaps stay white */
    /* all-zero signed tile: mid-grey */
    knob_grid_tile(&g, 0, (const float[]){0.0f, 0.0f, 0.0f}, KNOB_GRID_SIGNED);
    CHECK(grid_px(&g, 2, 2)[0] == 128);
    knob_grid_free(&g);

    /* scale: each value a block; captions draw only inside their own box, in their colour */
    CHECK_OK(knob_grid_init(&g, 2, 2, 2, 2, 7, 1, &err));
    knob_grid_tile(&g, 0, (const float[]){1, 0, 0, 1}, KNOB_GRID_UNIT);
    CHECK(grid_px(&g, 2, 2)[0] == 255 && grid_px(&g, 8, 8)[0] == 255 && grid_px(&g, 9, 2)[0] == 0 &&
          grid_px(&g, 15, 15)[0] == 255);
    size_t bytes = (size_t)g.w * g.h * 3;
    uint8_t *before = malloc(bytes);
    memcpy(before, g.rgb, bytes);
    knob_grid_label(&g, 1, "7>1 (a-Z) much too long to fit", 200, 0, 0);
    int changed_inside = 0, changed_outside = 0, wrong_colour = 0;
    const int bx = 2 + 14 + 2, by = 2 + 14;   /* tile 1's caption box: 14 wide, 10 high */
    for (int y = 0; y < g.h; y++)
        for (int x = 0; x < g.w; x++) {
            const uint8_t *p = grid_px(&g, x, y), *q = before + ((size_t)y * g.w + x) * 3;
            if (memcmp(p, q, 3) == 0)
                continue;
            if (x >= bx && x < bx + 14 && y >= by && y < by + 10) {
                changed_inside++;
                wrong_colour += !(p[0] == 200 && p[1] == 0 && p[2] == 0);
            } else {
                changed_outside++;
            }
        }
    CHECK(changed_inside > 5 && changed_outside == 0 && wrong_colour == 0);
    free(before);
    knob_grid_free(&g);
}

TEST(grid_save_reads_back)
{
    knob_err err;
    char path[512];
    tmp_path(path, sizeof path, "grid.png");
    knob_grid g;
    CHECK_OK(knob_grid_init(&g, 3, 3, 1, 3, 2, 1, &err));
    for (int i = 0; i < 3; i++)
        knob_grid_tile(&g, i, (const float[]){-1.0f, 0.0f, 1.0f}, KNOB_GRID_SIGNED);
    knob_grid_label(&g, 0, "0:ok", 0, 128, 0);
    CHECK_OK(knob_grid_save(&g, path, &err));
    knob_image im;
    CHECK_OK(knob_image_load(&im, path, &err));
    CHECK(im.w == g.w && im.h == g.h);
    if (im.px) {
        CHECK(im.px[2 * im.w + 2] == 0.0f);
        CHECK(fabsf(im.px[2 * im.w + 4] - 128 / 255.0f) < 1e-6f);
        CHECK(im.px[3 * im.w + 6] == 1.0f);
    }
    knob_image_free(&im);
    knob_grid_free(&g);
    knob_grid_free(&g);
}

TEST(image_and_grid_survive_failed_allocations)
{
    knob_err err;
    char png[512], pgm[512];
    tmp_path(png, sizeof png, "oom.png");
    tmp_path(pgm, sizeof pgm, "oom.pgm");
    uint8_t px[12 * 9];
    for (int i = 0; i < 12 * 9; i++)
        px[i] = (uint8_t)(i * 2);
    CHECK_OK(knob_png_write(png, 12, 9, 1, px, &err));
    CHECK_OK(knob_pgm_write(pgm, 12, 9, px, &err));
    const char *paths[2] = {png, pgm};
    for (int k = 0; k < 2; k++) {
        int ok = 0;
        for (long n = 1; n < 200 && !ok; n++) {
            knob_image im;
            memset(&err, 0, sizeof err);
            knob_alloc_fail_at(n);
            knob_status st = knob_image_load(&im, paths[k], &err);
            knob_alloc_fail_at(0);
            if (st == KNOB_OK)
                ok = im.w == 12 && im.h == 9 && im.px[5] == 10 / 255.0f;
            else if (st != KNOB_ERR_NOMEM || !err.msg[0] || im.px)
                test_fail_at(__FILE__, __LINE__, "%s, allocation %ld failing: %s '%s'", paths[k], n,
                             knob_status_name(st), err.msg);
            knob_image_free(&im);
        }
        CHECK(ok);
    }
    /* writers and the grid */
    int ok = 0;
    for (long n = 1; n < 200 && !ok; n++) {
        knob_grid g;
        memset(&err, 0, sizeof err);
        knob_alloc_fail_at(n);
        knob_status st = knob_grid_init(&g, 2, 2, 3, 4, 1, 1, &err);
        if (st == KNOB_OK) {
            knob_grid_tile(&g, 1, (const float[12]){0}, KNOB_GRID_UNIT);
            st = knob_grid_save(&g, png, &err);
            ok = st == KNOB_OK;
        }
        knob_alloc_fail_at(0);
        if (st != KNOB_OK && (!err.msg[0] || strchr(err.msg, '\n')))
            test_fail_at(__FILE__, __LINE__, "grid, allocation %ld failing: %s '%s'", n, knob_status_name(st), err.msg);
        knob_grid_free(&g);
    }
    CHECK(ok);
    knob_image im;
    CHECK_OK(knob_image_load(&im, png, &err));   /* whatever failed before, the last save is whole */
    CHECK(im.w == 2 * 4 + 3 * 2);
    knob_image_free(&im);
}
