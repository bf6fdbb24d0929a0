/* The N2UQ map and its GSTE backward in one pass each, with the same numbers as the torch code
 * (function.py) bit for bit.
 *
 * Why C: the torch version is a dozen elementwise ops, gathers and two index_add_ per call; on
 * the micro ViT, where activations are small, their fixed costs made N2UQ's step 3-4x an FP32
 * step. Here the forward and the backward are each one loop over the elements.
 *
 * Bit-identity: every value is computed with the same float32 operations in the same order as
 * the torch expressions they replace (compiled with -ffp-contract=off so that no multiply-add is
 * fused), the tables (output level per index, segment width) come from torch, and the boundary
 * gradient is accumulated element by element in order, first every (u - 1) term and then every
 * -u term, as torch's two serial index_add_ calls do.
 *
 * The elementwise entry points split the n elements into one contiguous range per thread of
 * torch's OpenMP pool (threads from qbench.api.kernel_threads): each element is computed alone, so
 * the split changes no value. The boundary sums stay serial (qb_n2uq_sums).
 *
 * Plain C, no Python or torch headers; loaded with ctypes (kernel.py).
 */

/* [begin, end) of part k of n elements split into t parts */
#define PART(n, k, t) ((n) * (k) / (t)), ((n) * ((k) + 1) / (t))
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#define BLOCK 64

/* cnt[i] = #{points <= x[i]} for 16 < npts <= 64 (NaN: 0), for one block, in AVX2 registers.
 * The sorted points form 8 groups of G = ceil(npts / 8); lane g of register r holds point G g + r
 * (NaN past the end, which no x reaches). The groups wholly <= x are counted against their last
 * points (8 compares), then the points of the next group (G - 1 compares on permuted lanes): about
 * G + 8 compares per 8 values instead of npts. Sorted points make both counts exact. */
static void count_grouped(const float *x, int len, const float *pts, int npts, int32_t *cnt) {
    const int G = (npts + 7) / 8;
    float lanes[8], xs[8];
    __m256 reg[8], gmax[8];
    for (int r = 0; r < G; r++) {
        for (int g = 0; g < 8; g++) lanes[g] = G * g + r < npts ? pts[G * g + r] : NAN;
        reg[r] = _mm256_loadu_ps(lanes);
    }
    _mm256_storeu_ps(lanes, reg[G - 1]);
    for (int g = 0; g < 8; g++) gmax[g] = _mm256_set1_ps(lanes[g]);
    const __m256i seven = _mm256_set1_epi32(7), eight = _mm256_set1_epi32(8);
    for (int at = 0; at < len; at += 8) {
        __m256 v;
        if (len - at >= 8) {
            v = _mm256_loadu_ps(x + at);
        } else { /* the tail: NaN lanes count 0 and are not stored */
            for (int i = 0; i < 8; i++) xs[i] = at + i < len ? x[at + i] : NAN;
            v = _mm256_loadu_ps(xs);
        }
        __m256i full = _mm256_setzero_si256();
        for (int g = 0; g < 8; g++) /* a true compare is all ones: -1 */
            full = _mm256_sub_epi32(full, _mm256_castps_si256(_mm256_cmp_ps(v, gmax[g], _CMP_GE_OQ)));
        __m256i in = _mm256_setzero_si256(), pick = _mm256_min_epi32(full, seven);
        for (int r = 0; r < G - 1; r++)
            in = _mm256_sub_epi32(in, _mm256_castps_si256(
                     _mm256_cmp_ps(v, _mm256_permutevar8x32_ps(reg[r], pick), _CMP_GE_OQ)));
        in = _mm256_and_si256(in, _mm256_cmpgt_epi32(eight, full)); /* every group full: nothing next */
        __m256i c = _mm256_add_epi32(_mm256_mullo_epi32(full, _mm256_set1_epi32(G)), in);
        int32_t out[8];
        _mm256_storeu_si256((__m256i *)out, c);
        for (int i = 0; i < 8 && at + i < len; i++) cnt[at + i] = out[i];
    }
}

/* For elements [begin, end): j = #{points <= x} (NaN: 0), out = level[j]; j stored as int16 (j_bytes
 * 2) or int32. */
static void map_range(int64_t begin, int64_t end, const float *x, const float *pts, int npts, const float *level,
                      float *out, void *j_out, int j_bytes) {
    int16_t *j16 = (int16_t *)j_out;
    int32_t *j32 = (int32_t *)j_out;
    int top = 1;
    while (top * 2 <= npts) top *= 2;
    for (int64_t at = begin; at < end; at += BLOCK) {
        int len = end - at < BLOCK ? (int)(end - at) : BLOCK;
        int32_t cnt[BLOCK];
        const float *xb = x + at;
        if (npts > 16 && npts <= 64) { /* 4-5 bits: through the group maxima, then one group */
            count_grouped(xb, len, pts, npts, cnt);
        } else if (npts <= 64) { /* a vectorised count over all points */
            for (int i = 0; i < BLOCK; i++) cnt[i] = 0;
            for (int p = 0; p < npts; p++) {
                float t = pts[p];
                for (int i = 0; i < len; i++) cnt[i] += xb[i] >= t;
            }
        } else { /* branch-free binary search: the count of points <= x */
            for (int i = 0; i < len; i++) {
                float v = xb[i];
                int lo = 0;
                for (int s = top; s > 0; s >>= 1) {
                    int probe = lo + s;
                    lo = (probe <= npts && pts[probe - 1] <= v) ? probe : lo;
                }
                cnt[i] = lo;
            }
        }
        for (int i = 0; i < len; i++) {
            out[at + i] = level[cnt[i]];
            if (j_bytes == 2) j16[at + i] = (int16_t)cnt[i];
            else j32[at + i] = cnt[i];
        }
    }
}

/* Segment (0-based, clamped) and whether x is inside [t0, t_n], from the saved index j. */
static inline int32_t segment(int32_t jj, int nseg) {
    int32_t seg = (jj + 1) / 2 - 1;
    return seg < 0 ? 0 : (seg > nseg - 1 ? nseg - 1 : seg);
}

/* Sums terms[i] into acc[lane[i] + shift] in element order. The accumulators live in AVX2
 * registers (up to 16) and every other lane adds +0.0, which changes no value: an accumulator
 * starts at +0.0 and a round-to-nearest sum is -0.0 only when both terms are, so none is ever
 * -0.0, and x + (+0.0) = x for every other x, infinities and NaN included. One add per element,
 * in order per lane: the same bits as a serial index_add_. */
static void ordered_sums(const float *terms, const int32_t *lane, int shift, int64_t n, float *acc, int nacc) {
    if (nacc > 16) {
        for (int64_t i = 0; i < n; i++) acc[lane[i] + shift] += terms[i];
        return;
    }
    float init[16] = {0};
    for (int k = 0; k < nacc; k++) init[k] = acc[k];
    __m256 lo = _mm256_loadu_ps(init), hi = _mm256_loadu_ps(init + 8);
    const __m256i idx_lo = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i idx_hi = _mm256_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15);
    const __m256 zero = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i++) {
        __m256i k = _mm256_set1_epi32(lane[i] + shift);
        __m256 t = _mm256_set1_ps(terms[i]);
        lo = _mm256_add_ps(lo, _mm256_blendv_ps(zero, t, _mm256_castsi256_ps(_mm256_cmpeq_epi32(k, idx_lo))));
        hi = _mm256_add_ps(hi, _mm256_blendv_ps(zero, t, _mm256_castsi256_ps(_mm256_cmpeq_epi32(k, idx_hi))));
    }
    _mm256_storeu_ps(init, lo);
    _mm256_storeu_ps(init + 8, hi);
    for (int k = 0; k < nacc; k++) acc[k] = init[k];
}

/* The GSTE gradients of elements [begin, end), elementwise (threads may split a tensor): the
 * segment (seg_out), the input gradient, and when need_b the two boundary-gradient terms of each
 * element (t1 for its segment's start, t2 for its end). nseg segments (bounds: nseg + 1 entries,
 * width: nseg). */
static void terms_range(int64_t begin, int64_t end, const float *restrict x, const void *restrict j, int j_bytes,
                        const float *restrict bounds, const float *restrict width, int nseg, float step,
                        const float *restrict grad, float *restrict grad_x, int need_b, int32_t *restrict seg_out,
                        float *restrict t1, float *restrict t2) {
    const int32_t last = 2 * nseg;
    if (j_bytes == 2) { /* segments, and the inside mask as 1.0 / 0.0 in t1 */
        const int16_t *restrict j16 = (const int16_t *)j;
        for (int64_t i = begin; i < end; i++) {
            int32_t jj = j16[i];
            seg_out[i] = segment(jj, nseg);
            t1[i] = ((jj >= 1) & (jj <= last)) ? 1.0f : 0.0f;
        }
    } else {
        const int32_t *restrict j32 = (const int32_t *)j;
        for (int64_t i = begin; i < end; i++) {
            int32_t jj = j32[i];
            seg_out[i] = segment(jj, nseg);
            t1[i] = ((jj >= 1) & (jj <= last)) ? 1.0f : 0.0f;
        }
    }
    for (int64_t i = begin; i < end; i++) { /* torch: where(inside, grad * step / width, 0) */
        float g = (grad[i] * step) / width[seg_out[i]];
        grad_x[i] = t1[i] != 0.0f ? g : 0.0f;
    }
    if (!need_b) return;
    for (int64_t i = begin; i < end; i++) { /* torch: u = (x - lo) / width; g * (u - 1) and -g * u */
        int32_t seg = seg_out[i];
        float u = (x[i] - bounds[seg]) / width[seg];
        t1[i] = grad_x[i] * (u - 1.0f);
        t2[i] = -grad_x[i] * u;
    }
}

/* The boundary gradient (nseg + 1 zeros on entry) from all n elements' terms, serially, in
 * element order: first every t1 into its segment's start, then every t2 into its end, as torch's
 * two index_add_ calls do. */
void qb_n2uq_sums(int64_t n, const int32_t *seg, const float *t1, const float *t2, float *grad_b, int nseg) {
    ordered_sums(t1, seg, 0, n, grad_b, nseg + 1);
    ordered_sums(t2, seg, 1, n, grad_b, nseg + 1);
}

/* The sorted points t_0, T_1, t_1, ..., T_n, t_n from the nb = n + 1 bounds t_i, with
 * T_i = 0.5 * (t_{i-1} + t_i) as function.py's thresholds_from_boundaries computes it. */
void qb_n2uq_points(const float *bounds, int nb, float *out) {
    for (int i = 0; i + 1 < nb; i++) {
        out[2 * i] = bounds[i];
        out[2 * i + 1] = 0.5f * (bounds[i] + bounds[i + 1]);
    }
    out[2 * (nb - 1)] = bounds[nb - 1];
}

/* The whole n2uq-a activation: out = (level[j] - offset) * s (or without * s), j counted on
 * u = x / s, with the same operations as quantizers.py's
 * ``(n2uq_levels(x / s, ...) - offset) * s``; j saved for the backward. */
static void act_forward_range(int64_t begin, int64_t end, const float *restrict x, float s,
                              const float *restrict pts, int npts, const float *restrict level, float offset,
                              int rescale, float *restrict out, void *restrict j_out, int j_bytes) {
    float u[BLOCK];
    for (int64_t at = begin; at < end; at += BLOCK) {
        int64_t stop = end - at < BLOCK ? end : at + BLOCK;
        for (int64_t i = at; i < stop; i++) u[i - at] = x[i] / s;
        map_range(0, stop - at, u, pts, npts, level, out + at,
                        j_bytes == 2 ? (void *)((int16_t *)j_out + at) : (void *)((int32_t *)j_out + at), j_bytes);
        for (int64_t i = at; i < stop; i++) {
            float y = out[i] - offset;
            out[i] = rescale ? y * s : y;
        }
    }
}

/* Its gradients, elementwise over [begin, end), as autograd computes them through that
 * expression: g1 = grad * s (MulBackward; grad itself without rescale), the map's GSTE on g1,
 * grad_x = g_slope / s and the step's terms -g_slope * ((x / s) / s) (DivBackward) and
 * grad * y (MulBackward), which the caller sums; the boundary terms as terms_range. */
static void act_terms_range(int64_t begin, int64_t end, const float *restrict x, float s,
                            const void *restrict j, int j_bytes, const float *restrict bounds,
                            const float *restrict width, int nseg, float step, const float *restrict level,
                            float offset, int rescale, const float *restrict grad, float *restrict grad_x,
                            int need_b, int32_t *restrict seg_out, float *restrict t1, float *restrict t2,
                            float *restrict ts_mul, float *restrict ts_div) {
    const int32_t last = 2 * nseg;
    /* Loops split so that each vectorises: j to int32, then tables, then the divisions. */
    if (j_bytes == 2) {
        const int16_t *restrict j16 = (const int16_t *)j;
        for (int64_t i = begin; i < end; i++) seg_out[i] = j16[i];
    } else {
        memcpy(seg_out + begin, (const int32_t *)j + begin, sizeof(int32_t) * (size_t)(end - begin));
    }
    if (rescale) /* MulBackward, other: grad * y with y = level[j] - offset */
        for (int64_t i = begin; i < end; i++) ts_mul[i] = grad[i] * (level[seg_out[i]] - offset);
    for (int64_t i = begin; i < end; i++) { /* the inside mask as 1.0 / 0.0 in t1, then the segment */
        int32_t jj = seg_out[i];
        t1[i] = ((jj >= 1) & (jj <= last)) ? 1.0f : 0.0f;
        seg_out[i] = segment(jj, nseg);
    }
    for (int64_t i = begin; i < end; i++) { /* MulBackward self, the GSTE slope, DivBackward */
        float g1 = rescale ? grad[i] * s : grad[i];
        float gs = (g1 * step) / width[seg_out[i]];
        gs = t1[i] != 0.0f ? gs : 0.0f;
        float u = x[i] / s;
        grad_x[i] = gs / s;
        ts_div[i] = -gs * (u / s);
        t2[i] = gs; /* kept for the boundary terms */
    }
    if (!need_b) return;
    for (int64_t i = begin; i < end; i++) { /* the map's boundary terms, on u = x / s */
        int32_t seg = seg_out[i];
        float gs = t2[i];
        float v = (x[i] / s - bounds[seg]) / width[seg];
        t1[i] = gs * (v - 1.0f);
        t2[i] = -gs * v;
    }
}

void qb_n2uq_forward(int threads, int64_t n, const float *x, const float *pts, int npts, const float *level,
                     float *out, void *j_out, int j_bytes) {
#pragma omp parallel for num_threads(threads) schedule(static, 1)
    for (int k = 0; k < threads; k++) map_range(PART(n, k, threads), x, pts, npts, level, out, j_out, j_bytes);
}

void qb_n2uq_terms(int threads, int64_t n, const float *x, const void *j, int j_bytes, const float *bounds,
                   const float *width, int nseg, float step, const float *grad, float *grad_x, int need_b,
                   int32_t *seg_out, float *t1, float *t2) {
#pragma omp parallel for num_threads(threads) schedule(static, 1)
    for (int k = 0; k < threads; k++)
        terms_range(PART(n, k, threads), x, j, j_bytes, bounds, width, nseg, step, grad, grad_x, need_b, seg_out,
                    t1, t2);
}

void qb_n2uq_act_forward(int threads, int64_t n, const float *x, float s, const float *pts, int npts,
                         const float *level, float offset, int rescale, float *out, void *j_out, int j_bytes) {
#pragma omp parallel for num_threads(threads) schedule(static, 1)
    for (int k = 0; k < threads; k++)
        act_forward_range(PART(n, k, threads), x, s, pts, npts, level, offset, rescale, out, j_out, j_bytes);
}

void qb_n2uq_act_terms(int threads, int64_t n, const float *x, float s, const void *j, int j_bytes,
                       const float *bounds, const float *width, int nseg, float step, const float *level,
                       float offset, int rescale, const float *grad, float *grad_x, int need_b, int32_t *seg_out,
                       float *t1, float *t2, float *ts_mul, float *ts_div) {
#pragma omp parallel for num_threads(threads) schedule(static, 1)
    for (int k = 0; k < threads; k++)
        act_terms_range(PART(n, k, threads), x, s, j, j_bytes, bounds, width, nseg, step, level, offset, rescale,
                        grad, grad_x, need_b, seg_out, t1, t2, ts_mul, ts_div);
}
