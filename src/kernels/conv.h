/* conv.h: image kernels for 2-D convolution over NCHW tensors (src/kernels/conv.c): im2col, its
 * adjoint col2im, and a naive direct convolution kept as the reference for tests. Pure loops over
 * pointers and sizes; no graph, no allocation.
 *
 * Layout of a column matrix for one image x (C, H, W), kernel KH x KW, stride s, zero padding p,
 * output OH x OW (OH = (H + 2p - KH) / s + 1, likewise OW):
 *     cols (C*KH*KW, OH*OW),  row r = (c*KH + kh)*KW + kw,  column q = oh*OW + ow,
 *     cols[r][q] = x[c][oh*s - p + kh][ow*s - p + kw], or 0 where that falls in the padding.
 * A weight tensor (OC, C, KH, KW) read as a matrix (OC, C*KH*KW) uses the same row order, so one
 * image's convolution is the product w @ cols -> (OC, OH*OW). */
#ifndef KNOB_KERNELS_CONV_H
#define KNOB_KERNELS_CONV_H

/* Output size along one axis: (n + 2 pad - k) / stride + 1; callers check that n + 2 pad >= k. */
int knob_conv_out_size(int n, int k, int stride, int pad);

/* cols (C*KH*KW, OH*OW) = im2col(x (C, H, W)); every element of cols is written. */
void knob_im2col(const float *x, int C, int H, int W, int KH, int KW, int stride, int pad,
                 float *cols);

/* dx (C, H, W) += col2im(dcols (C*KH*KW, OH*OW)): the adjoint (transpose) of im2col, so each
 * element of dx receives the sum of the columns entries that copied it, in a fixed order. */
void knob_col2im(const float *dcols, int C, int H, int W, int KH, int KW, int stride, int pad,
                 float *dx);

/* Reference, for tests: y (B, OC, OH, OW) = direct convolution of x (B, C, H, W) with
 * w (OC, C, KH, KW), plus b (OC) when b is not NULL; accumulates in double. */
void knob_conv2d_naive(const float *x, const float *w, const float *b, int B, int C, int H, int W,
                       int OC, int KH, int KW, int stride, int pad, float *y);

#endif /* KNOB_KERNELS_CONV_H */
