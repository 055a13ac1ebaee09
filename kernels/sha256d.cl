/*
 * SHA-256d nonce search over 80-byte block headers (Bitcoin's layout).
 *
 * One work-item hashes VECTOR consecutive nonces as the lanes of one uintN vector:
 * explicit vectors are what makes PoCL (and GPUs) use the SIMD units, so everything in the
 * per-nonce path is straight-line code on those vectors: fully unrolled rounds, every
 * message-schedule word a named value (no private array), macros instead of helper calls,
 * and no atomic or branch until a lane has actually met the early-reject test.
 *
 * Build options (-D):
 *   VECTOR=1|2|4|8|16   nonces per work-item (uint, uint2, ... uint16); default 1.
 *                       The host measures each width once per device and keeps the fastest.
 *   PORTABLE_OPS        spell rotations and bit selections with shifts and masks instead of
 *                       rotate()/bitselect(), for compilers that do not inline those builtins.
 *
 * What the host folds in (miner/midstate.py, one computation per header):
 *   the midstate of the first 64-byte block; rounds 0-2 of the second block (they read only
 *   the fixed words W0-W2); round 3's terms without the nonce; the nonce-free parts of
 *   W16-W19, W31 and W32. Constant words (padding, zeros, length) are literals, folded by the
 *   compiler, which also folds the second hash's first rounds from the constant IV.
 *
 * Early reject: a hash meets the target only if its most significant 32 bits (bytes 28..31 of
 * the digest, read little-endian, i.e. the byte-swapped last state word H7) are at most the
 * target's. H7 is complete after round 60 of the second hash, so rounds 61-63 are skipped.
 * Lanes that pass are *candidates*: when their top word equals the target's, the lower words
 * decide, so the host re-checks every candidate with the consensus hash.
 *
 * Output: found[0] counts work-items with a candidate; work-item k of them writes
 * found[1 + 2k] = its global id and found[2 + 2k] = a bit mask of its candidate lanes. Each
 * work-item writes at most one entry, so a buffer of 1 + 2 * global size words cannot overflow
 * however easy the target; the atomic runs only on that rare path.
 */

#ifndef VECTOR
#define VECTOR 1
#endif

#if VECTOR == 1
typedef uint u;
typedef int hit_t;
#define LANE_OFFSETS 0u
#define ANY(hit) (hit)
#define LANE_MASK(hit) 1u
#elif VECTOR == 2
typedef uint2 u;
typedef int2 hit_t;
#define LANE_OFFSETS ((u)(0, 1))
#define ANY(hit) any(hit)
#define OR_LANES(x) ((x).s0 | (x).s1)
#define LANE_MASK(hit) OR_LANES(as_uint2(hit) & (u)(0x1, 0x2))
#elif VECTOR == 4
typedef uint4 u;
typedef int4 hit_t;
#define LANE_OFFSETS ((u)(0, 1, 2, 3))
#define ANY(hit) any(hit)
#define OR_LANES(x) ((x).s0 | (x).s1 | (x).s2 | (x).s3)
#define LANE_MASK(hit) OR_LANES(as_uint4(hit) & (u)(0x1, 0x2, 0x4, 0x8))
#elif VECTOR == 8
typedef uint8 u;
typedef int8 hit_t;
#define LANE_OFFSETS ((u)(0, 1, 2, 3, 4, 5, 6, 7))
#define ANY(hit) any(hit)
#define OR_LANES(x) ((x).s0 | (x).s1 | (x).s2 | (x).s3 | (x).s4 | (x).s5 | (x).s6 | (x).s7)
#define LANE_MASK(hit) OR_LANES(as_uint8(hit) & (u)(0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40, 0x80))
#elif VECTOR == 16
typedef uint16 u;
typedef int16 hit_t;
#define LANE_OFFSETS ((u)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))
#define ANY(hit) any(hit)
#define OR_LANES(x) ((x).s0 | (x).s1 | (x).s2 | (x).s3 | (x).s4 | (x).s5 | (x).s6 | (x).s7 | \
    (x).s8 | (x).s9 | (x).sa | (x).sb | (x).sc | (x).sd | (x).se | (x).sf)
#define LANE_MASK(hit) OR_LANES(as_uint16(hit) & (u)(0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40, 0x80, \
    0x100, 0x200, 0x400, 0x800, 0x1000, 0x2000, 0x4000, 0x8000))
#else
#error "VECTOR must be 1, 2, 4, 8 or 16"
#endif

#ifdef PORTABLE_OPS
#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
#define CH(e, f, g) ((g) ^ ((e) & ((f) ^ (g))))
#define MAJ(a, b, c) (((a) & (b)) | ((c) & ((a) | (b))))
#else
/* rotate() turns left; bitselect(x, y, m) takes y where m is set and x elsewhere. */
#define ROTR(x, n) rotate((x), (u)(32 - (n)))
#define CH(e, f, g) bitselect((g), (f), (e))
#define MAJ(a, b, c) bitselect((a), (b), (a) ^ (c))
#endif

#define BSIG0(a) (ROTR((a), 2) ^ ROTR((a), 13) ^ ROTR((a), 22))
#define BSIG1(e) (ROTR((e), 6) ^ ROTR((e), 11) ^ ROTR((e), 25))
#define SSIG0(x) (ROTR((x), 7) ^ ROTR((x), 18) ^ ((x) >> 3))
#define SSIG1(x) (ROTR((x), 17) ^ ROTR((x), 19) ^ ((x) >> 10))

/* One round; the caller rotates the names instead of moving eight values. kw is K[i] + W[i]. */
#define ROUND(a, b, c, d, e, f, g, h, kw)                              \
    {                                                                  \
        const u t1_ = (h) + BSIG1(e) + CH((e), (f), (g)) + (kw);       \
        (d) += t1_;                                                    \
        (h) = t1_ + BSIG0(a) + MAJ((a), (b), (c));                     \
    }

/* Big-endian word of a little-endian header field (SHA-256 reads words big-endian). */
#define BSWAP(x) ((ROTR((x), 8) & 0xff00ff00u) | (ROTR((x), 24) & 0x00ff00ffu))

__kernel void search(
    __global uint *found,
    const uint base,        /* nonce of lane 0 of work-item 0 (wraps modulo 2^32) */
    const uint target_top,  /* the target's most significant 32 bits */
    /* midstate: state after the header's first 64 bytes */
    const uint m0, const uint m1, const uint m2, const uint m3,
    const uint m4, const uint m5, const uint m6, const uint m7,
    /* working variables after rounds 0-2 of the second block */
    const uint a2, const uint b2, const uint c2, const uint d2,
    const uint e2, const uint f2, const uint g2, const uint h2,
    const uint round3_t1, const uint round3_t2,
    const uint w16, const uint w17, const uint w18_part, const uint w19_part,
    const uint w31_part, const uint w32_part)
{
    const u nonce = (u)(base + (uint)get_global_id(0) * VECTOR) + LANE_OFFSETS;
    const u W3 = BSWAP(nonce);

    /* Round 3 of the second block, with the names as ROUND(f, g, h, a, b, c, d, e) uses them. */
    const u t1 = (u)round3_t1 + W3;
    u f = a2, g = b2, h = c2, a = d2 + t1;
    u b = e2, c = f2, d = g2, e = t1 + round3_t2;

    /* hash 1, rounds 4..15: W4..W15 are constants */
    ROUND(e, f, g, h, a, b, c, d, 0xb956c25bu);
    ROUND(d, e, f, g, h, a, b, c, 0x59f111f1u);
    ROUND(c, d, e, f, g, h, a, b, 0x923f82a4u);
    ROUND(b, c, d, e, f, g, h, a, 0xab1c5ed5u);
    ROUND(a, b, c, d, e, f, g, h, 0xd807aa98u);
    ROUND(h, a, b, c, d, e, f, g, 0x12835b01u);
    ROUND(g, h, a, b, c, d, e, f, 0x243185beu);
    ROUND(f, g, h, a, b, c, d, e, 0x550c7dc3u);
    ROUND(e, f, g, h, a, b, c, d, 0x72be5d74u);
    ROUND(d, e, f, g, h, a, b, c, 0x80deb1feu);
    ROUND(c, d, e, f, g, h, a, b, 0x9bdc06a7u);
    ROUND(b, c, d, e, f, g, h, a, 0xc19bf3f4u);
    /* hash 1, rounds 16..63 */
    ROUND(a, b, c, d, e, f, g, h, w16 + 0xe49b69c1u);
    ROUND(h, a, b, c, d, e, f, g, w17 + 0xefbe4786u);
    const u W18 = w18_part + SSIG0(W3);
    ROUND(g, h, a, b, c, d, e, f, W18 + 0x0fc19dc6u);
    const u W19 = w19_part + W3;
    ROUND(f, g, h, a, b, c, d, e, W19 + 0x240ca1ccu);
    const u W20 = SSIG1(W18) + 0x80000000u;
    ROUND(e, f, g, h, a, b, c, d, W20 + 0x2de92c6fu);
    const u W21 = SSIG1(W19);
    ROUND(d, e, f, g, h, a, b, c, W21 + 0x4a7484aau);
    const u W22 = SSIG1(W20) + 0x00000280u;
    ROUND(c, d, e, f, g, h, a, b, W22 + 0x5cb0a9dcu);
    const u W23 = SSIG1(W21) + w16;
    ROUND(b, c, d, e, f, g, h, a, W23 + 0x76f988dau);
    const u W24 = SSIG1(W22) + w17;
    ROUND(a, b, c, d, e, f, g, h, W24 + 0x983e5152u);
    const u W25 = SSIG1(W23) + W18;
    ROUND(h, a, b, c, d, e, f, g, W25 + 0xa831c66du);
    const u W26 = SSIG1(W24) + W19;
    ROUND(g, h, a, b, c, d, e, f, W26 + 0xb00327c8u);
    const u W27 = SSIG1(W25) + W20;
    ROUND(f, g, h, a, b, c, d, e, W27 + 0xbf597fc7u);
    const u W28 = SSIG1(W26) + W21;
    ROUND(e, f, g, h, a, b, c, d, W28 + 0xc6e00bf3u);
    const u W29 = SSIG1(W27) + W22;
    ROUND(d, e, f, g, h, a, b, c, W29 + 0xd5a79147u);
    const u W30 = SSIG1(W28) + W23 + 0x00a00055u;
    ROUND(c, d, e, f, g, h, a, b, W30 + 0x06ca6351u);
    const u W31 = SSIG1(W29) + W24 + w31_part;
    ROUND(b, c, d, e, f, g, h, a, W31 + 0x14292967u);
    const u W32 = SSIG1(W30) + W25 + w32_part;
    ROUND(a, b, c, d, e, f, g, h, W32 + 0x27b70a85u);
    const u W33 = SSIG1(W31) + W26 + SSIG0(W18) + w17;
    ROUND(h, a, b, c, d, e, f, g, W33 + 0x2e1b2138u);
    const u W34 = SSIG1(W32) + W27 + SSIG0(W19) + W18;
    ROUND(g, h, a, b, c, d, e, f, W34 + 0x4d2c6dfcu);
    const u W35 = SSIG1(W33) + W28 + SSIG0(W20) + W19;
    ROUND(f, g, h, a, b, c, d, e, W35 + 0x53380d13u);
    const u W36 = SSIG1(W34) + W29 + SSIG0(W21) + W20;
    ROUND(e, f, g, h, a, b, c, d, W36 + 0x650a7354u);
    const u W37 = SSIG1(W35) + W30 + SSIG0(W22) + W21;
    ROUND(d, e, f, g, h, a, b, c, W37 + 0x766a0abbu);
    const u W38 = SSIG1(W36) + W31 + SSIG0(W23) + W22;
    ROUND(c, d, e, f, g, h, a, b, W38 + 0x81c2c92eu);
    const u W39 = SSIG1(W37) + W32 + SSIG0(W24) + W23;
    ROUND(b, c, d, e, f, g, h, a, W39 + 0x92722c85u);
    const u W40 = SSIG1(W38) + W33 + SSIG0(W25) + W24;
    ROUND(a, b, c, d, e, f, g, h, W40 + 0xa2bfe8a1u);
    const u W41 = SSIG1(W39) + W34 + SSIG0(W26) + W25;
    ROUND(h, a, b, c, d, e, f, g, W41 + 0xa81a664bu);
    const u W42 = SSIG1(W40) + W35 + SSIG0(W27) + W26;
    ROUND(g, h, a, b, c, d, e, f, W42 + 0xc24b8b70u);
    const u W43 = SSIG1(W41) + W36 + SSIG0(W28) + W27;
    ROUND(f, g, h, a, b, c, d, e, W43 + 0xc76c51a3u);
    const u W44 = SSIG1(W42) + W37 + SSIG0(W29) + W28;
    ROUND(e, f, g, h, a, b, c, d, W44 + 0xd192e819u);
    const u W45 = SSIG1(W43) + W38 + SSIG0(W30) + W29;
    ROUND(d, e, f, g, h, a, b, c, W45 + 0xd6990624u);
    const u W46 = SSIG1(W44) + W39 + SSIG0(W31) + W30;
    ROUND(c, d, e, f, g, h, a, b, W46 + 0xf40e3585u);
    const u W47 = SSIG1(W45) + W40 + SSIG0(W32) + W31;
    ROUND(b, c, d, e, f, g, h, a, W47 + 0x106aa070u);
    const u W48 = SSIG1(W46) + W41 + SSIG0(W33) + W32;
    ROUND(a, b, c, d, e, f, g, h, W48 + 0x19a4c116u);
    const u W49 = SSIG1(W47) + W42 + SSIG0(W34) + W33;
    ROUND(h, a, b, c, d, e, f, g, W49 + 0x1e376c08u);
    const u W50 = SSIG1(W48) + W43 + SSIG0(W35) + W34;
    ROUND(g, h, a, b, c, d, e, f, W50 + 0x2748774cu);
    const u W51 = SSIG1(W49) + W44 + SSIG0(W36) + W35;
    ROUND(f, g, h, a, b, c, d, e, W51 + 0x34b0bcb5u);
    const u W52 = SSIG1(W50) + W45 + SSIG0(W37) + W36;
    ROUND(e, f, g, h, a, b, c, d, W52 + 0x391c0cb3u);
    const u W53 = SSIG1(W51) + W46 + SSIG0(W38) + W37;
    ROUND(d, e, f, g, h, a, b, c, W53 + 0x4ed8aa4au);
    const u W54 = SSIG1(W52) + W47 + SSIG0(W39) + W38;
    ROUND(c, d, e, f, g, h, a, b, W54 + 0x5b9cca4fu);
    const u W55 = SSIG1(W53) + W48 + SSIG0(W40) + W39;
    ROUND(b, c, d, e, f, g, h, a, W55 + 0x682e6ff3u);
    const u W56 = SSIG1(W54) + W49 + SSIG0(W41) + W40;
    ROUND(a, b, c, d, e, f, g, h, W56 + 0x748f82eeu);
    const u W57 = SSIG1(W55) + W50 + SSIG0(W42) + W41;
    ROUND(h, a, b, c, d, e, f, g, W57 + 0x78a5636fu);
    const u W58 = SSIG1(W56) + W51 + SSIG0(W43) + W42;
    ROUND(g, h, a, b, c, d, e, f, W58 + 0x84c87814u);
    const u W59 = SSIG1(W57) + W52 + SSIG0(W44) + W43;
    ROUND(f, g, h, a, b, c, d, e, W59 + 0x8cc70208u);
    const u W60 = SSIG1(W58) + W53 + SSIG0(W45) + W44;
    ROUND(e, f, g, h, a, b, c, d, W60 + 0x90befffau);
    const u W61 = SSIG1(W59) + W54 + SSIG0(W46) + W45;
    ROUND(d, e, f, g, h, a, b, c, W61 + 0xa4506cebu);
    const u W62 = SSIG1(W60) + W55 + SSIG0(W47) + W46;
    ROUND(c, d, e, f, g, h, a, b, W62 + 0xbef9a3f7u);
    const u W63 = SSIG1(W61) + W56 + SSIG0(W48) + W47;
    ROUND(b, c, d, e, f, g, h, a, W63 + 0xc67178f2u);

    /* End of hash 1: its digest is the second hash's message (W0..W7 of one padded block). */
    const u H0 = a + m0, H1 = b + m1, H2 = c + m2, H3 = d + m3;
    const u H4 = e + m4, H5 = f + m5, H6 = g + m6, H7 = h + m7;

    a = 0x6a09e667u; b = 0xbb67ae85u; c = 0x3c6ef372u; d = 0xa54ff53au;
    e = 0x510e527fu; f = 0x9b05688cu; g = 0x1f83d9abu; h = 0x5be0cd19u;

    /* hash 2, of the 32-byte digest: message words X0..X7 are H0..H7, X8 the padding word,
     * X9..X14 zero and X15 the length (256 bits), so the first rounds fold to constants. */
    ROUND(a, b, c, d, e, f, g, h, H0 + 0x428a2f98u);
    ROUND(h, a, b, c, d, e, f, g, H1 + 0x71374491u);
    ROUND(g, h, a, b, c, d, e, f, H2 + 0xb5c0fbcfu);
    ROUND(f, g, h, a, b, c, d, e, H3 + 0xe9b5dba5u);
    ROUND(e, f, g, h, a, b, c, d, H4 + 0x3956c25bu);
    ROUND(d, e, f, g, h, a, b, c, H5 + 0x59f111f1u);
    ROUND(c, d, e, f, g, h, a, b, H6 + 0x923f82a4u);
    ROUND(b, c, d, e, f, g, h, a, H7 + 0xab1c5ed5u);
    ROUND(a, b, c, d, e, f, g, h, 0x5807aa98u);
    ROUND(h, a, b, c, d, e, f, g, 0x12835b01u);
    ROUND(g, h, a, b, c, d, e, f, 0x243185beu);
    ROUND(f, g, h, a, b, c, d, e, 0x550c7dc3u);
    ROUND(e, f, g, h, a, b, c, d, 0x72be5d74u);
    ROUND(d, e, f, g, h, a, b, c, 0x80deb1feu);
    ROUND(c, d, e, f, g, h, a, b, 0x9bdc06a7u);
    ROUND(b, c, d, e, f, g, h, a, 0xc19bf274u);
    const u X16 = SSIG0(H1) + H0;
    ROUND(a, b, c, d, e, f, g, h, X16 + 0xe49b69c1u);
    const u X17 = SSIG0(H2) + H1 + 0x00a00000u;
    ROUND(h, a, b, c, d, e, f, g, X17 + 0xefbe4786u);
    const u X18 = SSIG1(X16) + SSIG0(H3) + H2;
    ROUND(g, h, a, b, c, d, e, f, X18 + 0x0fc19dc6u);
    const u X19 = SSIG1(X17) + SSIG0(H4) + H3;
    ROUND(f, g, h, a, b, c, d, e, X19 + 0x240ca1ccu);
    const u X20 = SSIG1(X18) + SSIG0(H5) + H4;
    ROUND(e, f, g, h, a, b, c, d, X20 + 0x2de92c6fu);
    const u X21 = SSIG1(X19) + SSIG0(H6) + H5;
    ROUND(d, e, f, g, h, a, b, c, X21 + 0x4a7484aau);
    const u X22 = SSIG1(X20) + SSIG0(H7) + H6 + 0x00000100u;
    ROUND(c, d, e, f, g, h, a, b, X22 + 0x5cb0a9dcu);
    const u X23 = SSIG1(X21) + X16 + H7 + 0x11002000u;
    ROUND(b, c, d, e, f, g, h, a, X23 + 0x76f988dau);
    const u X24 = SSIG1(X22) + X17 + 0x80000000u;
    ROUND(a, b, c, d, e, f, g, h, X24 + 0x983e5152u);
    const u X25 = SSIG1(X23) + X18;
    ROUND(h, a, b, c, d, e, f, g, X25 + 0xa831c66du);
    const u X26 = SSIG1(X24) + X19;
    ROUND(g, h, a, b, c, d, e, f, X26 + 0xb00327c8u);
    const u X27 = SSIG1(X25) + X20;
    ROUND(f, g, h, a, b, c, d, e, X27 + 0xbf597fc7u);
    const u X28 = SSIG1(X26) + X21;
    ROUND(e, f, g, h, a, b, c, d, X28 + 0xc6e00bf3u);
    const u X29 = SSIG1(X27) + X22;
    ROUND(d, e, f, g, h, a, b, c, X29 + 0xd5a79147u);
    const u X30 = SSIG1(X28) + X23 + 0x00400022u;
    ROUND(c, d, e, f, g, h, a, b, X30 + 0x06ca6351u);
    const u X31 = SSIG1(X29) + X24 + SSIG0(X16) + 0x00000100u;
    ROUND(b, c, d, e, f, g, h, a, X31 + 0x14292967u);
    const u X32 = SSIG1(X30) + X25 + SSIG0(X17) + X16;
    ROUND(a, b, c, d, e, f, g, h, X32 + 0x27b70a85u);
    const u X33 = SSIG1(X31) + X26 + SSIG0(X18) + X17;
    ROUND(h, a, b, c, d, e, f, g, X33 + 0x2e1b2138u);
    const u X34 = SSIG1(X32) + X27 + SSIG0(X19) + X18;
    ROUND(g, h, a, b, c, d, e, f, X34 + 0x4d2c6dfcu);
    const u X35 = SSIG1(X33) + X28 + SSIG0(X20) + X19;
    ROUND(f, g, h, a, b, c, d, e, X35 + 0x53380d13u);
    const u X36 = SSIG1(X34) + X29 + SSIG0(X21) + X20;
    ROUND(e, f, g, h, a, b, c, d, X36 + 0x650a7354u);
    const u X37 = SSIG1(X35) + X30 + SSIG0(X22) + X21;
    ROUND(d, e, f, g, h, a, b, c, X37 + 0x766a0abbu);
    const u X38 = SSIG1(X36) + X31 + SSIG0(X23) + X22;
    ROUND(c, d, e, f, g, h, a, b, X38 + 0x81c2c92eu);
    const u X39 = SSIG1(X37) + X32 + SSIG0(X24) + X23;
    ROUND(b, c, d, e, f, g, h, a, X39 + 0x92722c85u);
    const u X40 = SSIG1(X38) + X33 + SSIG0(X25) + X24;
    ROUND(a, b, c, d, e, f, g, h, X40 + 0xa2bfe8a1u);
    const u X41 = SSIG1(X39) + X34 + SSIG0(X26) + X25;
    ROUND(h, a, b, c, d, e, f, g, X41 + 0xa81a664bu);
    const u X42 = SSIG1(X40) + X35 + SSIG0(X27) + X26;
    ROUND(g, h, a, b, c, d, e, f, X42 + 0xc24b8b70u);
    const u X43 = SSIG1(X41) + X36 + SSIG0(X28) + X27;
    ROUND(f, g, h, a, b, c, d, e, X43 + 0xc76c51a3u);
    const u X44 = SSIG1(X42) + X37 + SSIG0(X29) + X28;
    ROUND(e, f, g, h, a, b, c, d, X44 + 0xd192e819u);
    const u X45 = SSIG1(X43) + X38 + SSIG0(X30) + X29;
    ROUND(d, e, f, g, h, a, b, c, X45 + 0xd6990624u);
    const u X46 = SSIG1(X44) + X39 + SSIG0(X31) + X30;
    ROUND(c, d, e, f, g, h, a, b, X46 + 0xf40e3585u);
    const u X47 = SSIG1(X45) + X40 + SSIG0(X32) + X31;
    ROUND(b, c, d, e, f, g, h, a, X47 + 0x106aa070u);
    const u X48 = SSIG1(X46) + X41 + SSIG0(X33) + X32;
    ROUND(a, b, c, d, e, f, g, h, X48 + 0x19a4c116u);
    const u X49 = SSIG1(X47) + X42 + SSIG0(X34) + X33;
    ROUND(h, a, b, c, d, e, f, g, X49 + 0x1e376c08u);
    const u X50 = SSIG1(X48) + X43 + SSIG0(X35) + X34;
    ROUND(g, h, a, b, c, d, e, f, X50 + 0x2748774cu);
    const u X51 = SSIG1(X49) + X44 + SSIG0(X36) + X35;
    ROUND(f, g, h, a, b, c, d, e, X51 + 0x34b0bcb5u);
    const u X52 = SSIG1(X50) + X45 + SSIG0(X37) + X36;
    ROUND(e, f, g, h, a, b, c, d, X52 + 0x391c0cb3u);
    const u X53 = SSIG1(X51) + X46 + SSIG0(X38) + X37;
    ROUND(d, e, f, g, h, a, b, c, X53 + 0x4ed8aa4au);
    const u X54 = SSIG1(X52) + X47 + SSIG0(X39) + X38;
    ROUND(c, d, e, f, g, h, a, b, X54 + 0x5b9cca4fu);
    const u X55 = SSIG1(X53) + X48 + SSIG0(X40) + X39;
    ROUND(b, c, d, e, f, g, h, a, X55 + 0x682e6ff3u);
    const u X56 = SSIG1(X54) + X49 + SSIG0(X41) + X40;
    ROUND(a, b, c, d, e, f, g, h, X56 + 0x748f82eeu);
    const u X57 = SSIG1(X55) + X50 + SSIG0(X42) + X41;
    ROUND(h, a, b, c, d, e, f, g, X57 + 0x78a5636fu);
    const u X58 = SSIG1(X56) + X51 + SSIG0(X43) + X42;
    ROUND(g, h, a, b, c, d, e, f, X58 + 0x84c87814u);
    const u X59 = SSIG1(X57) + X52 + SSIG0(X44) + X43;
    ROUND(f, g, h, a, b, c, d, e, X59 + 0x8cc70208u);
    const u X60 = SSIG1(X58) + X53 + SSIG0(X45) + X44;
    /* Round 60 as ROUND(e, f, g, h, a, b, c, d) would do it, but only the part that yields h,
     * which is the final state's last word once rounds 61-63 have only shifted it along. */
    h += d + BSIG1(a) + CH(a, b, c) + 0x90befffau + X60;
    const u top = BSWAP(h + 0x5be0cd19u);

    const hit_t hit = top <= (u)target_top;
    if (ANY(hit)) {
        const uint slot = atomic_inc(found);
        found[1 + 2 * slot] = (uint)get_global_id(0);
        found[2 + 2 * slot] = LANE_MASK(hit);
    }
}
