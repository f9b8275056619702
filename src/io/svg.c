/* svg.c: small SVG charts (axes with "nice" ticks, lines, points, legends). Every number is printed
 * with a fixed format, so the same data gives the same bytes on every run and machine. The caller
 * opens the file (atomically, see knob_atomic_open) and passes the FILE. */
#include "knob_internal.h"

#include <math.h>
#include <string.h>

static void put_escaped(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

void knob_svg_begin(FILE *f, int width, int height)
{
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "font-family=\"sans-serif\">\n", width, height, width, height);
    fprintf(f, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", width, height);
}

void knob_svg_end(FILE *f) { fputs("</svg>\n", f); }

void knob_svg_text(FILE *f, double x, double y, const char *anchor, int size, const char *text)
{
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" font-size=\"%d\">", x, y, anchor, size);
    put_escaped(f, text);
    fputs("</text>\n", f);
}

static double map_x(const knob_chart *c, double x)
{
    return c->left + (x - c->xmin) / (c->xmax - c->xmin) * c->width;
}

static double map_y(const knob_chart *c, double y)
{
    double lo = c->ymin, hi = c->ymax;
    if (c->logy) {
        y = log10(y);
        lo = log10(lo);
        hi = log10(hi);
    }
    return c->top + c->height - (y - lo) / (hi - lo) * c->height;
}

static int inside_y(const knob_chart *c, double y)
{
    return isfinite(y) && y >= c->ymin && y <= c->ymax && (!c->logy || y > 0);
}

/* A tick step of 1, 2 or 5 times a power of ten giving about n ticks over span. */
static double nice_step(double span, int n)
{
    double raw = span / n, p = pow(10, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

static void tick_label(char *buf, size_t size, double v, double step)
{
    int decimals = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (fabs(v) < step * 1e-6)
        v = 0;
    snprintf(buf, size, "%.*f", decimals, v);
}

void knob_chart_axes(FILE *f, const knob_chart *c)
{
    char buf[64];
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#444\"/>\n",
            c->left, c->top, c->width, c->height);
    double step = nice_step(c->xmax - c->xmin, 6);
    for (double v = ceil(c->xmin / step) * step; v <= c->xmax + step * 1e-9; v += step) {
        double px = map_x(c, v);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", px, c->top, px,
                c->top + c->height);
        tick_label(buf, sizeof buf, v, step);
        knob_svg_text(f, px, c->top + c->height + 16, "middle", 11, buf);
    }
    if (c->logy) {
        for (double e = floor(log10(c->ymin)); e <= ceil(log10(c->ymax)); e++) {
            double v = pow(10, e);
            if (v < c->ymin || v > c->ymax)
                continue;
            double py = map_y(c, v);
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", c->left, py,
                    c->left + c->width, py);
            snprintf(buf, sizeof buf, "1e%d", (int)e);
            knob_svg_text(f, c->left - 6, py + 4, "end", 11, buf);
        }
    } else {
        step = nice_step(c->ymax - c->ymin, 6);
        for (double v = ceil(c->ymin / step) * step; v <= c->ymax + step * 1e-9; v += step) {
            double py = map_y(c, v);
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", c->left, py,
                    c->left + c->width, py);
            tick_label(buf, sizeof buf, v, step);
            knob_svg_text(f, c->left - 6, py + 4, "end", 11, buf);
        }
    }
    if (c->title)
        knob_svg_text(f, c->left + c->width / 2, c->top - 10, "middle", 14, c->title);
    if (c->xlabel)
        knob_svg_text(f, c->left + c->width / 2, c->top + c->height + 36, "middle", 12, c->xlabel);
    if (c->ylabel) {
        fprintf(f, "<g transform=\"translate(%.1f %.1f) rotate(-90)\">\n", c->left - 44, c->top + c->height / 2);
        knob_svg_text(f, 0, 0, "middle", 12, c->ylabel);
        fputs("</g>\n", f);
    }
}

void knob_chart_line(FILE *f, const knob_chart *c, const double *x, const double *y, int n, const char *color,
                     int dashed)
{
    int open = 0;
    for (int i = 0; i < n; i++) {
        if (!inside_y(c, y[i]) || x[i] < c->xmin || x[i] > c->xmax) {
            if (open)
                fputs("\"/>\n", f);
            open = 0;
            continue;
        }
        if (!open)
            fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"", color,
                    dashed ? " stroke-dasharray=\"6 4\"" : "");
        fprintf(f, "%s%.1f,%.1f", open ? " " : "", map_x(c, x[i]), map_y(c, y[i]));
        open = 1;
    }
    if (open)
        fputs("\"/>\n", f);
}

void knob_chart_points(FILE *f, const knob_chart *c, const double *x, const double *y, int n, const char *color,
                       int hollow)
{
    for (int i = 0; i < n; i++)
        if (inside_y(c, y[i]) && x[i] >= c->xmin && x[i] <= c->xmax)
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\" stroke=\"%s\"/>\n", map_x(c, x[i]),
                    map_y(c, y[i]), hollow ? "white" : color, color);
}

void knob_chart_vline(FILE *f, const knob_chart *c, double x, const char *color, const char *label)
{
    double px = map_x(c, x);
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-dasharray=\"2 3\"/>\n", px,
            c->top, px, c->top + c->height, color);
    if (label)
        knob_svg_text(f, px + 4, c->top + c->height - 6, "start", 10, label);
}

void knob_chart_legend_at(FILE *f, double x, double y, double w, int n, const char *const *labels,
                          const char *const *colors, const int *dashed)
{
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"white\" "
               "fill-opacity=\"0.9\" stroke=\"#bbb\"/>\n", x, y, w, 8.0 + 16.0 * n);
    for (int i = 0; i < n; i++) {
        double ly = y + 12 + 16 * i;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2.5\"%s/>\n",
                x + 6, ly, x + 28, ly, colors[i], dashed && dashed[i] ? " stroke-dasharray=\"5,3\"" : "");
        knob_svg_text(f, x + 34, ly + 4, "start", 11, labels[i]);
    }
}

void knob_chart_legend(FILE *f, const knob_chart *c, int n, const char *const *labels, const char *const *colors)
{
    double x = c->left + 10, y = c->top + 10;
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"170\" height=\"%d\" fill=\"white\" fill-opacity=\"0.85\" stroke=\"#bbb\"/>\n",
            x, y, 8 + 16 * n);
    for (int i = 0; i < n; i++) {
        double ly = y + 14 + 16 * i;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"3\"/>\n", x + 6,
                ly - 4, x + 26, ly - 4, colors[i]);
        knob_svg_text(f, x + 32, ly, "start", 11, labels[i]);
    }
}

void knob_range(const double *v, int n, double *lo, double *hi)
{
    double a = INFINITY, b = -INFINITY;
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) {
            a = v[i] < a ? v[i] : a;
            b = v[i] > b ? v[i] : b;
        }
    if (!(a <= b)) {
        a = 0;
        b = 1;
    }
    double m = (b - a) * 0.05;
    if (m == 0)
        m = fabs(a) * 0.05 + 1e-3;
    *lo = a - m;
    *hi = b + m;
}

/* ------------------------------------------------------------------------------------------------
 * Heat maps, colour bars and contour lines (the tour's landscapes and decision regions).
 *
 * A field z (ny, nx) lives on grid nodes that span the chart's range: node (i, j) is at
 * x = xmin + i (xmax - xmin) / (nx - 1), y = ymin + j (ymax - ymin) / (ny - 1), and z[j nx + i] is
 * its value. A heat map paints each node's cell (the node in its middle, cut at the frame); contour
 * lines are found by marching squares over the cells between nodes. */

/* anchor colours of the two maps, evenly spaced in t; linear in between */
static const uint8_t cmap_seq[][3] = {
    {48, 18, 59}, {65, 69, 171}, {62, 125, 227}, {41, 178, 205}, {53, 220, 145},
    {131, 245, 84}, {203, 234, 50}, {250, 186, 57}, {246, 117, 26}, {203, 52, 7},
};
static const uint8_t cmap_div[][3] = {
    {33, 102, 172}, {103, 169, 207}, {209, 229, 240}, {247, 247, 247}, {253, 219, 199}, {239, 138, 98},
    {178, 24, 43},
};

void knob_cmap_rgb(knob_cmap m, double t, uint8_t rgb[3])
{
    if (!isfinite(t)) {
        rgb[0] = rgb[1] = rgb[2] = 160;
        return;
    }
    const uint8_t(*a)[3] = m == KNOB_CMAP_DIVERGING ? cmap_div : cmap_seq;
    int n = m == KNOB_CMAP_DIVERGING ? (int)(sizeof cmap_div / sizeof cmap_div[0])
                                     : (int)(sizeof cmap_seq / sizeof cmap_seq[0]);
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    double u = t * (n - 1);
    int k = (int)u;
    if (k >= n - 1)
        k = n - 2;
    double w = u - k;
    for (int c = 0; c < 3; c++)
        rgb[c] = (uint8_t)lround(a[k][c] + w * (a[k + 1][c] - a[k][c]));
}

/* t in [0, 1] of value v on [lo, hi] (log10 scale when logz; v <= 0 is then below the range) */
static double cmap_t(double v, double lo, double hi, int logz)
{
    if (logz) {
        if (!(v > 0))
            return isnan(v) ? v : 0;
        v = log10(v);
        lo = log10(lo);
        hi = log10(hi);
    }
    return hi > lo ? (v - lo) / (hi - lo) : 0.5;
}

static double node_x(const knob_chart *c, int i, int nx) { return c->xmin + (c->xmax - c->xmin) * i / (nx - 1); }
static double node_y(const knob_chart *c, int j, int ny) { return c->ymin + (c->ymax - c->ymin) * j / (ny - 1); }

void knob_chart_heatmap(FILE *f, const knob_chart *c, const double *z, int nx, int ny, double zmin, double zmax,
                        knob_cmap m, int logz)
{
    if (nx < 2 || ny < 2)
        return;
    double cw = c->width / (nx - 1), ch = c->height / (ny - 1);
    fputs("<g shape-rendering=\"crispEdges\">\n", f);
    for (int j = 0; j < ny; j++) {
        double py = map_y(c, node_y(c, j, ny));
        double y0 = fmax(c->top, py - ch / 2), y1 = fmin(c->top + c->height, py + ch / 2);
        /* a run of cells of one (quantised) colour is one rect */
        int run = 0;
        uint8_t prev[3] = {0, 0, 0};
        double x_run = 0;
        for (int i = 0; i <= nx; i++) {
            uint8_t rgb[3] = {0, 0, 0};
            double px = 0;
            if (i < nx) {
                double t = cmap_t(z[(size_t)j * nx + i], zmin, zmax, logz);
                if (isfinite(t))
                    t = floor(t * 255 + 0.5) / 255;
                knob_cmap_rgb(m, t, rgb);
                px = fmax(c->left, map_x(c, node_x(c, i, nx)) - cw / 2);
            }
            if (run && (i == nx || memcmp(rgb, prev, 3) != 0)) {
                double x_end = i < nx ? px : c->left + c->width;
                fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#%02x%02x%02x\"/>\n",
                        x_run, y0, x_end - x_run + 0.3, y1 - y0 + 0.3, prev[0], prev[1], prev[2]);
                run = 0;
            }
            if (i < nx && !run) {
                run = 1;
                x_run = px;
                memcpy(prev, rgb, 3);
            }
        }
    }
    fputs("</g>\n", f);
}

void knob_chart_colorbar(FILE *f, const knob_chart *c, double zmin, double zmax, knob_cmap m, int logz,
                         const char *label)
{
    double x = c->left + c->width + 14, w = 14, top = c->top, h = c->height;
    enum { STEPS = 64 };
    for (int k = 0; k < STEPS; k++) {
        uint8_t rgb[3];
        knob_cmap_rgb(m, (k + 0.5) / STEPS, rgb);
        double y = top + h - (k + 1) * h / STEPS;
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#%02x%02x%02x\"/>\n", x, y, w,
                h / STEPS + 0.3, rgb[0], rgb[1], rgb[2]);
    }
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#444\"/>\n", x, top,
            w, h);
    char buf[64];
    if (logz && zmin > 0 && zmax > zmin) {
        for (double e = ceil(log10(zmin) - 1e-9); e <= floor(log10(zmax) + 1e-9); e++) {
            double py = top + h - cmap_t(pow(10, e), zmin, zmax, 1) * h;
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\"/>\n", x + w, py,
                    x + w + 4, py);
            snprintf(buf, sizeof buf, "1e%d", (int)e);
            knob_svg_text(f, x + w + 6, py + 4, "start", 10, buf);
        }
    } else if (zmax > zmin) {
        double step = nice_step(zmax - zmin, 5);
        for (double v = ceil(zmin / step) * step; v <= zmax + step * 1e-9; v += step) {
            double py = top + h - (v - zmin) / (zmax - zmin) * h;
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\"/>\n", x + w, py,
                    x + w + 4, py);
            tick_label(buf, sizeof buf, v, step);
            knob_svg_text(f, x + w + 6, py + 4, "start", 10, buf);
        }
    }
    if (label) {
        fprintf(f, "<g transform=\"translate(%.1f %.1f) rotate(90)\">\n", x + w + 40, top + h / 2);
        knob_svg_text(f, 0, 0, "middle", 12, label);
        fputs("</g>\n", f);
    }
}

/* Marching squares in one cell: corners a = z(i, j), b = z(i+1, j), cc = z(i+1, j+1), d = z(i, j+1)
 * (counter-clockwise). Each edge where the field crosses level gets a point by linear
 * interpolation; the points pair up into 0, 1 or 2 segments (a saddle is split by the cell's mean).
 * out: up to 2 segments (x0, y0, x1, y1) in cell units from corner a. Returns the count. */
static int cell_segments(double a, double b, double cc, double d, double level, double out[8])
{
    if (!(isfinite(a) && isfinite(b) && isfinite(cc) && isfinite(d)))
        return 0;
    int code = (a >= level) | (b >= level) << 1 | (cc >= level) << 2 | (d >= level) << 3;
    if (code == 0 || code == 15)
        return 0;
    /* crossing points on the edges 0 ab (y 0), 1 b-cc (x 1), 2 cc-d (y 1), 3 d-a (x 0) */
    double p[4][2] = {{0, 0}, {1, 0}, {0, 1}, {0, 0}};
    if ((a >= level) != (b >= level))
        p[0][0] = (level - a) / (b - a);
    if ((b >= level) != (cc >= level))
        p[1][1] = (level - b) / (cc - b);
    if ((d >= level) != (cc >= level))
        p[2][0] = (level - d) / (cc - d);
    if ((a >= level) != (d >= level))
        p[3][1] = (level - a) / (d - a);
    /* edges crossed, per code: pairs of edges joined */
    static const signed char pairs[16][4] = {
        {-1, -1, -1, -1}, {3, 0, -1, -1}, {0, 1, -1, -1}, {3, 1, -1, -1}, {1, 2, -1, -1}, {3, 0, 1, 2},
        {0, 2, -1, -1},   {3, 2, -1, -1}, {2, 3, -1, -1}, {0, 2, -1, -1}, {0, 1, 2, 3},   {1, 2, -1, -1},
        {1, 3, -1, -1},   {0, 1, -1, -1}, {3, 0, -1, -1}, {-1, -1, -1, -1},
    };
    signed char e[4];
    memcpy(e, pairs[code], 4);
    if ((code == 5 || code == 10) && (a + b + cc + d) / 4 >= level) {
        /* saddle with the middle above the level: the two corners above are joined through it, so
         * the segments cut off the two corners below instead */
        static const signed char alt5[4] = {0, 1, 2, 3}, alt10[4] = {3, 0, 1, 2};
        memcpy(e, code == 5 ? alt5 : alt10, 4);
    }
    int n = 0;
    for (int k = 0; k < 4 && e[k] >= 0; k += 2, n++) {
        out[4 * n + 0] = p[e[k]][0];
        out[4 * n + 1] = p[e[k]][1];
        out[4 * n + 2] = p[e[k + 1]][0];
        out[4 * n + 3] = p[e[k + 1]][1];
    }
    return n;
}

long knob_contour_segments(const double *z, int nx, int ny, double level, double *seg, long cap)
{
    long n = 0;
    for (int j = 0; j + 1 < ny; j++)
        for (int i = 0; i + 1 < nx; i++) {
            double s[8];
            const double *r0 = z + (size_t)j * nx, *r1 = r0 + nx;
            int k = cell_segments(r0[i], r0[i + 1], r1[i + 1], r1[i], level, s);
            for (int q = 0; q < k; q++, n++)
                if (seg && n < cap) {
                    seg[4 * n + 0] = i + s[4 * q + 0];
                    seg[4 * n + 1] = j + s[4 * q + 1];
                    seg[4 * n + 2] = i + s[4 * q + 2];
                    seg[4 * n + 3] = j + s[4 * q + 3];
                }
        }
    return n;
}

void knob_chart_contour(FILE *f, const knob_chart *c, const double *z, int nx, int ny, const double *levels,
                        int n_levels, const char *color)
{
    if (nx < 2 || ny < 2)
        return;
    double sx = c->width / (nx - 1), sy = c->height / (ny - 1);
    for (int l = 0; l < n_levels; l++) {
        fprintf(f, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"1.3\" stroke-opacity=\"0.85\" d=\"", color);
        for (int j = 0; j + 1 < ny; j++)
            for (int i = 0; i + 1 < nx; i++) {
                double s[8];
                const double *r0 = z + (size_t)j * nx, *r1 = r0 + nx;
                int k = cell_segments(r0[i], r0[i + 1], r1[i + 1], r1[i], levels[l], s);
                for (int q = 0; q < k; q++)
                    fprintf(f, "M%.1f %.1fL%.1f %.1f", c->left + (i + s[4 * q]) * sx,
                            c->top + c->height - (j + s[4 * q + 1]) * sy, c->left + (i + s[4 * q + 2]) * sx,
                            c->top + c->height - (j + s[4 * q + 3]) * sy);
            }
        fputs("\"/>\n", f);
    }
}

/* ------------------------------------------------------------------------------------------------
 * Fields and curves in panels, each picture one file written atomically. */

enum { FP_LEFT = 64, FP_PLOT = 280, FP_RIGHT = 96, FP_TOP = 64, FP_BOTTOM = 92 };

/* a legend in rows under a panel's axis label: a line sample (dot 0) or a dot (dot 1) per entry */
static void legend_below(FILE *f, const knob_chart *c, int n, const char *const *labels, const char *const *colors,
                         const int *dot)
{
    double x = c->left - 40, y = c->top + c->height + 58, right = c->left + c->width + FP_RIGHT - 8;
    for (int i = 0; i < n; i++) {
        double w = 30 + 6.0 * (double)strlen(labels[i]);
        if (x + w > right && x > c->left - 40) {
            x = c->left - 40;
            y += 16;
        }
        if (dot[i])
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\" stroke=\"#111\" stroke-width=\"0.7\"/>\n",
                    x + 12, y - 4, colors[i]);
        else
            fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"22\" height=\"8\" fill=\"#777\"/>"
                       "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"3\"/>\n",
                    x + 1, y - 8, x + 2, y - 4, x + 22, y - 4, colors[i]);
        knob_svg_text(f, x + 28, y, "start", 11, labels[i]);
        x += w;
    }
}

knob_status knob_fields_svg(const char *path, const knob_field_plot *p, const knob_field_panel *panels, int n,
                            knob_err *err)
{
    if (n < 1 || p->nx < 2 || p->ny < 2 || !(p->x1 > p->x0) || !(p->y1 > p->y0) || !(p->zmax > p->zmin) ||
        (p->logz && !(p->zmin > 0)))
        return knob_fail(err, KNOB_ERR_USAGE, "%s: a field picture needs panels, a 2x2 grid or more and ranges "
                         "with lo < hi (zmin > 0 on a log scale)", path);
    int cols = p->cols > 0 && p->cols < n ? p->cols : n, rows = (n + cols - 1) / cols;
    int pw = FP_LEFT + FP_PLOT + FP_RIGHT, ph = FP_TOP + FP_PLOT + FP_BOTTOM;
    int W = cols * pw, H = rows * ph + (p->title ? 8 : 0);
    knob_atomic a;
    knob_status s = knob_atomic_open(&a, path, err);
    if (s)
        return s;
    FILE *f = a.f;
    knob_svg_begin(f, W, H);
    if (p->title)
        knob_svg_text(f, W / 2.0, 22, "middle", 16, p->title);
    double levels[64];
    int n_levels = p->n_levels > 64 ? 64 : p->n_levels > 0 ? p->n_levels : 0;
    for (int k = 0; k < n_levels; k++) {
        double t = (k + 1.0) / (n_levels + 1.0);
        levels[k] = p->logz ? pow(10, log10(p->zmin) + t * (log10(p->zmax) - log10(p->zmin)))
                            : p->zmin + t * (p->zmax - p->zmin);
    }
    static const char *const class_fill[2] = {"#2166ac", "#ef8a62"};
    for (int k = 0; k < n; k++) {
        const knob_field_panel *q = &panels[k];
        knob_chart c = {.left = (k % cols) * pw + FP_LEFT, .top = (k / cols) * ph + FP_TOP + (p->title ? 8 : 0),
                        .width = FP_PLOT, .height = FP_PLOT, .xmin = p->x0, .xmax = p->x1, .ymin = p->y0,
                        .ymax = p->y1, .title = q->title, .xlabel = p->xlabel, .ylabel = p->ylabel};
        if (q->z) {
            knob_chart_heatmap(f, &c, q->z, p->nx, p->ny, p->zmin, p->zmax, p->cmap, p->logz);
            if (n_levels)
                knob_chart_contour(f, &c, q->z, p->nx, p->ny, levels, n_levels, "#222");
        }
        knob_chart_axes(f, &c);
        knob_chart_colorbar(f, &c, p->zmin, p->zmax, p->cmap, p->logz, p->zlabel);
        for (int i = 0; i < q->n_points; i++) {
            double x = q->points[2 * i], y = q->points[2 * i + 1];
            if (x < c.xmin || x > c.xmax || y < c.ymin || y > c.ymax)
                continue;
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\" stroke=\"#111\" stroke-width=\"0.7\"/>\n",
                    map_x(&c, x), map_y(&c, y), class_fill[q->classes[i] ? 1 : 0]);
        }
        const char *labels[12], *colors[12];
        int n_leg = 0, dot[12];
        for (int j = 0; j < q->n_paths; j++) {
            const knob_field_path *pa = &q->paths[j];
            double xs[1024], ys[1024];
            int m = KNOB_MIN(1024, pa->n);   /* a path is a few hundred steps at most */
            for (int i = 0; i < m; i++) {
                xs[i] = pa->xy[2 * i];
                ys[i] = pa->xy[2 * i + 1];
            }
            knob_chart_line(f, &c, xs, ys, m, pa->color, 0);
            if (m > 0 && xs[0] >= c.xmin && xs[0] <= c.xmax && ys[0] >= c.ymin && ys[0] <= c.ymax)
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"white\" stroke=\"%s\" stroke-width=\"2\"/>\n",
                        map_x(&c, xs[0]), map_y(&c, ys[0]), pa->color);
            if (pa->label && n_leg < 10) {
                labels[n_leg] = pa->label;
                dot[n_leg] = 0;
                colors[n_leg++] = pa->color;
            }
        }
        if (q->n_points && p->class_names[0] && p->class_names[1] && n_leg < 10) {
            labels[n_leg] = p->class_names[0];
            dot[n_leg] = 1;
            colors[n_leg++] = class_fill[0];
            labels[n_leg] = p->class_names[1];
            dot[n_leg] = 1;
            colors[n_leg++] = class_fill[1];
        }
        if (n_leg)
            legend_below(f, &c, n_leg, labels, colors, dot);
    }
    knob_svg_end(f);
    return knob_atomic_commit(&a, err);
}

/* The legend box (as knob_chart_legend draws it) in whichever corner of the chart the curves cross
 * least: every curve is sampled along its segments and the samples inside each corner's box
 * counted. */
static void legend_free_corner(FILE *f, const knob_chart *c, const knob_curve_panel *q, int n,
                               const char *const *labels, const char *const *colors)
{
    double bw = 170, bh = 8 + 16.0 * n;
    double cx[4] = {c->left + 10, c->left + c->width - bw - 10, c->left + 10, c->left + c->width - bw - 10};
    double cy[4] = {c->top + 10, c->top + 10, c->top + c->height - bh - 10, c->top + c->height - bh - 10};
    long hits[4] = {0, 0, 0, 0};
    for (int j = 0; j < q->n; j++) {
        const knob_curve *cu = &q->curves[j];
        for (int i = 0; i < cu->n; i++) {
            int m = i + 1 < cu->n && cu->dots != 2 ? 8 : 1;
            for (int k = 0; k < m; k++) {
                double x = cu->x[i], y = cu->y[i];
                if (m > 1) {
                    double u = (double)k / m;
                    x += u * (cu->x[i + 1] - x);
                    y = c->logy && y > 0 && cu->y[i + 1] > 0 ? pow(10, log10(y) + u * (log10(cu->y[i + 1]) - log10(y)))
                                                          : y + u * (cu->y[i + 1] - y);
                }
                if (!inside_y(c, y) || x < c->xmin || x > c->xmax)
                    continue;
                double px = map_x(c, x), py = map_y(c, y);
                for (int b = 0; b < 4; b++)
                    hits[b] += px >= cx[b] - 4 && px <= cx[b] + bw + 4 && py >= cy[b] - 4 && py <= cy[b] + bh + 4;
            }
        }
    }
    int best = 0;
    for (int b = 1; b < 4; b++)
        if (hits[b] < hits[best])
            best = b;
    knob_chart at = *c;
    at.left = cx[best] - 10;
    at.top = cy[best] - 10;
    knob_chart_legend(f, &at, n, labels, colors);
}

enum { CP_LEFT = 72, CP_PLOT_W = 330, CP_RIGHT = 28, CP_TOP = 60, CP_PLOT_H = 240, CP_BOTTOM = 52 };

knob_status knob_curves_svg(const char *path, const char *title, const knob_curve_panel *panels, int n,
                            knob_err *err)
{
    if (n < 1)
        return knob_fail(err, KNOB_ERR_USAGE, "%s: a curve picture needs at least one panel", path);
    int pw = CP_LEFT + CP_PLOT_W + CP_RIGHT, ph = CP_TOP + CP_PLOT_H + CP_BOTTOM;
    int W = n * pw, H = ph + (title ? 8 : 0);
    knob_atomic a;
    knob_status s = knob_atomic_open(&a, path, err);
    if (s)
        return s;
    FILE *f = a.f;
    knob_svg_begin(f, W, H);
    if (title)
        knob_svg_text(f, W / 2.0, 22, "middle", 16, title);
    for (int k = 0; k < n; k++) {
        const knob_curve_panel *q = &panels[k];
        double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
        for (int j = 0; j < q->n; j++)
            for (int i = 0; i < q->curves[j].n; i++) {
                double x = q->curves[j].x[i], y = q->curves[j].y[i];
                if (!isfinite(x) || !isfinite(y) || (q->logy && !(y > 0)))
                    continue;
                xlo = fmin(xlo, x), xhi = fmax(xhi, x), ylo = fmin(ylo, y), yhi = fmax(yhi, y);
            }
        if (!(xlo < xhi))
            xlo = isfinite(xlo) ? xlo - 1 : 0, xhi = isfinite(xhi) ? xhi + 1 : 1;
        if (q->ymin != 0 || q->ymax != 0)
            ylo = q->ymin, yhi = q->ymax;
        else if (q->logy) {
            if (!(ylo <= yhi))
                ylo = 0.1, yhi = 1;
            ylo /= 1.25, yhi *= 1.25;
            if (yhi / ylo < 10)
                ylo = yhi / 10;
        } else {
            double v[2] = {isfinite(ylo) ? ylo : 0, isfinite(yhi) ? yhi : 1};
            knob_range(v, 2, &ylo, &yhi);
        }
        knob_chart c = {.left = k * pw + CP_LEFT, .top = CP_TOP + (title ? 8 : 0), .width = CP_PLOT_W,
                        .height = CP_PLOT_H, .xmin = xlo, .xmax = xhi, .ymin = ylo, .ymax = yhi, .logy = q->logy,
                        .title = q->title, .xlabel = q->xlabel, .ylabel = q->ylabel};
        knob_chart_axes(f, &c);
        const char *labels[16], *colors[16];
        int n_leg = 0;
        for (int j = 0; j < q->n; j++) {
            const knob_curve *cu = &q->curves[j];
            if (cu->dots != 2)
                knob_chart_line(f, &c, cu->x, cu->y, cu->n, cu->color, cu->dashed);
            if (cu->dots)
                knob_chart_points(f, &c, cu->x, cu->y, cu->n, cu->color, 0);
            if (cu->label && n_leg < 16) {
                labels[n_leg] = cu->label;
                colors[n_leg++] = cu->color;
            }
        }
        if (n_leg > 1)
            legend_free_corner(f, &c, q, n_leg, labels, colors);
    }
    knob_svg_end(f);
    return knob_atomic_commit(&a, err);
}
