// The CPU's instruction-throughput ceiling for the MFU tables (benchmarks/mfu.py): every core
// issuing independent AVX-512 FMAs (fp32) or VDPBF16PS (bf16 products, fp32 sums) and nothing
// else. No matmul or convolution can beat it; a measured matmul peak near it is a true peak.
// Twelve accumulators per thread cover the instructions' latency (4-6 cycles) at up to two
// issues a cycle, and live in registers (an array would make the compiler keep them in memory).
//
//   gcc -O2 -mavx512f -mavx512bf16 -fopenmp benchmarks/isa_peak.c -o /tmp/isa_peak
//   /tmp/isa_peak            # OMP_NUM_THREADS=1 for one core
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>

#define ITERS 200000000L
#define CHAINS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define DECL(k) __m512 c##k = _mm512_set1_ps(0.001f * k);
#define FMA(k) c##k = _mm512_fmadd_ps(c##k, a, b);
#define DPBF(k) c##k = _mm512_dpbf16_ps(c##k, abh, bbh);
#define SUM(k) +_mm512_reduce_add_ps(c##k)

// FLOP/s of all threads: 16 fp32 lanes x 12 chains per iteration, each lane 2 FLOP (FMA) or 4
// (VDPBF16PS: two bf16 products and their sums)
static double rate(int bf16) {
  double t = omp_get_wtime(), sink = 0;
#pragma omp parallel reduction(+ : sink)
  {
    CHAINS(DECL)
    __m512 a = _mm512_set1_ps(1.0000001f), b = _mm512_set1_ps(0.9999999f);
    __m512bh abh = _mm512_cvtne2ps_pbh(a, a), bbh = _mm512_cvtne2ps_pbh(b, b);
    if (bf16)
      for (long i = 0; i < ITERS; i++) { CHAINS(DPBF) }
    else
      for (long i = 0; i < ITERS; i++) { CHAINS(FMA) }
    sink += 0 CHAINS(SUM);  // the results are used: the loops cannot be dropped
  }
  double flop = (double)ITERS * 12 * 16 * (bf16 ? 4 : 2) * omp_get_max_threads();
  if (sink == 42) puts("");
  return flop / (omp_get_wtime() - t);
}

int main(void) {
  int threads = omp_get_max_threads();
  printf("threads %d: fp32 FMA %.1f GFLOP/s, bf16 VDPBF16PS %.1f GFLOP/s\n", threads,
         rate(0) / 1e9, rate(1) / 1e9);
  return 0;
}
