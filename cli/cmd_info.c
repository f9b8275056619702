/* cmd_info.c: `knob info`: the machine as knob sees it and what it chose for it: the CPU, its
 * instruction-set features, its cache sizes, the thread count, the kernel level each family runs
 * (and why: the CPU's best, or KNOB_KERNEL), and the GEMM blocking derived from the caches.
 * Everything comes from the library (knob_cpu, knob_kernel_isa, knob_gemm_blocking_get); this
 * file only prints. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static const struct {
    unsigned bit;
    const char *name;
} feature_names[] = {
    {KNOB_CPU_AVX2, "avx2"},           {KNOB_CPU_FMA, "fma"},
    {KNOB_CPU_AVX512F, "avx512f"},     {KNOB_CPU_AVX512BW, "avx512bw"},
    {KNOB_CPU_AVX512VL, "avx512vl"},   {KNOB_CPU_AVX512VNNI, "avx512vnni"},
    {KNOB_CPU_AVX512BF16, "avx512bf16"}, {KNOB_CPU_AVX512FP16, "avx512fp16"},
};

static void print_kib(const char *label, long bytes)
{
    if (bytes >= 1024L * 1024 && bytes % (1024L * 1024) == 0)
        printf("%s %ld MiB", label, bytes / (1024L * 1024));
    else
        printf("%s %ld KiB", label, bytes / 1024);
}

knob_status cmd_info(int argc, char **argv, knob_err *err)
{
    static const arg_def args[] = {{NULL, ARG_BOOL, NULL, NULL, 0, 0, NULL, NULL}};
    const cli_spec spec = {"info", "knob info",
                           "The CPU, its features and caches, the threads, and the kernels and GEMM "
                           "blocking knob chose for them. KNOB_KERNEL=portable|avx2|avx512|auto caps "
                           "the kernel level.",
                           args, 0, 0};
    int help = 0;
    knob_status s = cli_parse(&spec, argc, argv, NULL, NULL, &help, err);
    if (s || help)
        return s;
    const char *env = getenv("KNOB_KERNEL");
    if (env && *env && strcmp(env, "auto") && strcmp(env, "portable") && strcmp(env, "avx2") &&
        strcmp(env, "avx512"))
        return knob_fail(err, KNOB_ERR_USAGE,
                         "KNOB_KERNEL='%.32s' is not one of portable, avx2, avx512, auto", env);

    const knob_cpu_info *c = knob_cpu();
    printf("knob %s\n", KNOB_VERSION);
    printf("cpu: %s (%s, family %d, model %d)\n", c->brand, c->vendor, c->family, c->model);
    printf("features:");
    int any = 0;
    for (size_t i = 0; i < sizeof feature_names / sizeof feature_names[0]; i++)
        if (c->features & feature_names[i].bit) {
            printf(" %s", feature_names[i].name);
            any = 1;
        }
    printf("%s\n", any ? "" : " (none of avx2, fma, avx512*)");
    printf("caches: ");
    print_kib("L1d", c->l1d);
    print_kib(", L2", c->l2);
    print_kib(", L3", c->l3);
    printf("%s\n", c->caches_guessed ? " (not readable: defaults)" : "");
    printf("threads: %d\n", knob_threads_get());
    int isa = knob_kernel_isa();
    printf("kernels: %s (gemm micro-kernel %s; bf16 gemm %s; exp, GELU, cross-entropy %s)%s%s\n",
           knob_isa_name(isa), knob_gemm_kernel_name(), knob_gemm_bf16_kernel_name(),
           knob_isa_name(isa > KNOB_ISA_AVX2 ? KNOB_ISA_AVX2 : isa), env && *env ? "; KNOB_KERNEL=" : "",
           env && *env ? env : "");
    printf("matrix-vector (generation): %s\n", knob_matvec_kernel_name());
    knob_gemm_blocking b = knob_gemm_blocking_get();
    printf("gemm blocking: micro-tile %d x %d, KC %d, MC %d, NC %d (from the caches)\n", b.MR, b.NR, b.KC, b.MC,
           b.NC);
    return KNOB_OK;
}
