/* LSQ's fake quantizer and its gradient rule in one pass each, with the torch code's numbers bit
 * for bit (function.py).
 *
 * Why C: the torch version is 4 elementwise ops forward and about 10 backward (divide, two
 * compares, three masked fills, round, subtract, multiply), each a pass over memory with its
 * own fixed cost; on the micro ViT's small activations those fixed costs were most of LSQ's
 * overhead over an FP32 step. Here each direction is one loop; the step's gradient is still
 * summed by torch (sum_to_size) over the elementwise products this writes, so it keeps torch's
 * summation order.
 *
 * Bit-identity: the same float32 operations in the same order (compiled with -ffp-contract=off:
 * nothing fused), round half to even as torch.round (the current rounding mode, which torch
 * leaves at the default), clamp that keeps NaN, as torch.clamp does.
 *
 * The step s is per tensor (inner = n) or per leading channel: element i uses s[i / inner]. The
 * exported functions split the n elements into one contiguous range per thread of torch's OpenMP
 * pool (threads from qbench.api.kernel_threads); each element is computed alone, so the split
 * changes no value.
 * Plain C, no Python or torch headers; loaded with ctypes (kernel.py).
 */
#include <math.h>
#include <omp.h>
#include <stdint.h>

/* s' = max(s, eps) as torch.clamp_min computes it (NaN compares false: it stays NaN) */
static inline float floor_eps(float s, float eps) { return s < eps ? eps : s; }

/* out = round(clamp(x / s', lo, hi)) * s' */
static void forward_range(int64_t begin, int64_t end, const float *restrict x, const float *restrict s,
                          int64_t inner, float lo, float hi, float eps, float *restrict out) {
    for (int64_t i = begin; i < end;) {
        int64_t stop = (i / inner + 1) * inner;
        float si = floor_eps(s[i / inner], eps);
        for (stop = stop < end ? stop : end; i < stop; i++) {
            float v = x[i] / si;
            v = v < lo ? lo : v; /* NaN compares false: it stays NaN, as in torch.clamp */
            v = v > hi ? hi : v;
            out[i] = nearbyintf(v) * si;
        }
    }
}

/* grad_x = g masked to 0 where v <= lo or v >= hi; prod = g * ds with ds = round(v) - v inside,
 * lo below, hi above (v = x / s'). */
static void backward_range(int64_t begin, int64_t end, const float *restrict x, const float *restrict s,
                           const float *restrict g, int64_t inner, float lo, float hi, float eps,
                           float *restrict grad_x, float *restrict prod) {
    for (int64_t i = begin; i < end;) {
        int64_t stop = (i / inner + 1) * inner;
        float si = floor_eps(s[i / inner], eps);
        for (stop = stop < end ? stop : end; i < stop; i++) {
            float v = x[i] / si;
            int below = v <= lo, above = v >= hi;
            float ds = nearbyintf(v) - v;
            ds = below ? lo : ds;
            ds = above ? hi : ds;
            grad_x[i] = (below | above) ? 0.0f : g[i];
            prod[i] = g[i] * ds;
        }
    }
}

void qb_lsq_forward(int threads, int64_t n, const float *restrict x, const float *restrict s, int64_t inner,
                    float lo, float hi, float eps, float *restrict out) {
#pragma omp parallel for num_threads(threads) schedule(static, 1)
    for (int k = 0; k < threads; k++)
        forward_range(n * k / threads, n * (k + 1) / threads, x, s, inner, lo, hi, eps, out);
}

void qb_lsq_backward(int threads, int64_t n, const float *restrict x, const float *restrict s,
                     const float *restrict g, int64_t inner, float lo, float hi, float eps, float *restrict grad_x,
                     float *restrict prod) {
#pragma omp parallel for num_threads(threads) schedule(static, 1)
    for (int k = 0; k < threads; k++)
        backward_range(n * k / threads, n * (k + 1) / threads, x, s, g, inner, lo, hi, eps, grad_x, prod);
}
