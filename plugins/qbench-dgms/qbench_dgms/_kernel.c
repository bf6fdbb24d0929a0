/* DGMS soft weight, forward and backward, one pass over the weights each.
 *
 * Why C: the torch version materialises several K x N tensors (K = 2^bits mixture components,
 * N = the layer's weights) and recomputes them under autograd in the backward; the step is bound
 * by that memory traffic (resnet18 at 4 bits: 11 M weights x 16 components). Here each group of
 * 8 weights (one AVX2 register) keeps its K values in a small scratch array, so the only O(N)
 * memory touched is the weight, the output and the two gradients.
 *
 * Plain C with no Python or torch headers: it is loaded with ctypes and does not depend on torch's
 * C++ ABI; its blocks run on torch's OpenMP threads (the library shares torch's libgomp). AVX2 + FMA
 * (x86-64-v3); kernel.py refuses CPUs without them.
 *
 * Maths (mixture.py has the torch reference):
 *   z_k = (w - mu_k) s_k,  s_k = exp(-log sigma_k);  a_k = c_k - z_k^2 / 2,  c_k = log pi_k - log sigma_k
 *   e_k = exp(a_k - max a),  r_k = e_k / sum e  (= softmax_k a)
 *   f_k = exp((r_k - max r) / tau),  phi_k = f_k / sum f  (= softmax_k(r / tau)),  out = sum_k mu_k phi_k
 *   max r = 1 / sum e exactly, since e = exp(0) = 1 at the maximum: no pass is spent finding it,
 *   and f = exp(0) = 1 exactly there too, so as tau -> 0 the output is exactly the MAP mean.
 * Backward, for the incoming gradient g of out:
 *   gr_k = g phi_k (mu_k - out) / tau,  d = sum_k r_k gr_k,  ga_k = r_k (gr_k - d)
 *   dw = -sum_k ga_k z_k s_k;  dmu_k = sum (g phi_k + ga_k z_k s_k);  dlog_sigma_k = sum ga_k (z_k^2 - 1)
 *   dlog_pi_k = sum ga_k;  dtau = -sum d / tau
 * The per-component sums are accumulated per block of BLOCK weights (float lanes, then double),
 * written to one row of `partials` per block and summed by the caller in block order, so the
 * result does not depend on how many threads ran the blocks.
 */
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LANES 8
#define BLOCK 4096 /* weights per partial-sum row; a multiple of LANES */

int qb_dgms_block(void) { return BLOCK; }

/* exp(x) for x <= 0 (every argument here is a difference from a maximum); 0 below -87 (no
 * denormals); NaN stays NaN. Cephes' single-precision polynomial after reduction by ln 2. */
static inline __m256 exp_nonpos(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-87.0f);
    __m256 xc = _mm256_max_ps(x, lo); /* NaN -> lo here; restored below */
    __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), xc);
    r = _mm256_fmadd_ps(n, _mm256_set1_ps(2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    __m256 y = _mm256_add_ps(_mm256_fmadd_ps(_mm256_mul_ps(p, r), r, r), _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    __m256 v = _mm256_mul_ps(y, _mm256_castsi256_ps(e));
    v = _mm256_and_ps(v, _mm256_cmp_ps(x, lo, _CMP_GE_OQ));      /* below -87 (or NaN): 0 */
    return _mm256_blendv_ps(v, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q)); /* NaN: NaN */
}

/* One group of 8 weights: r_k (into r, K x 8), f_k (into f, K x 8), 1 / sum f, and out. */
static inline void soft_group(__m256 w, int K, const float *mu, const float *s, const float *c, float inv_tau,
                              float *r, float *f, __m256 *inv_t, __m256 *out) {
    __m256 m = _mm256_set1_ps(-INFINITY);
    for (int k = 0; k < K; k++) {
        __m256 z = _mm256_mul_ps(_mm256_sub_ps(w, _mm256_set1_ps(mu[k])), _mm256_set1_ps(s[k]));
        __m256 a = _mm256_fnmadd_ps(_mm256_mul_ps(z, z), _mm256_set1_ps(0.5f), _mm256_set1_ps(c[k]));
        _mm256_storeu_ps(r + k * LANES, a);
        m = _mm256_max_ps(m, a);
    }
    __m256 sum = _mm256_setzero_ps();
    for (int k = 0; k < K; k++) {
        __m256 e = exp_nonpos(_mm256_sub_ps(_mm256_loadu_ps(r + k * LANES), m));
        _mm256_storeu_ps(r + k * LANES, e);
        sum = _mm256_add_ps(sum, e);
    }
    __m256 inv_s = _mm256_div_ps(_mm256_set1_ps(1.0f), sum);
    __m256 it = _mm256_set1_ps(inv_tau);
    __m256 t = _mm256_setzero_ps(), o = _mm256_setzero_ps();
    for (int k = 0; k < K; k++) {
        __m256 rk = _mm256_mul_ps(_mm256_loadu_ps(r + k * LANES), inv_s);
        _mm256_storeu_ps(r + k * LANES, rk);
        __m256 fk = exp_nonpos(_mm256_mul_ps(_mm256_sub_ps(rk, inv_s), it)); /* exactly 1 at the max */
        _mm256_storeu_ps(f + k * LANES, fk);
        t = _mm256_add_ps(t, fk);
        o = _mm256_fmadd_ps(_mm256_set1_ps(mu[k]), fk, o);
    }
    *inv_t = _mm256_div_ps(_mm256_set1_ps(1.0f), t);
    *out = _mm256_mul_ps(o, *inv_t);
}

/* Up to 8 weights from src[at:], the tail of the tensor padded with zeros. */
static inline __m256 load_group(const float *src, int64_t at, int64_t n, int *len) {
    if (n - at >= LANES) { *len = LANES; return _mm256_loadu_ps(src + at); }
    float tmp[LANES] = {0};
    *len = (int)(n - at);
    memcpy(tmp, src + at, sizeof(float) * (size_t)*len);
    return _mm256_loadu_ps(tmp);
}

static inline void store_group(float *dst, int64_t at, int len, __m256 v) {
    if (len == LANES) { _mm256_storeu_ps(dst + at, v); return; }
    float tmp[LANES];
    _mm256_storeu_ps(tmp, v);
    memcpy(dst + at, tmp, sizeof(float) * (size_t)len);
}

/* Soft weight of weights [b0 * BLOCK, b1 * BLOCK) ∩ [0, n). scratch: 2 * K * LANES floats. */
static void forward_blocks(const float *w, float *out, int64_t n, int K, const float *mu, const float *s,
                           const float *c, float inv_tau, int64_t b0, int64_t b1, float *scratch) {
    float *r = scratch, *f = scratch + (int64_t)K * LANES;
    int64_t end = b1 * BLOCK < n ? b1 * BLOCK : n;
    for (int64_t at = b0 * BLOCK; at < end; at += LANES) {
        int len;
        __m256 inv_t, o, wv = load_group(w, at, n, &len);
        soft_group(wv, K, mu, s, c, inv_tau, r, f, &inv_t, &o);
        store_group(out, at, len, o);
    }
}

/* Weight gradient of blocks [b0, b1) into gw, and one row of 3K + 1 sums per block into partials
 * (row b: dmu[K], dlog_sigma[K], dlog_pi[K], dtau). scratch: 5 * K * LANES floats. */
static void backward_blocks(const float *w, const float *g, float *gw, int64_t n, int K, const float *mu,
                            const float *s, const float *c, float inv_tau, int64_t b0, int64_t b1,
                            double *partials, float *scratch) {
    float *r = scratch, *f = r + (int64_t)K * LANES;
    float *amu = f + (int64_t)K * LANES, *als = amu + (int64_t)K * LANES, *alp = als + (int64_t)K * LANES;
    const __m256 it = _mm256_set1_ps(inv_tau);
    for (int64_t b = b0; b < b1; b++) {
        memset(amu, 0, sizeof(float) * (size_t)3 * K * LANES);
        __m256d tau_lo = _mm256_setzero_pd(), tau_hi = _mm256_setzero_pd();
        int64_t end = (b + 1) * BLOCK < n ? (b + 1) * BLOCK : n;
        for (int64_t at = b * BLOCK; at < end; at += LANES) {
            int len;
            __m256 wv = load_group(w, at, n, &len);
            __m256 gv = load_group(g, at, n, &len); /* padded lanes: g = 0, so they add nothing */
            __m256 inv_t, o;
            soft_group(wv, K, mu, s, c, inv_tau, r, f, &inv_t, &o);
            __m256 gt = _mm256_mul_ps(gv, inv_t), d = _mm256_setzero_ps();
            for (int k = 0; k < K; k++) { /* f_k <- g phi_k; d = sum r_k gr_k */
                __m256 gp = _mm256_mul_ps(gt, _mm256_loadu_ps(f + k * LANES));
                _mm256_storeu_ps(f + k * LANES, gp);
                __m256 gr = _mm256_mul_ps(_mm256_mul_ps(gp, _mm256_sub_ps(_mm256_set1_ps(mu[k]), o)), it);
                d = _mm256_fmadd_ps(_mm256_loadu_ps(r + k * LANES), gr, d);
            }
            __m256 gwv = _mm256_setzero_ps();
            for (int k = 0; k < K; k++) {
                __m256 gp = _mm256_loadu_ps(f + k * LANES);
                __m256 gr = _mm256_mul_ps(_mm256_mul_ps(gp, _mm256_sub_ps(_mm256_set1_ps(mu[k]), o)), it);
                __m256 ga = _mm256_mul_ps(_mm256_loadu_ps(r + k * LANES), _mm256_sub_ps(gr, d));
                __m256 sk = _mm256_set1_ps(s[k]);
                __m256 z = _mm256_mul_ps(_mm256_sub_ps(wv, _mm256_set1_ps(mu[k])), sk);
                __m256 gzs = _mm256_mul_ps(_mm256_mul_ps(ga, z), sk);
                gwv = _mm256_sub_ps(gwv, gzs);
                float *pm = amu + k * LANES, *ps = als + k * LANES, *pl = alp + k * LANES;
                _mm256_storeu_ps(pm, _mm256_add_ps(_mm256_loadu_ps(pm), _mm256_add_ps(gp, gzs)));
                _mm256_storeu_ps(ps, _mm256_fmadd_ps(ga, _mm256_fmsub_ps(z, z, _mm256_set1_ps(1.0f)),
                                                     _mm256_loadu_ps(ps)));
                _mm256_storeu_ps(pl, _mm256_add_ps(_mm256_loadu_ps(pl), ga));
            }
            /* d's sum over the weights cancels heavily (the tau gradient is small): double lanes */
            tau_lo = _mm256_add_pd(tau_lo, _mm256_cvtps_pd(_mm256_castps256_ps128(d)));
            tau_hi = _mm256_add_pd(tau_hi, _mm256_cvtps_pd(_mm256_extractf128_ps(d, 1)));
            store_group(gw, at, len, gwv);
        }
        double *row = partials + b * (3 * (int64_t)K + 1);
        for (int j = 0; j < 3 * K; j++) {
            double acc = 0.0;
            for (int i = 0; i < LANES; i++) acc += amu[(int64_t)j * LANES + i];
            row[j] = acc;
        }
        double t[LANES], sum_t = 0.0;
        _mm256_storeu_pd(t, tau_lo);
        _mm256_storeu_pd(t + 4, tau_hi);
        for (int i = 0; i < LANES; i++) sum_t += t[i];
        row[3 * K] = -sum_t * inv_tau;
    }
}

/* The entry points split the blocks into one contiguous range per thread of torch's OpenMP pool
 * (threads from qbench.api.kernel_threads); each thread allocates its own scratch. Return 0, or -1
 * when out of memory. */
int qb_dgms_forward(int threads, int64_t blocks, const float *w, float *out, int64_t n, int K, const float *mu,
                    const float *s, const float *c, float inv_tau) {
    int failed = 0;
#pragma omp parallel for num_threads(threads) schedule(static, 1) reduction(|| : failed)
    for (int t = 0; t < threads; t++) {
        float *scratch = malloc(sizeof(float) * 2 * (size_t)K * LANES);
        if (!scratch) { failed = 1; continue; }
        forward_blocks(w, out, n, K, mu, s, c, inv_tau, blocks * t / threads, blocks * (t + 1) / threads, scratch);
        free(scratch);
    }
    return failed ? -1 : 0;
}

int qb_dgms_backward(int threads, int64_t blocks, const float *w, const float *g, float *gw, int64_t n, int K,
                     const float *mu, const float *s, const float *c, float inv_tau, double *partials) {
    int failed = 0;
#pragma omp parallel for num_threads(threads) schedule(static, 1) reduction(|| : failed)
    for (int t = 0; t < threads; t++) {
        float *scratch = malloc(sizeof(float) * 5 * (size_t)K * LANES);
        if (!scratch) { failed = 1; continue; }
        backward_blocks(w, g, gw, n, K, mu, s, c, inv_tau, blocks * t / threads, blocks * (t + 1) / threads,
                        partials, scratch);
        free(scratch);
    }
    return failed ? -1 : 0;
}
