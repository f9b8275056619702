/* augment.c: data augmentation for single-channel images: random shifts, rotations, zooms and
 * pixel noise, so the net sees a varied version of each example every epoch.
 *
 * One geometric warp does shift, rotation and zoom together by inverse mapping: for every output
 * pixel, find the point of the input it came from and sample it bilinearly (0 outside the image).
 * With no rotation and no zoom the warp is a pure integer shift and copies pixels exactly.
 * Nothing here allocates, so it can run inside a training step. Random draws come from the
 * caller's knob_rng in a fixed order (shift x, shift y, angle, zoom, then noise per pixel), and
 * only for the parts that are on, so the same seed gives the same images.
 */
#include "knob_internal.h"

#include <math.h>
#include <string.h>

int knob_augment_active(const knob_augment *a)
{
    return a && (a->shift > 0 || a->rotate_deg > 0 || a->scale > 0 || a->noise > 0);
}

static inline float px_at(const float *in, int h, int w, int y, int x)
{
    return (y >= 0 && y < h && x >= 0 && x < w) ? in[(size_t)y * (size_t)w + (size_t)x] : 0.0f;
}

/* Sines and cosines this close to 0 or +-1 are taken as exact, so a rotation by a multiple of 90
 * degrees (whose cosine is 6e-17, not 0, in floating point) still moves pixels exactly. */
static double snap_unit(double v)
{
    if (fabs(v) < 1e-12)
        return 0.0;
    if (fabs(v - 1.0) < 1e-12)
        return 1.0;
    if (fabs(v + 1.0) < 1e-12)
        return -1.0;
    return v;
}

/* Inverse map, with (u, v) = (x, y) relative to the centre ((w-1)/2, (h-1)/2), y pointing down.
 * Forward: zoom by z, rotate counter-clockwise as displayed by t, then shift by (dx, dy):
 *     u' = z (u cos t + v sin t) + dx,   v' = z (-u sin t + v cos t) + dy
 * so the source of output (u', v') is
 *     u = ((u'-dx) cos t - (v'-dy) sin t) / z,   v = ((u'-dx) sin t + (v'-dy) cos t) / z.
 * The source point moves by (c, s) per output column, so each row starts from one product and
 * then only adds. */
void knob_augment_warp(const float *in, float *out, int h, int w, float deg, float zoom, float dx, float dy)
{
    if (deg == 0.0f && zoom == 1.0f && dx == floorf(dx) && dy == floorf(dy)) {
        int sx = (int)dx, sy = (int)dy;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                out[(size_t)y * (size_t)w + (size_t)x] = px_at(in, h, w, y - sy, x - sx);
        return;
    }
    const double t = (double)deg * (3.14159265358979323846 / 180.0);
    const double c = snap_unit(cos(t)) / (double)zoom, s = snap_unit(sin(t)) / (double)zoom;
    const double cx = 0.5 * (w - 1), cy = 0.5 * (h - 1);
    for (int y = 0; y < h; y++) {
        const double v = y - cy - (double)dy, u0 = -cx - (double)dx;
        for (int x = 0; x < w; x++) {
            const double u = u0 + x;
            const double su = u * c - v * s + cx, sv = u * s + v * c + cy;
            float val = 0.0f;
            if (su > -1.0 && su < w && sv > -1.0 && sv < h) {
                int x0 = (int)(su + 1.0) - 1, y0 = (int)(sv + 1.0) - 1;   /* floor, as su, sv > -1 */
                float fx = (float)(su - x0), fy = (float)(sv - y0);
                float a = px_at(in, h, w, y0, x0), b = px_at(in, h, w, y0, x0 + 1);
                float d = px_at(in, h, w, y0 + 1, x0), e = px_at(in, h, w, y0 + 1, x0 + 1);
                val = (1.0f - fy) * ((1.0f - fx) * a + fx * b) + fy * ((1.0f - fx) * d + fx * e);
            }
            out[(size_t)y * (size_t)w + (size_t)x] = val;
        }
    }
}

/* Gaussian noise by Marsaglia's polar method (a pair of normals per accepted point of the unit
 * disc, one log and one square root, no trigonometry), added and clamped to [0, 1]. */
static void add_noise(float *out, size_t n, float std, knob_rng *r)
{
    for (size_t i = 0; i < n; i += 2) {
        float u, v, q;
        do {
            u = 2.0f * knob_rng_uniform(r) - 1.0f;
            v = 2.0f * knob_rng_uniform(r) - 1.0f;
            q = u * u + v * v;
        } while (q >= 1.0f || q == 0.0f);
        const float m = sqrtf(-2.0f * logf(q) / q);
        const float z[2] = {u * m, v * m};
        for (size_t k = 0; k < 2 && i + k < n; k++) {
            float val = out[i + k] + std * z[k];
            out[i + k] = val < 0.0f ? 0.0f : val > 1.0f ? 1.0f : val;
        }
    }
}

void knob_augment_apply(const knob_augment *a, const float *in, float *out, int h, int w, knob_rng *r)
{
    const size_t n = (size_t)h * (size_t)w;
    if (!knob_augment_active(a)) {
        memcpy(out, in, n * sizeof(float));
        return;
    }
    float dx = 0.0f, dy = 0.0f, deg = 0.0f, zoom = 1.0f;
    if (a->shift > 0) {
        uint32_t span = 2u * (uint32_t)a->shift + 1u;
        dx = (float)((int)knob_rng_below(r, span) - a->shift);
        dy = (float)((int)knob_rng_below(r, span) - a->shift);
    }
    if (a->rotate_deg > 0)
        deg = a->rotate_deg * (2.0f * knob_rng_uniform(r) - 1.0f);
    if (a->scale > 0)
        zoom = 1.0f + a->scale * (2.0f * knob_rng_uniform(r) - 1.0f);
    if (zoom < 1e-3f)   /* a scale of 1 or more could draw a zero zoom: keep it invertible */
        zoom = 1e-3f;
    knob_augment_warp(in, out, h, w, deg, zoom, dx, dy);
    if (a->noise > 0)
        add_noise(out, n, a->noise, r);
}
