/* cmd_convert.c: `knob convert IN OUT [--to knob|hf|llmc] [--bf16]`: a GPT from any format knob
 * reads (knob-native safetensors, a Hugging Face GPT-2 folder or model.safetensors, an llm.c .bin;
 * found by content) into any it writes. Without --to the output's name picks: *.bin -> llm.c,
 * *.safetensors -> knob-native, anything else -> a Hugging Face folder. The tokenizer description
 * travels in knob-native files and in HF ones (safetensors metadata "knob.tokenizer" when it is not
 * GPT-2's); llm.c files have no room for it (GPT-2's is assumed); --tokenizer replaces it, and
 * --write-tokenizer FILE also writes the model's tokenizer as an llm.c gpt2_tokenizer.bin.
 * The work is in src/models/gpt_formats.c. */
#include "cli.h"

#include <string.h>
#include <sys/stat.h>

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static long long file_bytes(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
}

knob_status cmd_convert(int argc, char **argv, knob_err *err)
{
    const char *to = NULL, *tok_override = NULL, *tok_out = NULL;
    int bf16 = 0;
    const arg_def args[] = {
        {"to", ARG_CHOICE, &to, "FORMAT", 0, 0, "knob|hf|llmc",
         "output format (default from OUT: *.bin llmc, *.safetensors knob, else an hf folder)"},
        {"bf16", ARG_BOOL, &bf16, NULL, 0, 0, NULL, "llm.c output in bfloat16 (version 5; rounded to nearest even)"},
        {"tokenizer", ARG_STRING, &tok_override, "DESC", 0, 0, NULL,
         "tokenizer description to store (byte, char:..., gpt2, bpe:DIR); default: the input's"},
        {"write-tokenizer", ARG_STRING, &tok_out, "FILE", 0, 0, NULL,
         "also write the model's tokenizer as an llm.c tokenizer file (gpt2_tokenizer.bin)"},
        {NULL, 0, NULL, NULL, 0, 0, NULL, NULL},
    };
    const cli_spec spec = {
        "convert", "knob convert IN OUT [--to knob|hf|llmc] [--bf16]",
        "Convert a GPT between knob-native safetensors, a Hugging Face GPT-2 folder (model.safetensors with\n"
        "Conv1D weights stored (in, out), plus config.json) and llm.c's gpt2_*.bin (float32, or bfloat16\n"
        "with --bf16). IN's format is found from its content. Weights are copied exactly (bf16 rounds).",
        args, 2, 2,
    };
    char *pos[2];
    int help = 0, n_pos = 0;
    knob_status s = cli_parse(&spec, argc, argv, pos, &n_pos, &help, err);
    if (s || help)
        return s;
    const char *in = pos[0], *out = pos[1];
    knob_gpt_format fmt_out = KNOB_GPT_FMT_HF;
    if (to)
        fmt_out = strcmp(to, "knob") == 0 ? KNOB_GPT_FMT_KNOB : strcmp(to, "llmc") == 0 ? KNOB_GPT_FMT_LLMC : KNOB_GPT_FMT_HF;
    else if (ends_with(out, ".bin"))
        fmt_out = KNOB_GPT_FMT_LLMC;
    else if (ends_with(out, ".safetensors"))
        fmt_out = KNOB_GPT_FMT_KNOB;
    if (bf16 && fmt_out != KNOB_GPT_FMT_LLMC)
        return knob_fail(err, KNOB_ERR_USAGE, "knob convert: --bf16 applies to llm.c output only (--to llmc)");

    /* both outputs are checked before anything is written, so a bad second one leaves no first one */
    if ((s = fmt_out == KNOB_GPT_FMT_HF ? cli_check_out_dir(out, NULL, err) : cli_check_out_file(out, NULL, err)) ||
        (tok_out && (s = cli_check_out_file(tok_out, "--write-tokenizer", err))))
        return s;
    knob_tokenizer *tok = NULL;
    if (tok_override && (s = knob_tok_from_desc(&tok, tok_override, err)))
        return knob_err_prefix(err, "--tokenizer");
    knob_params P;
    knob_gpt_config c;
    char *desc = NULL;
    knob_gpt_format fmt_in;
    if ((s = knob_gpt_open(in, &P, &c, &desc, &fmt_in, err))) {
        knob_tok_free(tok);
        return s;
    }
    const char *use_desc = tok_override ? tok_override : desc;
    if (!s && tok_out && !tok)
        s = knob_tok_from_desc(&tok, use_desc, err);
    if (!s && tok && knob_tok_vocab_size(tok) > c.vocab_size)
        s = knob_fail(err, KNOB_ERR_USAGE, "%s: tokenizer %.64s has %d ids, the model's vocabulary only %d", in, use_desc,
                      knob_tok_vocab_size(tok), c.vocab_size);
    if (!s) {
        if (fmt_out == KNOB_GPT_FMT_KNOB)
            s = knob_gpt_save_knob(out, &P, &c, use_desc, err);
        else if (fmt_out == KNOB_GPT_FMT_HF)
            s = knob_gpt_save_hf_tok(out, &P, &c, use_desc, err);
        else
            s = knob_gpt_save_llmc(out, &P, &c, bf16, err);
    }
    if (!s && tok_out)
        s = knob_tok_write_llmc(tok, tok_out, err);
    if (!s) {
        char path[4096];
        snprintf(path, sizeof path, fmt_out == KNOB_GPT_FMT_HF ? "%s/model.safetensors" : "%s", out);
        printf("%s (%s): %d layers, %d heads, n_embd %d, context %d, vocab %d, %zu parameters, tokenizer %s\n", in,
               knob_gpt_format_name(fmt_in), c.n_layer, c.n_head, c.n_embd, c.block_size, c.vocab_size, P.n_elems,
               use_desc);
        printf("wrote %s (%s%s, %lld bytes)%s%s\n", fmt_out == KNOB_GPT_FMT_HF ? out : path,
               knob_gpt_format_name(fmt_out), fmt_out == KNOB_GPT_FMT_LLMC ? (bf16 ? " bf16" : " f32") : "",
               file_bytes(path), tok_out ? " and " : "", tok_out ? tok_out : "");
        if (fmt_out == KNOB_GPT_FMT_LLMC && strcmp(use_desc, "gpt2") != 0)
            printf("note: %s files carry no tokenizer; knob will assume gpt2 when it opens them (this model uses %s)\n",
                   knob_gpt_format_name(fmt_out), use_desc);
    }
    knob_tok_free(tok);
    knob_free(desc);
    knob_params_free(&P);
    return s;
}
