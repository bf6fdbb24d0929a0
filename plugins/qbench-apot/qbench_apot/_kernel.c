/* APoT's reparameterized clipping function (rcf.py) in one pass each way, with the numbers of
 * the composed torch expression bit for bit:
 *
 *     u = clamp(x / alpha, lo, 1);  d = the level nearest u;  out = (u + (d - u)) * alpha
 *
 * Why C: composed from torch ops, that is a division, a clamp, a grid look-up (a clamp, a scale,
 * a cast and three gathers), a subtraction, an addition and a product forward, and as many
 * backward, each a pass over memory with its own fixed cost; on the micro ViT's small
 * activations those passes made APoT's step 2.2-2.5x an FP32 step.
 *
 * Bit-identity: the same float32 operations in the same order (compiled with -ffp-contract=off:
 * nothing fused). The nearest level is levels[#(mids < u)], mids[p] = (levels[p + 1] +
 * levels[p]) / 2, which is torch.bucketize's answer on the midpoints and the host's grid look-up's
 * (qbench.api.project_nearest): a value halfway between two levels goes to the lower one. NaN
 * stays NaN (u + (d - u) is NaN whatever d is). The backward writes what autograd computes through
 * the expression: MulBackward (grad * alpha; the alpha terms grad * q), the STE's AddBackward
 * (identity), ClampBackward (grad where lo < v < 1, v = x / alpha, else 0; with `closed`, where
 * lo <= v <= 1: kernel.py asks the installed torch which it computes) and DivBackward
 * (grad / alpha; the alpha terms -grad * ((x / alpha) / alpha)); torch sums the alpha terms.
 *
 * The entry points split the n elements into one contiguous range per thread of torch's OpenMP
 * pool (threads from qbench.api.kernel_threads); each element is computed alone, so the split
 * changes no value. Plain C, no Python or torch headers; loaded with ctypes (kernel.py).
 */
#include <omp.h>
#include <stdint.h>

#define BLOCK 64
#define MAX_LEVELS 1024 /* kernel.py sends larger sets to the torch code */

/* mids[p] = (levels[p + 1] + levels[p]) / 2, as (levels[1:] + levels[:-1]) / 2 in torch */
static void midpoints(const float *levels, int nlev, float *mids) {
    for (int p = 0; p + 1 < nlev; p++) mids[p] = (levels[p + 1] + levels[p]) / 2.0f;
}

/* u = clamp(x / alpha, lo, 1) for a block; NaN compares false and stays NaN, as in torch.clamp */
static inline void clip_block(const float *x, int len, float alpha, float lo, float *u) {
    for (int i = 0; i < len; i++) {
        float v = x[i] / alpha;
        v = v < lo ? lo : v;
        u[i] = v > 1.0f ? 1.0f : v;
    }
}

/* d[i] = levels[#(mids < u[i])] for a block */
static inline void nearest_block(const float *u, int len, const float *mids, int nmids, int top,
                                 const float *levels, float *d) {
    int32_t cnt[BLOCK];
    if (nmids <= 64) { /* a vectorised count over all midpoints */
        for (int i = 0; i < BLOCK; i++) cnt[i] = 0;
        for (int p = 0; p < nmids; p++) {
            float m = mids[p];
            for (int i = 0; i < len; i++) cnt[i] += u[i] > m;
        }
    } else { /* branch-free binary search: the count of midpoints < u */
        for (int i = 0; i < len; i++) {
            float v = u[i];
            int at = 0;
            for (int s = top; s > 0; s >>= 1) {
                int probe = at + s;
                at = (probe <= nmids && mids[probe - 1] < v) ? probe : at;
            }
            cnt[i] = at;
        }
    }
    for (int i = 0; i < len; i++) d[i] = levels[cnt[i]];
}

static int top_of(int nmids) {
    int top = 1;
    while (top * 2 <= nmids) top *= 2;
    return top;
}

/* u and d for the block of elements from `at` (up to BLOCK, not past `end`); returns its length */
static inline int rcf_block(const float *x, int64_t at, int64_t end, float alpha, float lo, const float *levels,
                            const float *mids, int nmids, int top, float *u, float *d) {
    int len = end - at < BLOCK ? (int)(end - at) : BLOCK;
    clip_block(x + at, len, alpha, lo, u);
    nearest_block(u, len, mids, nmids, top, levels, d);
    return len;
}

static void forward_range(int64_t begin, int64_t end, const float *restrict x, float alpha, float lo,
                          const float *restrict levels, const float *restrict mids, int nmids,
                          float *restrict out) {
    float u[BLOCK], d[BLOCK];
    int top = top_of(nmids);
    for (int64_t at = begin; at < end; at += BLOCK) {
        int len = rcf_block(x, at, end, alpha, lo, levels, mids, nmids, top, u, d);
        for (int i = 0; i < len; i++) out[at + i] = (u[i] + (d[i] - u[i])) * alpha;
    }
}

static void backward_range(int64_t begin, int64_t end, const float *restrict x, float alpha, float lo,
                           int closed, const float *restrict levels, const float *restrict mids, int nmids,
                           const float *restrict grad, float *restrict grad_x, float *restrict t_mul,
                           float *restrict t_div) {
    float u[BLOCK], d[BLOCK];
    int top = top_of(nmids);
    for (int64_t at = begin; at < end; at += BLOCK) {
        int len = rcf_block(x, at, end, alpha, lo, levels, mids, nmids, top, u, d);
        for (int i = 0; i < len; i++) {
            int64_t k = at + i;
            float g = grad[k];
            t_mul[k] = g * (u[i] + (d[i] - u[i]));  /* MulBackward, other: grad * q */
            float v = x[k] / alpha;
            int inside = closed ? (v >= lo) & (v <= 1.0f) : (v > lo) & (v < 1.0f);
            float gv = inside ? g * alpha : 0.0f; /* MulBackward self, then ClampBackward */
            grad_x[k] = gv / alpha;                  /* DivBackward, self */
            t_div[k] = -gv * (v / alpha);            /* DivBackward, other */
        }
    }
}

/* Return 0, or -1 when the level set is too large (the caller then runs the torch code). */
int qb_apot_forward(int threads, int64_t n, const float *x, float alpha, float lo, const float *levels, int nlev,
                    float *out) {
    float mids[MAX_LEVELS];
    if (nlev < 1 || nlev > MAX_LEVELS) return -1;
    midpoints(levels, nlev, mids);
#pragma omp parallel for num_threads(threads) schedule(static, 1)
    for (int k = 0; k < threads; k++)
        forward_range(n * k / threads, n * (k + 1) / threads, x, alpha, lo, levels, mids, nlev - 1, out);
    return 0;
}

int qb_apot_backward(int threads, int64_t n, const float *x, float alpha, float lo, int closed, const float *levels,
                     int nlev, const float *grad, float *grad_x, float *t_mul, float *t_div) {
    float mids[MAX_LEVELS];
    if (nlev < 1 || nlev > MAX_LEVELS) return -1;
    midpoints(levels, nlev, mids);
#pragma omp parallel for num_threads(threads) schedule(static, 1)
    for (int k = 0; k < threads; k++)
        backward_range(n * k / threads, n * (k + 1) / threads, x, alpha, lo, closed, levels, mids, nlev - 1, grad,
                       grad_x, t_mul, t_div);
    return 0;
}
