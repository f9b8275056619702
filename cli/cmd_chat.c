/* cmd_chat.c: `knob chat MODEL`: a conversation on stdin, one line a turn, kept as a transcript
 * ("You: ..." / "Bot: ...") that the model continues to the end of its line. The cache survives
 * between turns, so a turn feeds only its new tokens; when the transcript outgrows the context the
 * oldest turns are dropped. A line /reset forgets everything.
 *
 * Not here: the transcript, trimming and generation (src/models/lm.c). */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static void emit_stdout(void *ud, const char *text, size_t n)
{
    (void)ud;
    fwrite(text, 1, n, stdout);
    fflush(stdout);
}

knob_status cmd_chat(int argc, char **argv, knob_err *err)
{
    const char *user = "You: ", *bot = "Bot: ", *dtype = "f32";
    int max_tokens = 0, top_k = 0;
    float temperature = 0.8f, top_p = 0.95f;
    uint64_t seed = 42;
    const arg_def args[] = {
        {"user", ARG_STRING, &user, "TEXT", 0, 0, NULL, "what starts your turns in the transcript"},
        {"bot", ARG_STRING, &bot, "TEXT", 0, 0, NULL, "what starts the model's turns"},
        {"max-tokens", ARG_INT, &max_tokens, "N", 0, 1000000, NULL, "tokens per reply at most (0: half the context)"},
        {"temperature", ARG_FLOAT, &temperature, "T", 0, 100, NULL, "sampling temperature (0: greedy)"},
        {"top-k", ARG_INT, &top_k, "K", 0, 1 << 20, NULL, "sample among the K most likely tokens (0: all)"},
        {"top-p", ARG_FLOAT, &top_p, "P", 0.001, 1, NULL, "nucleus sampling mass"},
        {"seed", ARG_U64, &seed, "N", 0, 1.8446744073709552e19, NULL, "seed for sampling"},
        {"dtype", ARG_CHOICE, &dtype, "DTYPE", 0, 0, "f32|bf16|int8",
         "weights in memory: f32, or converted once to bf16 or int8 (faster replies)"},
        {NULL, 0, NULL, NULL, 0, 0, NULL, NULL},
    };
    const cli_spec spec = {
        "chat", "knob chat MODEL [options]",
        "Talk with a GPT: each line on stdin is a turn. The conversation is kept as a transcript\n"
        "(\"You: ...\" / \"Bot: ...\") and the model continues it until the end of its line. When the\n"
        "transcript outgrows the context, the oldest turns are dropped. A line /reset forgets everything.\n"
        "Works with a pipe too: printf 'Hello\\nHow are you?\\n' | knob chat MODEL",
        args, 1, 1,
    };
    char *pos[1];
    int help = 0, n_pos = 0;
    knob_status s = cli_parse(&spec, argc, argv, pos, &n_pos, &help, err);
    if (s || help)
        return s;
    knob_lm *lm = NULL;
    knob_lm_chat *chat = NULL;
    char *line = NULL;
    size_t cap = 0;
    knob_lm_dtype dt;
    if ((s = knob_lm_dtype_parse(dtype, &dt, err)) || (s = knob_lm_open_as(&lm, pos[0], dt, err)))
        return s;
    int T = knob_lm_config(lm)->block_size;
    if (max_tokens == 0)
        max_tokens = T / 2;
    if (max_tokens >= T) {
        s = knob_fail(err, KNOB_ERR_USAGE, "knob chat: --max-tokens %d leaves no room for the conversation in a "
                      "context of %d tokens", max_tokens, T);
        goto done;
    }
    const char *const turn_flag[2] = {"--user", "--bot"}, *const turn_text[2] = {user, bot};
    for (int i = 0; i < 2 && !s; i++) {   /* else every line would be ignored, one note each */
        int32_t *ids = NULL;
        size_t n_ids = 0;
        if ((s = knob_lm_encode(lm, turn_text[i], strlen(turn_text[i]), 0, &ids, &n_ids, err)))
            s = knob_err_prefix(err, "knob chat: %s '%.64s'", turn_flag[i], turn_text[i]);
        knob_free(ids);
    }
    if (s || (s = knob_lm_chat_new(lm, max_tokens, &chat, err)))
        goto done;
    knob_rng r;
    knob_rng_seed(&r, seed);
    knob_lm_gen g = {.max_tokens = max_tokens,
                     .sampler = {.temperature = temperature, .top_k = top_k, .top_p = top_p},
                     .rng = &r,
                     .stop = "\n",
                     .emit = emit_stdout};
    int tty = cli_is_tty();
    for (;;) {
        if (tty)
            fprintf(stderr, "%s", user), fflush(stderr);
        ssize_t got = getline(&line, &cap, stdin);
        if (got < 0)
            break;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
            line[--got] = '\0';
        if (strcmp(line, "/reset") == 0) {
            knob_lm_chat_reset(chat);
            printf("(forgotten)\n");
            fflush(stdout);
            continue;
        }
        /* this turn: "You: <line>\nBot: "; the reply follows, up to its newline */
        size_t need = strlen(user) + (size_t)got + strlen(bot) + 2;
        char *turn = knob_malloc(need + 1);
        if (!turn) {
            s = knob_fail(err, KNOB_ERR_NOMEM, "chat: out of memory");
            goto done;
        }
        snprintf(turn, need + 1, "%s%s\n%s", user, line, bot);
        s = knob_lm_chat_add(chat, turn, err);
        knob_free(turn);
        if (s == KNOB_ERR_NOMEM)
            goto done;
        if (s) {   /* a character the model does not know: say so, keep talking */
            fprintf(stderr, "knob: note: %s; line ignored\n", err->msg);
            memset(err, 0, sizeof *err);
            s = KNOB_OK;
            continue;
        }
        if (!tty)   /* a piped conversation reads as a transcript */
            printf("%s%s\n", user, line);
        fputs(bot, stdout);
        fflush(stdout);
        knob_lm_gen_result res;
        if ((s = knob_lm_chat_reply(chat, &g, &res, err)))
            goto done;
        printf("\n");
        fflush(stdout);
    }
done:
    free(line);   /* getline's buffer comes from the C library */
    knob_lm_chat_free(chat);
    knob_lm_free(lm);
    return s;
}
