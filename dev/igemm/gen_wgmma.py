# Generates the wgmma wrappers of igemm_v2.cu (between the GEN markers): one per (N, type).
# python3 dev/igemm/gen_wgmma.py > /tmp/w.inc
Ns = [16, 32, 64, 128, 160]
out = []
out.append("template <typename T, int N> struct Wgmma;")
for t, tn in (("bf16", "__nv_bfloat16"), ("f16", "__half")):
    for n in Ns:
        r = n // 2
        regs = ", ".join("%%%d" % i for i in range(r))
        out.append("template <> struct Wgmma<%s, %d> {" % (tn, n))
        out.append("  // D[64 x %d] (+)= A[64 x 16] * B[%d x 16]^T, both K-major in shared memory (descriptors)" % (n, n))
        out.append("  __device__ __forceinline__ static void mma(float (&d)[%d], uint64_t da, uint64_t db, int scale_d) {" % r)
        out.append("    asm volatile(")
        out.append('        "{\\n.reg .pred p;\\nsetp.ne.b32 p, %%%d, 0;\\n"' % (r + 2))
        out.append('        "wgmma.mma_async.sync.aligned.m64n%dk16.f32.%s.%s {%s}, %%%d, %%%d, p, 1, 1, 0, 0;\\n}\\n"' % (n, t, t, regs, r, r + 1))
        ops = ", ".join('"+f"(d[%d])' % i for i in range(r))
        out.append("        : %s" % ops)
        out.append('        : "l"(da), "l"(db), "r"(scale_d));')
        out.append("  }")
        out.append("};")
print("\n".join(out))
