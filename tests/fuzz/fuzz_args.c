/* fuzz_args.c: the flag parser on arbitrary argument vectors (the input split at NUL bytes), with a
 * spec that has every kind of flag. */
#include "fuzz.h"

#include "cli.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int i_val = 3, b_val = 0;
    uint64_t u_val = 42;
    float f_val = 0.5f;
    const char *s_val = "x", *c_val = "sgd";
    const arg_def args[] = {
        {"int", ARG_INT, &i_val, "N", 1, 1000, NULL, "an int"},
        {"seed", ARG_U64, &u_val, "N", 0, 1.8446744073709552e19, NULL, "a seed"},
        {"lr", ARG_FLOAT, &f_val, "F", 1e-7, 1, NULL, "a float"},
        {"name", ARG_STRING, &s_val, "TEXT", 0, 0, NULL, "a string"},
        {"optim", ARG_CHOICE, &c_val, "NAME", 0, 0, "sgd|adam|adamw", "a choice"},
        {"flag", ARG_BOOL, &b_val, NULL, 0, 0, NULL, "a switch"},
        {NULL, 0, NULL, NULL, 0, 0, NULL, NULL},
    };
    const cli_spec spec = {NULL, "fuzz [options]", "fuzzing the flag parser", args, 0, 3};
    char *copy = malloc(size + 1);
    char *argv[65];
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
    int argc = 0;
    argv[argc++] = "fuzz";
    for (size_t i = 0, start = 0; i <= size && argc < 64; i++)
        if (copy[i] == '\0') {
            argv[argc++] = copy + start;
            start = i + 1;
        }
    argv[argc] = NULL;
    char *pos[3];
    int n_pos = 0, help = 0;
    knob_err err = {0};
    knob_status s = cli_parse(&spec, argc, argv, pos, &n_pos, &help, &err);
    fuzz_check_err(s, &err);
    if (!s && (n_pos < 0 || n_pos > 3))
        abort();
    free(copy);
    return 0;
}
