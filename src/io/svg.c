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
