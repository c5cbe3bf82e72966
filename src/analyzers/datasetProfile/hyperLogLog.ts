/**
 * HyperLogLog distinct-count sketch: 2^14 registers (16 KiB), relative standard error
 * 1.04/sqrt(2^14) ≈ 0.81 % at every cardinality, using Ertl's improved estimator
 * ("New cardinality estimation algorithms for HyperLogLog sketches", 2017, alg. 6), which
 * needs neither the linear-counting switch nor HLL++'s empirical bias tables.
 *
 * The 64-bit hash is two MurmurHash3 (x86, 32-bit) runs with different seeds over the
 * string's UTF-16 code units: 14 bits pick the register and the remaining 50 bits give the
 * rank, so the sketch does not saturate below ~10^15 distinct values.
 */

const P = 14;
const M = 1 << P;
const Q = 64 - P;
const ALPHA_INF = 1 / (2 * Math.LN2);
const SEED_A = 0x9747b28c;
const SEED_B = 0x5bd1e995;

export class HyperLogLog {
  private readonly registers = new Uint8Array(M);

  add(s: string): void {
    const h1 = murmur3(s, SEED_A);
    const h2 = murmur3(s, SEED_B);
    const idx = h1 >>> (32 - P);
    // Rank = 1 + leading zeros of the 50-bit remainder (low 18 bits of h1, then all of h2).
    const rest = (h1 << P) >>> 0;
    const rank = rest !== 0 ? Math.clz32(rest) + 1 : 32 - P + Math.clz32(h2) + 1;
    if (rank > (this.registers[idx] ?? 0)) this.registers[idx] = rank;
  }

  estimate(): number {
    const c = new Array<number>(Q + 2).fill(0);
    for (const r of this.registers) c[r] = (c[r] ?? 0) + 1;
    const zeros = c[0] ?? 0;
    if (zeros === M) return 0;
    let z = M * tau(1 - (c[Q + 1] ?? 0) / M);
    for (let k = Q; k >= 1; k--) z = 0.5 * (z + (c[k] ?? 0));
    z += M * sigma(zeros / M);
    return (ALPHA_INF * M * M) / z;
  }
}

function sigma(x: number): number {
  if (x === 1) return Infinity;
  let y = 1;
  let z = x;
  for (;;) {
    x *= x;
    const prev = z;
    z += x * y;
    y += y;
    if (z === prev) return z;
  }
}

function tau(x: number): number {
  if (x === 0 || x === 1) return 0;
  let y = 1;
  let z = 1 - x;
  for (;;) {
    x = Math.sqrt(x);
    const prev = z;
    y *= 0.5;
    z -= (1 - x) * (1 - x) * y;
    if (z === prev) return z / 3;
  }
}

/** MurmurHash3 x86_32, fed two UTF-16 code units per 32-bit block. */
export function murmur3(s: string, seed: number): number {
  let h = seed | 0;
  const n = s.length;
  let i = 0;
  for (; i + 1 < n; i += 2) {
    let k = s.charCodeAt(i) | (s.charCodeAt(i + 1) << 16);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  if (i < n) {
    let k = s.charCodeAt(i);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
  }
  h ^= n * 2;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
