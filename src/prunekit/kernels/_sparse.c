/* prunekit's sparse CPU kernels: y = x W^T (+ b) for a pruned W, in two stored forms.
 *
 *   CSR:     row offsets (int64), column indices (uint16 or int32), values (fp32, fp16, bf16, or int8 codes
 *            with one fp32 scale per row).
 *   bitmask: row offsets into the values (int64), one bit per column (rows padded to whole bytes),
 *            values in row order (the same types). N:M patterns run in this form (1 bit per column,
 *            the size of 2:4's 2-bit positions).
 *
 * Batch 1 reads each weight once (bound by memory bandwidth); larger batches transpose a tile of 16
 * rows of x so each stored weight does 16 multiply-adds from one cache line. Rows are split over
 * OpenMP threads by equal numbers of stored weights. AVX2 + FMA + F16C code paths are compiled with
 * target attributes and chosen at run time; other CPUs run the portable loops (set_vector_isa picks them on
 * any CPU, for tests).
 *
 * Sums are kept in fp64 and rounded once: the product of two fp32 numbers is exact in fp64, so each output is
 * within one fp32 step of the exact product, nearly always its nearest fp32 value (a sparse model's logits
 * then differ from its dense computation's by about the dense product's own rounding). The one exception is
 * AVX2's batch-1 bitmask kernel, bound by its arithmetic as much as by its bytes: it keeps 32 fp32 sums per row
 * (short ones: on random rows its error measured below F.linear's on the machines used here).
 *
 * Called from Python with raw addresses (ctypes-free CPython API): the caller checks shapes, dtypes,
 * contiguity and devices (prunekit/kernels/packed.py). The values array must hold 8 extra zero entries
 * after its last value (vector loads may read them).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define PK_X86 1
#else
#define PK_X86 0
#endif

#define TILE 16
#ifndef PREFETCH
#define PREFETCH 1024  /* bytes ahead of the streams read at batch 1 (software prefetch) */
#endif

enum { VAL_F32 = 0, VAL_F16 = 1, VAL_BF16 = 2, VAL_I8 = 3 };  /* int8: codes, times a scale per row */

static inline int value_bytes(int vkind) { return vkind == VAL_F32 ? 4 : vkind == VAL_I8 ? 1 : 2; }
enum { IDX_U16 = 0, IDX_I32 = 1 };

static int has_avx2 = 0;

/* ------------------------------------------------------------------ scalar helpers */

static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else {  /* subnormal: normalise */
            int e = -1;
            do { e++; man <<= 1; } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp - 15 + 127) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline float bf16_to_float(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline float value_at(const void *vals, int64_t k, int vkind) {
    if (vkind == VAL_F32) return ((const float *)vals)[k];
    if (vkind == VAL_I8) return (float)((const int8_t *)vals)[k];
    uint16_t h = ((const uint16_t *)vals)[k];
    return vkind == VAL_F16 ? half_to_float(h) : bf16_to_float(h);
}

static inline int64_t index_at(const void *cols, int64_t k, int ikind) {
    return ikind == IDX_U16 ? (int64_t)((const uint16_t *)cols)[k] : (int64_t)((const int32_t *)cols)[k];
}

/* an output: its fp64 sum times the row's scale (int8 values), plus the bias, rounded once to fp32 */
static inline float finish(double s, const float *scale, const float *bias, int64_t r) {
    if (scale) s *= scale[r];
    return (float)(s + (bias ? bias[r] : 0.0f));
}

/* Rows [lo, hi) of thread t of nt: equal shares of the stored weights (offsets is rows + 1 long). */
static void share(const int64_t *offsets, int64_t rows, int t, int nt, int64_t *lo, int64_t *hi) {
    int64_t total = offsets[rows];
    int64_t bounds[2];
    for (int i = 0; i < 2; i++) {
        int64_t target = total * (t + i) / nt, a = 0, b = rows;
        if (t + i == nt) { bounds[i] = rows; continue; }
        while (a < b) {  /* first row whose start offset reaches the target */
            int64_t mid = (a + b) / 2;
            if (offsets[mid] < target) a = mid + 1; else b = mid;
        }
        bounds[i] = a;
    }
    *lo = bounds[0];
    *hi = bounds[1];
}

/* ------------------------------------------------------------------ portable kernels */

static void csr_rows_portable(const int64_t *offsets, const void *cols, const void *vals, int ikind, int vkind,
                              const float *x, int64_t in_features, int64_t batch, float *y, int64_t out_features,
                              const float *bias, const float *scale, int64_t lo, int64_t hi) {
    for (int64_t b = 0; b < batch; b++) {
        const float *xb = x + b * in_features;
        for (int64_t r = lo; r < hi; r++) {
            double s = 0.0;
            for (int64_t k = offsets[r]; k < offsets[r + 1]; k++)
                s += (double)value_at(vals, k, vkind) * xb[index_at(cols, k, ikind)];
            y[b * out_features + r] = finish(s, scale, bias, r);
        }
    }
}

static void bitmask_rows_portable(const int64_t *offsets, const uint8_t *mask, int64_t row_bytes, const void *vals,
                                  int vkind, const float *x, int64_t in_features, int64_t batch, float *y,
                                  int64_t out_features, const float *bias, const float *scale, int64_t lo, int64_t hi) {
    for (int64_t b = 0; b < batch; b++) {
        const float *xb = x + b * in_features;
        for (int64_t r = lo; r < hi; r++) {
            const uint8_t *m = mask + r * row_bytes;
            int64_t k = offsets[r];
            double s = 0.0;
            for (int64_t g = 0; g < row_bytes; g++) {
                unsigned bits = m[g];
                while (bits) {
                    int j = __builtin_ctz(bits);
                    s += (double)value_at(vals, k++, vkind) * xb[g * 8 + j];
                    bits &= bits - 1;
                }
            }
            y[b * out_features + r] = finish(s, scale, bias, r);
        }
    }
}

#if PK_X86
/* ------------------------------------------------------------------ AVX2 kernels */

static int32_t expand_perm[256][8] __attribute__((aligned(32)));    /* lane j of a group takes packed value popcount(m & ((1 << j) - 1)); lane 7 where bit j is clear */
static int32_t expand_lanes[256][8] __attribute__((aligned(32)));   /* all ones where bit j of m is set */
static int32_t first_lanes[9][8] __attribute__((aligned(32)));      /* all ones in the first n lanes */

#define AVX2 __attribute__((target("avx2,fma,f16c")))

AVX2 static inline __m256 load8(const void *vals, int64_t k, int vkind) {
    if (vkind == VAL_F32) return _mm256_loadu_ps((const float *)vals + k);
    if (vkind == VAL_I8)
        return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)((const int8_t *)vals + k))));
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)vals + k));
    if (vkind == VAL_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

AVX2 static inline float value1(const void *vals, int64_t k, int vkind) {
    if (vkind == VAL_F32) return ((const float *)vals)[k];
    if (vkind == VAL_I8) return (float)((const int8_t *)vals)[k];
    if (vkind == VAL_F16) return _cvtsh_ss(((const uint16_t *)vals)[k]);
    return bf16_to_float(((const uint16_t *)vals)[k]);
}

/* Four stored values as fp32 (16-bit ones converted by one vector instruction, not one each). */
AVX2 static inline void values4(const void *vals, int64_t k, int vkind, float *out) {
    if (vkind == VAL_F32) {
        memcpy(out, (const float *)vals + k, 4 * sizeof(float));
        return;
    }
    if (vkind == VAL_I8) {
        int32_t four;
        memcpy(&four, (const int8_t *)vals + k, 4);
        _mm_store_ps(out, _mm_cvtepi32_ps(_mm_cvtepi8_epi32(_mm_cvtsi32_si128(four))));
        return;
    }
    __m128i h = _mm_loadl_epi64((const __m128i *)((const uint16_t *)vals + k));
    if (vkind == VAL_F16)
        _mm_store_ps(out, _mm_cvtph_ps(h));
    else
        _mm_store_ps(out, _mm_castsi128_ps(_mm_slli_epi32(_mm_cvtepu16_epi32(h), 16)));
}

/* Batch 1, CSR: scalar loads and eight independent sums (AVX2's gathers are slower than scalar loads on
 * the AMD cores measured; three loads per stored weight keep the load ports, not the arithmetic, busy). */
#define SCALAR __attribute__((target("fma,f16c")))

SCALAR static inline float scalar_value(const void *vals, int64_t k, int vkind) {
    if (vkind == VAL_F32) return ((const float *)vals)[k];
    if (vkind == VAL_I8) return (float)((const int8_t *)vals)[k];
    if (vkind == VAL_F16) return _cvtsh_ss(((const uint16_t *)vals)[k]);
    return bf16_to_float(((const uint16_t *)vals)[k]);
}

SCALAR static inline void csr_b1_rows(const int64_t *offsets, const void *cols, const void *vals, int ikind,
                                      int vkind, const double *x, float *y, const float *bias, const float *scale,
                                      int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; r++) {
        int64_t k = offsets[r], end = offsets[r + 1];
        double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0, s4 = 0.0, s5 = 0.0, s6 = 0.0, s7 = 0.0;
        for (; k + 8 <= end; k += 8) {
            _mm_prefetch((const char *)vals + k * value_bytes(vkind) + PREFETCH, _MM_HINT_T0);
            _mm_prefetch((const char *)cols + (k << (ikind == IDX_U16 ? 1 : 2)) + PREFETCH, _MM_HINT_T0);
            s0 = fma(scalar_value(vals, k, vkind), x[index_at(cols, k, ikind)], s0);
            s1 = fma(scalar_value(vals, k + 1, vkind), x[index_at(cols, k + 1, ikind)], s1);
            s2 = fma(scalar_value(vals, k + 2, vkind), x[index_at(cols, k + 2, ikind)], s2);
            s3 = fma(scalar_value(vals, k + 3, vkind), x[index_at(cols, k + 3, ikind)], s3);
            s4 = fma(scalar_value(vals, k + 4, vkind), x[index_at(cols, k + 4, ikind)], s4);
            s5 = fma(scalar_value(vals, k + 5, vkind), x[index_at(cols, k + 5, ikind)], s5);
            s6 = fma(scalar_value(vals, k + 6, vkind), x[index_at(cols, k + 6, ikind)], s6);
            s7 = fma(scalar_value(vals, k + 7, vkind), x[index_at(cols, k + 7, ikind)], s7);
        }
        for (; k < end; k++) s0 = fma(scalar_value(vals, k, vkind), x[index_at(cols, k, ikind)], s0);
        y[r] = finish(((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7)), scale, bias, r);
    }
}

/* one copy per index and value type, so the inner loop has no type tests */
SCALAR static void csr_b1_fast(const int64_t *offsets, const void *cols, const void *vals, int ikind, int vkind,
                               const double *x, float *y, const float *bias, const float *scale, int64_t lo,
                               int64_t hi) {
#define CSR_B1(I, V) if (ikind == I && vkind == V) { \
        csr_b1_rows(offsets, cols, vals, I, V, x, y, bias, scale, lo, hi); return; }
    CSR_B1(IDX_U16, VAL_F32) CSR_B1(IDX_U16, VAL_F16) CSR_B1(IDX_U16, VAL_BF16) CSR_B1(IDX_U16, VAL_I8)
    CSR_B1(IDX_I32, VAL_F32) CSR_B1(IDX_I32, VAL_F16) CSR_B1(IDX_I32, VAL_BF16) CSR_B1(IDX_I32, VAL_I8)
#undef CSR_B1
    csr_b1_rows(offsets, cols, vals, ikind, vkind, x, y, bias, scale, lo, hi);  /* no other kinds exist; never silent */
}

/* Batch 1, bitmask: four groups of 8 columns per step from one 32-bit load of the mask; each group's first
 * value is found from popcounts of the mask's lower bytes, so the four expansions do not wait on each other.
 * A group's stored values are moved to their lanes by a permutation. fp32 values are loaded with a mask of
 * the group's count, so the lanes past it read zero and the permutation sends the empty lanes there (lane 7,
 * never a value unless all eight are set); 16-bit values zero the empty lanes after the permutation. */
AVX2 static inline __m256 expand(const void *vals, int64_t k, unsigned bits, int vkind) {
    __m256i perm = _mm256_load_si256((const __m256i *)expand_perm[bits]);
    if (vkind == VAL_F32) {
        __m256i count = _mm256_load_si256((const __m256i *)first_lanes[__builtin_popcount(bits)]);
        return _mm256_permutevar8x32_ps(_mm256_maskload_ps((const float *)vals + k, count), perm);
    }
    __m256 v = _mm256_permutevar8x32_ps(load8(vals, k, vkind), perm);
    return _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_load_si256((const __m256i *)expand_lanes[bits])));
}

AVX2 static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2 static inline void bitmask_b1_rows(const int64_t *offsets, const uint8_t *mask, int64_t row_bytes,
                                        const void *vals, int vkind, const float *x, int64_t in_features, float *y,
                                        const float *bias, const float *scale, int64_t lo, int64_t hi) {
    int64_t full = in_features / 8;  /* groups whose 8 columns all exist in x */
    for (int64_t r = lo; r < hi; r++) {
        const uint8_t *m = mask + r * row_bytes;
        int64_t k = offsets[r];
        __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(), acc2 = _mm256_setzero_ps(),
               acc3 = _mm256_setzero_ps();
        int64_t g = 0;
        for (; g + 4 <= full; g += 4) {
            uint32_t m4;
            memcpy(&m4, m + g, 4);
            _mm_prefetch((const char *)vals + k * value_bytes(vkind) + PREFETCH, _MM_HINT_T0);
            _mm_prefetch((const char *)m + g + PREFETCH / 4, _MM_HINT_T0);
            int64_t k1 = k + __builtin_popcount(m4 & 0xffu), k2 = k + __builtin_popcount(m4 & 0xffffu),
                    k3 = k + __builtin_popcount(m4 & 0xffffffu);
            acc0 = _mm256_fmadd_ps(expand(vals, k, m4 & 0xffu, vkind), _mm256_loadu_ps(x + g * 8), acc0);
            acc1 = _mm256_fmadd_ps(expand(vals, k1, (m4 >> 8) & 0xffu, vkind), _mm256_loadu_ps(x + g * 8 + 8), acc1);
            acc2 = _mm256_fmadd_ps(expand(vals, k2, (m4 >> 16) & 0xffu, vkind), _mm256_loadu_ps(x + g * 8 + 16), acc2);
            acc3 = _mm256_fmadd_ps(expand(vals, k3, m4 >> 24, vkind), _mm256_loadu_ps(x + g * 8 + 24), acc3);
            k += __builtin_popcount(m4);
        }
        for (; g < full; g++) {
            unsigned a = m[g];
            acc0 = _mm256_fmadd_ps(expand(vals, k, a, vkind), _mm256_loadu_ps(x + g * 8), acc0);
            k += __builtin_popcount(a);
        }
        float s = hsum(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
        for (; g < row_bytes; g++) {  /* the last, partial group: x ends inside it */
            unsigned bits = m[g];
            while (bits) {
                int j = __builtin_ctz(bits);
                s += value1(vals, k++, vkind) * x[g * 8 + j];
                bits &= bits - 1;
            }
        }
        y[r] = finish(s, scale, bias, r);
    }
}

AVX2 static void bitmask_b1_avx2(const int64_t *offsets, const uint8_t *mask, int64_t row_bytes, const void *vals,
                                 int vkind, const float *x, int64_t in_features, float *y, const float *bias,
                                 const float *scale, int64_t lo, int64_t hi) {
#define BM_B1(V) if (vkind == V) { \
        bitmask_b1_rows(offsets, mask, row_bytes, vals, V, x, in_features, y, bias, scale, lo, hi); return; }
    BM_B1(VAL_F32) BM_B1(VAL_F16) BM_B1(VAL_BF16) BM_B1(VAL_I8)
#undef BM_B1
    bitmask_b1_rows(offsets, mask, row_bytes, vals, vkind, x, in_features, y, bias, scale, lo, hi);
}

/* The tiles accumulate in fp64 and round once: a product of two fp32 numbers is exact in fp64, so each output
 * is the exact sum rounded to fp32, up to fp64's rounding (a sum in fp32 in another order than the dense
 * product's moved a language model's logits by 1.5e-5 of the largest one; the exact sum moves them only by the
 * dense product's own rounding). xt: [in_features][TILE] doubles (a tile of x's rows, transposed; rows past
 * the batch are zero). Two sums per output (stored weight k, or group g, to sum k % 2): eight independent FMA
 * chains per row keep the FMA units busy. */
AVX2 static inline void fma_column(__m256d a[4], float v, const double *xt, int64_t c) {
    __m256d w = _mm256_set1_pd((double)v);
    const double *p = xt + c * TILE;
    a[0] = _mm256_fmadd_pd(w, _mm256_load_pd(p), a[0]);
    a[1] = _mm256_fmadd_pd(w, _mm256_load_pd(p + 4), a[1]);
    a[2] = _mm256_fmadd_pd(w, _mm256_load_pd(p + 8), a[2]);
    a[3] = _mm256_fmadd_pd(w, _mm256_load_pd(p + 12), a[3]);
}

AVX2 static inline void store_sums(__m256d a[2][4], float *y, int64_t out_features, int64_t r, int64_t rows_in_tile,
                                   const float *bias, const float *scale) {
    float t[TILE] __attribute__((aligned(32)));
    __m256d add = _mm256_set1_pd(bias ? (double)bias[r] : 0.0), times = _mm256_set1_pd(scale ? (double)scale[r] : 1.0);
    for (int i = 0; i < 4; i++)
        _mm_store_ps(t + 4 * i, _mm256_cvtpd_ps(_mm256_fmadd_pd(_mm256_add_pd(a[0][i], a[1][i]), times, add)));
    for (int64_t i = 0; i < rows_in_tile; i++) y[i * out_features + r] = t[i];
}

#define ZERO_SUMS(a) for (int i_ = 0; i_ < 4; i_++) a[0][i_] = a[1][i_] = _mm256_setzero_pd()

AVX2 static inline void csr_tile_rows(const int64_t *offsets, const void *cols, const void *vals, int ikind,
                                      int vkind, const double *xt, float *y, int64_t out_features,
                                      int64_t rows_in_tile, const float *bias, const float *scale, int64_t lo,
                                      int64_t hi) {
    for (int64_t r = lo; r < hi; r++) {
        __m256d a[2][4];
        ZERO_SUMS(a);
        int64_t k = offsets[r], end = offsets[r + 1];
        for (; k + 4 <= end; k += 4) {
            float v[4] __attribute__((aligned(16)));
            values4(vals, k, vkind, v);
            for (int i = 0; i < 4; i++) fma_column(a[i & 1], v[i], xt, index_at(cols, k + i, ikind));
        }
        for (; k < end; k++) fma_column(a[0], value1(vals, k, vkind), xt, index_at(cols, k, ikind));
        store_sums(a, y, out_features, r, rows_in_tile, bias, scale);
    }
}

/* one copy per index and value type, so the inner loops have no type tests */
AVX2 static void csr_tile_avx2(const int64_t *offsets, const void *cols, const void *vals, int ikind, int vkind,
                               const double *xt, float *y, int64_t out_features, int64_t rows_in_tile,
                               const float *bias, const float *scale, int64_t lo, int64_t hi) {
#define CSR_TILE(I, V) if (ikind == I && vkind == V) { \
        csr_tile_rows(offsets, cols, vals, I, V, xt, y, out_features, rows_in_tile, bias, scale, lo, hi); return; }
    CSR_TILE(IDX_U16, VAL_F32) CSR_TILE(IDX_U16, VAL_F16) CSR_TILE(IDX_U16, VAL_BF16) CSR_TILE(IDX_U16, VAL_I8)
    CSR_TILE(IDX_I32, VAL_F32) CSR_TILE(IDX_I32, VAL_F16) CSR_TILE(IDX_I32, VAL_BF16) CSR_TILE(IDX_I32, VAL_I8)
#undef CSR_TILE
    csr_tile_rows(offsets, cols, vals, ikind, vkind, xt, y, out_features, rows_in_tile, bias, scale, lo, hi);
}

AVX2 static inline void bitmask_tile_rows(const int64_t *offsets, const uint8_t *mask, int64_t row_bytes,
                                          const void *vals, int vkind, const double *xt, float *y,
                                          int64_t out_features, int64_t rows_in_tile, const float *bias,
                                          const float *scale, int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; r++) {
        const uint8_t *m = mask + r * row_bytes;
        int64_t k = offsets[r];
        __m256d a[2][4];
        ZERO_SUMS(a);
        for (int64_t g = 0; g < row_bytes; g++) {
            unsigned bits = m[g];
            __m256d *sum = a[g & 1];
            while (bits) {
                int j = __builtin_ctz(bits);
                fma_column(sum, value1(vals, k++, vkind), xt, g * 8 + j);
                bits &= bits - 1;
            }
        }
        store_sums(a, y, out_features, r, rows_in_tile, bias, scale);
    }
}

AVX2 static void bitmask_tile_avx2(const int64_t *offsets, const uint8_t *mask, int64_t row_bytes, const void *vals,
                                   int vkind, const double *xt, float *y, int64_t out_features, int64_t rows_in_tile,
                                   const float *bias, const float *scale, int64_t lo, int64_t hi) {
#define BM_TILE(V) if (vkind == V) { \
        bitmask_tile_rows(offsets, mask, row_bytes, vals, V, xt, y, out_features, rows_in_tile, bias, scale, lo, hi); \
        return; }
    BM_TILE(VAL_F32) BM_TILE(VAL_F16) BM_TILE(VAL_BF16) BM_TILE(VAL_I8)
#undef BM_TILE
    bitmask_tile_rows(offsets, mask, row_bytes, vals, vkind, xt, y, out_features, rows_in_tile, bias, scale, lo, hi);
}
#endif

/* ------------------------------------------------------------------ drivers */

typedef struct {
    int bitmask;                 /* 0: CSR, 1: bitmask */
    const int64_t *offsets;
    const void *cols;            /* CSR */
    int ikind;
    const uint8_t *mask;         /* bitmask */
    int64_t row_bytes;
    const void *vals;
    int vkind;
    const float *scales;         /* int8 values: one scale per row; else NULL */
    int64_t rows, in_features;
} Weight;

/* scratch: 64-byte aligned doubles, in_features of them at batch 1 (x in fp64), in_features * TILE above */
static void run_rows(const Weight *w, const float *x, int64_t batch, float *y, const float *bias, int threads,
                     double *scratch) {
    int vector = has_avx2;
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        int t = 0, nt = 1;
#ifdef _OPENMP
        t = omp_get_thread_num();
        nt = omp_get_num_threads();
#endif
        int64_t lo, hi;
        share(w->offsets, w->rows, t, nt, &lo, &hi);
        int64_t c0 = w->in_features * t / nt, c1 = w->in_features * (t + 1) / nt;  /* this thread's columns */
        if (!vector) {
            if (w->bitmask)
                bitmask_rows_portable(w->offsets, w->mask, w->row_bytes, w->vals, w->vkind, x, w->in_features, batch,
                                      y, w->rows, bias, w->scales, lo, hi);
            else
                csr_rows_portable(w->offsets, w->cols, w->vals, w->ikind, w->vkind, x, w->in_features, batch, y,
                                  w->rows, bias, w->scales, lo, hi);
        }
#if PK_X86
        else if (batch == 1) {
            if (w->bitmask) {
                bitmask_b1_avx2(w->offsets, w->mask, w->row_bytes, w->vals, w->vkind, x, w->in_features, y, bias,
                                w->scales, lo, hi);
            } else {
                for (int64_t c = c0; c < c1; c++) scratch[c] = x[c];
#pragma omp barrier
                csr_b1_fast(w->offsets, w->cols, w->vals, w->ikind, w->vkind, scratch, y, bias, w->scales, lo, hi);
            }
        } else {
            for (int64_t start = 0; start < batch; start += TILE) {
                int64_t n = batch - start < TILE ? batch - start : TILE;
                /* transpose this tile of x (columns split over the threads), then every thread runs its rows */
                for (int64_t c = c0; c < c1; c++)
                    for (int64_t i = 0; i < TILE; i++)
                        scratch[c * TILE + i] = i < n ? x[(start + i) * w->in_features + c] : 0.0;
#pragma omp barrier
                if (w->bitmask)
                    bitmask_tile_avx2(w->offsets, w->mask, w->row_bytes, w->vals, w->vkind, scratch,
                                      y + start * w->rows, w->rows, n, bias, w->scales, lo, hi);
                else
                    csr_tile_avx2(w->offsets, w->cols, w->vals, w->ikind, w->vkind, scratch, y + start * w->rows,
                                  w->rows, n, bias, w->scales, lo, hi);
#pragma omp barrier
            }
        }
#else
        (void)c0;
        (void)c1;
#endif
    }
}

static PyObject *matmul(PyObject *self, PyObject *args) {
    (void)self;
    int bitmask, ikind, vkind, threads;
    unsigned long long offsets, cols, mask, vals, scales, x, y, bias, scratch;
    long long row_bytes, rows, in_features, batch;
    if (!PyArg_ParseTuple(args, "iKKiKLKiKLLKLKKiK", &bitmask, &offsets, &cols, &ikind, &mask, &row_bytes, &vals,
                          &vkind, &scales, &rows, &in_features, &x, &batch, &y, &bias, &threads, &scratch))
        return NULL;
    if (vkind < VAL_F32 || vkind > VAL_I8 || (vkind == VAL_I8) != (scales != 0)) {
        PyErr_SetString(PyExc_ValueError, "value kind and scales do not match (int8 values need one scale per row)");
        return NULL;
    }
    Weight w = {bitmask, (const int64_t *)(uintptr_t)offsets, (const void *)(uintptr_t)cols, ikind,
                (const uint8_t *)(uintptr_t)mask, row_bytes, (const void *)(uintptr_t)vals, vkind,
                (const float *)(uintptr_t)scales, rows, in_features};
    Py_BEGIN_ALLOW_THREADS
    run_rows(&w, (const float *)(uintptr_t)x, batch, (float *)(uintptr_t)y, (const float *)(uintptr_t)bias,
             threads < 1 ? 1 : threads, (double *)(uintptr_t)scratch);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *read_bandwidth(PyObject *self, PyObject *args) {
    (void)self;
    /* sum of n floats at a (a stream-like read probe); the caller times it */
    unsigned long long a;
    long long n;
    int threads;
    if (!PyArg_ParseTuple(args, "KLi", &a, &n, &threads)) return NULL;
    const float *p = (const float *)(uintptr_t)a;
    double total = 0.0;
    Py_BEGIN_ALLOW_THREADS
#pragma omp parallel for num_threads(threads) reduction(+ : total) schedule(static)
    for (long long i = 0; i < n; i += 16) {
        float s = 0.0f;
        long long end = i + 16 < n ? i + 16 : n;
        for (long long j = i; j < end; j++) s += p[j];
        total += s;
    }
    Py_END_ALLOW_THREADS
    return PyFloat_FromDouble(total);
}

static PyObject *vector_isa(PyObject *self, PyObject *args) {
    (void)self;
    (void)args;
    return PyUnicode_FromString(has_avx2 ? "avx2" : "portable");
}

static int cpu_has_avx2 = 0;

static PyObject *set_vector_isa(PyObject *self, PyObject *args) {
    (void)self;
    /* run the portable loops (tests run them on any CPU), or the AVX2 ones where the CPU has them */
    const char *name;
    if (!PyArg_ParseTuple(args, "s", &name)) return NULL;
    if (strcmp(name, "portable") == 0) {
        has_avx2 = 0;
    } else if (strcmp(name, "avx2") == 0 && cpu_has_avx2) {
        has_avx2 = 1;
    } else {
        PyErr_Format(PyExc_ValueError, "vector ISA %R: expected 'portable'%s", PyTuple_GET_ITEM(args, 0),
                     cpu_has_avx2 ? " or 'avx2'" : " (this CPU lacks AVX2, FMA or F16C)");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"matmul", matmul, METH_VARARGS, "y = x W^T (+ b) for a CSR or bitmask W (raw addresses; see packed.py)"},
    {"read_bandwidth", read_bandwidth, METH_VARARGS, "sum n floats (a read-bandwidth probe)"},
    {"vector_isa", vector_isa, METH_NOARGS, "the vector code path in use: avx2 or portable"},
    {"set_vector_isa", set_vector_isa, METH_VARARGS,
     "choose the code path: 'portable', or 'avx2' where the CPU has it"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_sparse", "prunekit's sparse CPU kernels", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__sparse(void) {
#if PK_X86
    __builtin_cpu_init();
    has_avx2 = cpu_has_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                              __builtin_cpu_supports("f16c");
    for (int m = 0; m < 256; m++) {
        int packed = 0;
        for (int j = 0; j < 8; j++) {
            int set = (m >> j) & 1;
            expand_perm[m][j] = set ? packed : 7;
            expand_lanes[m][j] = set ? -1 : 0;
            packed += set;
        }
    }
    for (int n = 0; n <= 8; n++)
        for (int j = 0; j < 8; j++) first_lanes[n][j] = j < n ? -1 : 0;
#endif
    return PyModule_Create(&module);
}
