/* ASQ's fake quantizer and its gradient rule (asq.py's _ASQFunction) in one pass each, with the
 * torch code's numbers bit for bit.
 *
 * Why C: the torch version is 4 elementwise ops forward and about 10 backward, each a pass over
 * memory with its own fixed cost, which on the micro ViT's small activations outweighed the
 * arithmetic. Torch still sums the per-sample terms this writes (reshape(B, -1).sum(1)), so the
 * step's and the adapter's gradients keep torch's summation order.
 *
 * Bit-identity: the same float32 operations in the same order (-ffp-contract=off: nothing
 * fused): round half to even, then a clamp that keeps NaN, as torch.round and torch.clamp; the
 * input gradient is grad * 1.0 or grad * 0.0 (a product, as the torch code writes it, so -0.0
 * and NaN come out the same).
 *
 * The step is per sample: element i uses sa[i / inner]. The exported functions split the n
 * elements into one contiguous range per thread of torch's OpenMP pool (threads from
 * qbench.api.kernel_threads); each element is computed alone, so the split changes no value.
 * Plain C, no Python or torch headers; loaded with ctypes (kernel.py).
 */
#include <math.h>
#include <omp.h>
#include <stdint.h>

/* out = clamp(round(x / sa), lo, hi) * sa */
static void forward_range(int64_t begin, int64_t end, const float *restrict x, const float *restrict sa,
                          int64_t inner, float lo, float hi, float *restrict out) {
    for (int64_t i = begin; i < end;) {
        int64_t stop = (i / inner + 1) * inner;
        float s = sa[i / inner];
        for (stop = stop < end ? stop : end; i < stop; i++) {
            float q = nearbyintf(x[i] / s);
            q = q < lo ? lo : q; /* NaN compares false: it stays NaN, as in torch.clamp */
            q = q > hi ? hi : q;
            out[i] = q * s;
        }
    }
}

/* v = x / sa, q = clamp(round(v)), inside = lo <= v <= hi: grad_x = g * inside, prod = g * (inside
 * ? q - v : q). */
static void backward_range(int64_t begin, int64_t end, const float *restrict x, const float *restrict sa,
                           const float *restrict g, int64_t inner, float lo, float hi, float *restrict grad_x,
                           float *restrict prod) {
    for (int64_t i = begin; i < end;) {
        int64_t stop = (i / inner + 1) * inner;
        float s = sa[i / inner];
        for (stop = stop < end ? stop : end; i < stop; i++) {
            float v = x[i] / s;
            float q = nearbyintf(v);
            q = q < lo ? lo : q;
            q = q > hi ? hi : q;
            int inside = (v >= lo) & (v <= hi);
            float d = inside ? q - v : q;
            grad_x[i] = g[i] * (inside ? 1.0f : 0.0f);
            prod[i] = g[i] * d;
        }
    }
}

void qb_asq_forward(int threads, int64_t n, const float *restrict x, const float *restrict sa, int64_t inner,
                    float lo, float hi, float *restrict out) {
#pragma omp parallel for num_threads(threads) schedule(static, 1)
    for (int k = 0; k < threads; k++)
        forward_range(n * k / threads, n * (k + 1) / threads, x, sa, inner, lo, hi, out);
}

void qb_asq_backward(int threads, int64_t n, const float *restrict x, const float *restrict sa,
                     const float *restrict g, int64_t inner, float lo, float hi, float *restrict grad_x,
                     float *restrict prod) {
#pragma omp parallel for num_threads(threads) schedule(static, 1)
    for (int k = 0; k < threads; k++)
        backward_range(n * k / threads, n * (k + 1) / threads, x, sa, g, inner, lo, hi, grad_x, prod);
}
