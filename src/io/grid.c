/* grid.c: picture grids, the way knob shows what a vision model sees and learns: a PNG of tiles
 * (input images, first-layer filters, feature maps), each optionally captioned (label, guess) in a
 * tiny bitmap font.
 *
 * The font is our own, drawn below as ASCII art: 5 x 8 cells, capitals and digits on rows 0-6
 * (baseline at row 6), lower case from row 2 with descenders on row 7. Characters without a glyph
 * are drawn as '?'. The grid is an RGB buffer on a white background, written with knob_png_write.
 */
#include "knob_internal.h"

#include <math.h>
#include <string.h>

#define GRID_GAP     2
#define GRID_LABEL_H 10
#define GLYPH_W      5
#define GLYPH_H      8
#define GLYPH_ADV    6
#define GRID_MAX_PIXELS ((size_t)1 << 28)

/* ------------------------------------------------------------------------------------------------
 * Font: eight rows of five columns each, '#' is ink. */

typedef struct {
    char c;
    const char *rows;   /* "r0 r1 r2 r3 r4 r5 r6 r7" */
} glyph;

static const glyph font[] = {
    {' ', "..... ..... ..... ..... ..... ..... ..... ....."},
    {'0', ".###. #...# #..## #.#.# ##..# #...# .###. ....."},
    {'1', "..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###. ....."},
    {'2', ".###. #...# ....# ...#. ..#.. .#... ##### ....."},
    {'3', "##### ...#. ..#.. ...#. ....# #...# .###. ....."},
    {'4', "...#. ..##. .#.#. #..#. ##### ...#. ...#. ....."},
    {'5', "##### #.... ####. ....# ....# #...# .###. ....."},
    {'6', "..##. .#... #.... ####. #...# #...# .###. ....."},
    {'7', "##### ....# ...#. ..#.. .#... .#... .#... ....."},
    {'8', ".###. #...# #...# .###. #...# #...# .###. ....."},
    {'9', ".###. #...# #...# .#### ....# ...#. .##.. ....."},
    {'A', ".###. #...# #...# ##### #...# #...# #...# ....."},
    {'B', "####. #...# #...# ####. #...# #...# ####. ....."},
    {'C', ".###. #...# #.... #.... #.... #...# .###. ....."},
    {'D', "####. #...# #...# #...# #...# #...# ####. ....."},
    {'E', "##### #.... #.... ####. #.... #.... ##### ....."},
    {'F', "##### #.... #.... ####. #.... #.... #.... ....."},
    {'G', ".###. #...# #.... #.### #...# #...# .#### ....."},
    {'H', "#...# #...# #...# ##### #...# #...# #...# ....."},
    {'I', ".###. ..#.. ..#.. ..#.. ..#.. ..#.. .###. ....."},
    {'J', "..### ...#. ...#. ...#. ...#. #..#. .##.. ....."},
    {'K', "#...# #..#. #.#.. ##... #.#.. #..#. #...# ....."},
    {'L', "#.... #.... #.... #.... #.... #.... ##### ....."},
    {'M', "#...# ##.## #.#.# #.#.# #...# #...# #...# ....."},
    {'N', "#...# #...# ##..# #.#.# #..## #...# #...# ....."},
    {'O', ".###. #...# #...# #...# #...# #...# .###. ....."},
    {'P', "####. #...# #...# ####. #.... #.... #.... ....."},
    {'Q', ".###. #...# #...# #...# #.#.# #..#. .##.# ....."},
    {'R', "####. #...# #...# ####. #.#.. #..#. #...# ....."},
    {'S', ".#### #.... #.... .###. ....# ....# ####. ....."},
    {'T', "##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#.. ....."},
    {'U', "#...# #...# #...# #...# #...# #...# .###. ....."},
    {'V', "#...# #...# #...# #...# #...# .#.#. ..#.. ....."},
    {'W', "#...# #...# #...# #.#.# #.#.# #.#.# .#.#. ....."},
    {'X', "#...# #...# .#.#. ..#.. .#.#. #...# #...# ....."},
    {'Y', "#...# #...# .#.#. ..#.. ..#.. ..#.. ..#.. ....."},
    {'Z', "##### ....# ...#. ..#.. .#... #.... ##### ....."},
    {'a', "..... ..... .###. ....# .#### #...# .#### ....."},
    {'b', "#.... #.... #.##. ##..# #...# #...# ####. ....."},
    {'c', "..... ..... .###. #.... #.... #...# .###. ....."},
    {'d', "....# ....# .##.# #..## #...# #...# .#### ....."},
    {'e', "..... ..... .###. #...# ##### #.... .###. ....."},
    {'f', "..##. .#..# .#... ###.. .#... .#... .#... ....."},
    {'g', "..... ..... .#### #...# #...# .#### ....# .###."},
    {'h', "#.... #.... #.##. ##..# #...# #...# #...# ....."},
    {'i', "..#.. ..... .##.. ..#.. ..#.. ..#.. .###. ....."},
    {'j', "...#. ..... ..##. ...#. ...#. ...#. #..#. .##.."},
    {'k', "#.... #.... #..#. #.#.. ##... #.#.. #..#. ....."},
    {'l', ".##.. ..#.. ..#.. ..#.. ..#.. ..#.. .###. ....."},
    {'m', "..... ..... ##.#. #.#.# #.#.# #...# #...# ....."},
    {'n', "..... ..... #.##. ##..# #...# #...# #...# ....."},
    {'o', "..... ..... .###. #...# #...# #...# .###. ....."},
    {'p', "..... ..... ####. #...# #...# ####. #.... #...."},
    {'q', "..... ..... .#### #...# #...# .#### ....# ....#"},
    {'r', "..... ..... #.##. ##..# #.... #.... #.... ....."},
    {'s', "..... ..... .###. #.... .###. ....# ####. ....."},
    {'t', ".#... .#... ###.. .#... .#... .#..# ..##. ....."},
    {'u', "..... ..... #...# #...# #...# #..## .##.# ....."},
    {'v', "..... ..... #...# #...# #...# .#.#. ..#.. ....."},
    {'w', "..... ..... #...# #...# #.#.# #.#.# .#.#. ....."},
    {'x', "..... ..... #...# .#.#. ..#.. .#.#. #...# ....."},
    {'y', "..... ..... #...# #...# #...# .#### ....# .###."},
    {'z', "..... ..... ##### ...#. ..#.. .#... ##### ....."},
    {':', "..... .##.. .##.. ..... .##.. .##.. ..... ....."},
    {'>', ".#... ..#.. ...#. ....# ...#. ..#.. .#... ....."},
    {'<', "...#. ..#.. .#... #.... .#... ..#.. ...#. ....."},
    {'-', "..... ..... ..... ##### ..... ..... ..... ....."},
    {'/', "..... ....# ...#. ..#.. .#... #.... ..... ....."},
    {'.', "..... ..... ..... ..... ..... .##.. .##.. ....."},
    {',', "..... ..... ..... ..... ..... .##.. ..#.. .#..."},
    {'(', "...#. ..#.. .#... .#... .#... ..#.. ...#. ....."},
    {')', ".#... ..#.. ...#. ...#. ...#. ..#.. .#... ....."},
    {'[', ".###. .#... .#... .#... .#... .#... .###. ....."},
    {']', ".###. ...#. ...#. ...#. ...#. ...#. .###. ....."},
    {'=', "..... ..... ##### ..... ##### ..... ..... ....."},
    {'+', "..... ..#.. ..#.. ##### ..#.. ..#.. ..... ....."},
    {'%', "##... ##..# ...#. ..#.. .#... #..## ...## ....."},
    {'_', "..... ..... ..... ..... ..... ..... ##### ....."},
    {'!', "..#.. ..#.. ..#.. ..#.. ..#.. ..... ..#.. ....."},
    {'?', ".###. #...# ....# ...#. ..#.. ..... ..#.. ....."},
    {'\'', "..#.. ..#.. .#... ..... ..... ..... ..... ....."},
    {'"', ".#.#. .#.#. ..... ..... ..... ..... ..... ....."},
    {'#', ".#.#. .#.#. ##### .#.#. ##### .#.#. .#.#. ....."},
    {'*', "..... ..#.. #.#.# .###. #.#.# ..#.. ..... ....."},
};

static const char *glyph_rows(char c)
{
    for (size_t i = 0; i < sizeof font / sizeof font[0]; i++)
        if (font[i].c == c)
            return font[i].rows;
    return glyph_rows('?');
}

/* ------------------------------------------------------------------------------------------------
 * Layout */

static int tile_w(const knob_grid *g) { return g->tw * g->scale; }
static int tile_h(const knob_grid *g) { return g->th * g->scale; }
static int tile_x(const knob_grid *g, int i) { return GRID_GAP + (i % g->cols) * (tile_w(g) + GRID_GAP); }
static int tile_y(const knob_grid *g, int i) { return GRID_GAP + (i / g->cols) * (tile_h(g) + g->label_h + GRID_GAP); }

static void put(knob_grid *g, int x, int y, uint8_t r, uint8_t gr, uint8_t b)
{
    uint8_t *p = g->rgb + ((size_t)y * (size_t)g->w + (size_t)x) * 3;
    p[0] = r;
    p[1] = gr;
    p[2] = b;
}

knob_status knob_grid_init(knob_grid *g, int n, int cols, int th, int tw, int scale, int with_labels, knob_err *err)
{
    memset(g, 0, sizeof *g);
    if (n < 1 || cols < 1 || th < 1 || tw < 1 || scale < 1 || scale > 64 || th > 65536 || tw > 65536)
        return knob_fail(err, KNOB_ERR_USAGE,
                         "grid: bad layout: %d tiles, %d columns, tiles %dx%d, scale %d (all >= 1, scale <= 64)",
                         n, cols, th, tw, scale);
    g->n = n;
    g->cols = KNOB_MIN(cols, n);
    g->rows = (n + g->cols - 1) / g->cols;
    g->th = th;
    g->tw = tw;
    g->scale = scale;
    g->label_h = with_labels ? GRID_LABEL_H : 0;
    size_t w = (size_t)g->cols * (size_t)(tw * scale) + (size_t)(g->cols + 1) * GRID_GAP;
    size_t h = (size_t)g->rows * (size_t)(th * scale + g->label_h) + (size_t)(g->rows + 1) * GRID_GAP;
    if (w > 65536 || h > 65536 || w * h > GRID_MAX_PIXELS) {
        memset(g, 0, sizeof *g);
        return knob_fail(err, KNOB_ERR_USAGE, "grid: %zux%zu pixels is too large (at most 65536 per side, %zu in all)",
                         w, h, GRID_MAX_PIXELS);
    }
    g->w = (int)w;
    g->h = (int)h;
    g->rgb = knob_malloc(w * h * 3);
    if (!g->rgb) {
        memset(g, 0, sizeof *g);
        return knob_fail(err, KNOB_ERR_NOMEM, "grid: cannot allocate %zux%zu pixels", w, h);
    }
    memset(g->rgb, 255, w * h * 3);
    return KNOB_OK;
}

void knob_grid_tile(knob_grid *g, int i, const float *v, int norm)
{
    KNOB_ASSERT(i >= 0 && i < g->n);
    const size_t n = (size_t)g->th * (size_t)g->tw;
    float lo = INFINITY, hi = -INFINITY, amax = 0.0f;
    for (size_t k = 0; k < n; k++)
        if (isfinite(v[k])) {
            lo = fminf(lo, v[k]);
            hi = fmaxf(hi, v[k]);
            amax = fmaxf(amax, fabsf(v[k]));
        }
    const int x0 = tile_x(g, i), y0 = tile_y(g, i), s = g->scale;
    for (int ty = 0; ty < g->th; ty++)
        for (int tx = 0; tx < g->tw; tx++) {
            float val = v[(size_t)ty * (size_t)g->tw + (size_t)tx], grey;
            uint8_t r, gr, b;
            if (!isfinite(val)) {   /* nan / inf: red, so a broken value is seen, not hidden */
                r = 255;
                gr = b = 0;
            } else {
                if (norm == KNOB_GRID_SIGNED)
                    grey = amax > 0.0f ? 0.5f + val / (2.0f * amax) : 0.5f;
                else if (norm == KNOB_GRID_MINMAX)
                    grey = hi > lo ? (val - lo) / (hi - lo) : 0.5f;
                else
                    grey = val;
                grey = grey < 0.0f ? 0.0f : grey > 1.0f ? 1.0f : grey;
                r = gr = b = (uint8_t)(grey * 255.0f + 0.5f);
            }
            for (int dy = 0; dy < s; dy++)
                for (int dx = 0; dx < s; dx++)
                    put(g, x0 + tx * s + dx, y0 + ty * s + dy, r, gr, b);
        }
}

void knob_grid_label(knob_grid *g, int i, const char *text, uint8_t r, uint8_t gr, uint8_t b)
{
    KNOB_ASSERT(i >= 0 && i < g->n);
    if (!g->label_h)
        return;
    const int x0 = tile_x(g, i), y0 = tile_y(g, i) + tile_h(g), tw = tile_w(g);
    for (int y = 0; y < g->label_h; y++)   /* clear: a tile can be relabelled */
        for (int x = 0; x < tw; x++)
            put(g, x0 + x, y0 + y, 255, 255, 255);
    int n_fit = (tw + 1) / GLYPH_ADV, len = (int)strlen(text);
    int n = KNOB_MIN(len, n_fit);
    int x = x0 + (tw - (n * GLYPH_ADV - 1)) / 2;   /* centred under the tile */
    for (int k = 0; k < n; k++, x += GLYPH_ADV) {
        const char *rows = glyph_rows(text[k]);
        for (int gy = 0; gy < GLYPH_H; gy++)
            for (int gx = 0; gx < GLYPH_W; gx++)
                if (rows[gy * (GLYPH_W + 1) + gx] == '#')
                    put(g, x + gx, y0 + 1 + gy, r, gr, b);
    }
}

knob_status knob_grid_save(const knob_grid *g, const char *path, knob_err *err)
{
    return knob_png_write(path, g->w, g->h, 3, g->rgb, err);
}

void knob_grid_free(knob_grid *g)
{
    if (!g)
        return;
    knob_free(g->rgb);
    memset(g, 0, sizeof *g);
}
