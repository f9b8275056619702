/* cpu.c: what the CPU at hand can do, read once at run time: its name, the instruction-set
 * features the kernels care about (AVX2, FMA, AVX-512 F/BW/VL/VNNI/BF16/FP16, each only when the
 * operating system also saves the registers: XGETBV), and its cache sizes (cpuid leaf 4 on Intel,
 * 0x8000001D on AMD, else /sys/devices/system/cpu/cpu0/cache, else 32 KiB / 512 KiB / 8 MiB).
 *
 * From these comes the instruction-set level every kernel family chooses from (knob_kernel_isa):
 * the best the CPU has, capped by KNOB_KERNEL=portable|avx2|avx512 in the environment or by
 * knob_kernel_force (tests, benchmarks). A family adds a kernel for a level as one row in its
 * own table (gemm.c's isa_table, nn.c's GELU). The AVX-512 level (F, BW and VL) has one kernel so
 * far, knob_gemm_bf16's vdpbf16ps one (with AVX512_BF16); every other family runs its AVX2 code
 * there (they test isa >= KNOB_ISA_AVX2).
 *
 * Not here: the blocking derived from the caches (gemm.c), ARM features. */
#include "knob_internal.h"

#include <stdio.h>
#include <string.h>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#define CPU_X86 1
#else
#define CPU_X86 0
#endif

static knob_cpu_info info;
static int info_ready;
static int forced = -1;   /* knob_kernel_force: -1 none */

#if CPU_X86
static void cpuid(unsigned leaf, unsigned sub, unsigned r[4])
{
    r[0] = r[1] = r[2] = r[3] = 0;
    __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
}

/* XCR0: which register states the OS saves on a context switch */
static unsigned long long xgetbv0(void)
{
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

/* Cache sizes from the deterministic cache parameters leaf (4 on Intel, 0x8000001D on AMD):
 * ways x partitions x line size x sets per level. */
static void caches_from_leaf(unsigned leaf, knob_cpu_info *c)
{
    for (unsigned i = 0; i < 16; i++) {
        unsigned r[4];
        cpuid(leaf, i, r);
        unsigned type = r[0] & 31, level = (r[0] >> 5) & 7;
        if (type == 0)
            break;
        if (type == 2)  /* instruction cache */
            continue;
        long size = (long)(((r[1] >> 22) & 1023) + 1) * (long)(((r[1] >> 12) & 1023) + 1) *
                    (long)((r[1] & 4095) + 1) * (long)(r[2] + 1);
        if (level == 1)
            c->l1d = size;
        else if (level == 2)
            c->l2 = size;
        else if (level == 3)
            c->l3 = size;
    }
}
#endif

/* "32K", "1024K", "32M" from sysfs */
static long sysfs_cache(int index)
{
    char path[96], buf[32];
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", index);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    long v = 0;
    if (fgets(buf, sizeof buf, f)) {
        char *end;
        v = strtol(buf, &end, 10);
        if (*end == 'K')
            v *= 1024;
        else if (*end == 'M')
            v *= 1024 * 1024;
    }
    fclose(f);
    return v;
}

static void detect(knob_cpu_info *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->vendor, sizeof c->vendor, "unknown");
    snprintf(c->brand, sizeof c->brand, "unknown");
#if CPU_X86
    unsigned r[4];
    cpuid(0, 0, r);
    unsigned max_leaf = r[0];
    memcpy(c->vendor, &r[1], 4);
    memcpy(c->vendor + 4, &r[3], 4);
    memcpy(c->vendor + 8, &r[2], 4);
    c->vendor[12] = 0;
    cpuid(0x80000000u, 0, r);
    unsigned max_ext = r[0];
    if (max_ext >= 0x80000004u) {
        for (unsigned i = 0; i < 3; i++) {
            cpuid(0x80000002u + i, 0, r);
            memcpy(c->brand + 16 * i, r, 16);
        }
        c->brand[48] = 0;
        char *s = c->brand;     /* some CPUs pad the name with leading spaces */
        while (*s == ' ')
            s++;
        memmove(c->brand, s, strlen(s) + 1);
        for (size_t n = strlen(c->brand); n > 0 && c->brand[n - 1] == ' '; n--)
            c->brand[n - 1] = 0;
    }
    cpuid(1, 0, r);
    c->family = (int)(((r[0] >> 8) & 15) + (((r[0] >> 8) & 15) == 15 ? ((r[0] >> 20) & 255) : 0));
    c->model = (int)(((r[0] >> 4) & 15) | (((r[0] >> 16) & 15) << 4));
    int osxsave = (r[2] >> 27) & 1, fma = (r[2] >> 12) & 1;
    unsigned long long xcr0 = osxsave ? xgetbv0() : 0;
    int ymm_ok = (xcr0 & 6) == 6, zmm_ok = (xcr0 & 0xe6) == 0xe6;
    if (max_leaf >= 7) {
        cpuid(7, 0, r);
        unsigned b = r[1], cx = r[2], d = r[3];
        if (ymm_ok && ((b >> 5) & 1))
            c->features |= KNOB_CPU_AVX2;
        if (ymm_ok && fma)
            c->features |= KNOB_CPU_FMA;
        if (zmm_ok) {
            if ((b >> 16) & 1)
                c->features |= KNOB_CPU_AVX512F;
            if ((b >> 30) & 1)
                c->features |= KNOB_CPU_AVX512BW;
            if ((b >> 31) & 1)
                c->features |= KNOB_CPU_AVX512VL;
            if ((cx >> 11) & 1)
                c->features |= KNOB_CPU_AVX512VNNI;
            if ((d >> 23) & 1)
                c->features |= KNOB_CPU_AVX512FP16;
            cpuid(7, 1, r);
            if ((r[0] >> 5) & 1)
                c->features |= KNOB_CPU_AVX512BF16;
        }
    }
    if (!strcmp(c->vendor, "AuthenticAMD") && max_ext >= 0x8000001Du)
        caches_from_leaf(0x8000001Du, c);
    else if (max_leaf >= 4)
        caches_from_leaf(4, c);
#endif
    /* sysfs: index0 L1d, index1 L1i, index2 L2, index3 L3 on Linux x86 and most ARM */
    if (!c->l1d)
        c->l1d = sysfs_cache(0);
    if (!c->l2)
        c->l2 = sysfs_cache(2);
    if (!c->l3)
        c->l3 = sysfs_cache(3);
    c->caches_guessed = !c->l1d || !c->l2;
    if (!c->l1d)
        c->l1d = 32 * 1024;
    if (!c->l2)
        c->l2 = 512 * 1024;
    if (!c->l3)
        c->l3 = 8 * 1024 * 1024;
}

const knob_cpu_info *knob_cpu(void)
{
    if (!info_ready) {   /* racing first calls compute the same values */
        detect(&info);
        info_ready = 1;
    }
    return &info;
}

const char *knob_isa_name(int isa)
{
    return isa == KNOB_ISA_AVX512 ? "avx512" : isa == KNOB_ISA_AVX2 ? "avx2+fma" : "portable";
}

/* The best level the CPU has and knob has kernels for. */
static int best_isa(void)
{
    unsigned f = knob_cpu()->features;
    const unsigned avx512 = KNOB_CPU_AVX512F | KNOB_CPU_AVX512BW | KNOB_CPU_AVX512VL;
    if ((f & KNOB_CPU_AVX2) && (f & KNOB_CPU_FMA) && (f & avx512) == avx512)
        return KNOB_ISA_AVX512;
    if ((f & KNOB_CPU_AVX2) && (f & KNOB_CPU_FMA))
        return KNOB_ISA_AVX2;
    return KNOB_ISA_PORTABLE;
}

static int env_cap(void)
{
    static int cap = -2;   /* -2: not read yet, -1: none */
    if (cap == -2) {
        const char *e = getenv("KNOB_KERNEL");
        cap = !e || !*e || !strcmp(e, "auto") ? -1
              : !strcmp(e, "portable")        ? KNOB_ISA_PORTABLE
              : !strcmp(e, "avx2")            ? KNOB_ISA_AVX2
              : !strcmp(e, "avx512")          ? KNOB_ISA_AVX512
                                              : -1;
    }
    return cap;
}

int knob_kernel_isa(void)
{
    int isa = best_isa();
    int cap = forced >= 0 ? forced : env_cap();
    return cap >= 0 && cap < isa ? cap : isa;
}

void knob_kernel_force(int isa) { forced = isa; }
