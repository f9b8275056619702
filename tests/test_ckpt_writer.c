/* test_ckpt_writer.c: the background checkpoint writer (src/train/checkpoint.c): a file written
 * from a snapshot while the state goes on changing has the bytes knob_ckpt_save writes for the state
 * at the snapshot (values, both moments, step, optimizer step, RNG states); several files from one
 * snapshot; a write that fails in the background comes back, with the message knob_ckpt_save gives,
 * from the wait and from the next save (which then starts nothing); and once a save has returned,
 * neither the writer thread nor the caller allocates anything until the next wait. */
#include "test.h"

#include <unistd.h>

typedef struct {
    knob_params P;
    knob_optim opt;
    knob_rng data, drop;
    knob_json *train;
    long step;
} toy_state;

static void toy_init(toy_state *t)
{
    knob_err err;
    memset(t, 0, sizeof *t);
    knob_params_init(&t->P);
    KNOB_ASSERT(knob_params_add(&t->P, "w", 2, (int[]){37, 11}, &err));
    KNOB_ASSERT(knob_params_add(&t->P, "b", 1, (int[]){11}, &err));
    KNOB_ASSERT(knob_params_add(&t->P, "emb.weight", 2, (int[]){5, 3}, &err));
    KNOB_ASSERT(knob_params_alloc(&t->P, &err) == KNOB_OK);
    knob_optim_config cfg = {.kind = KNOB_OPTIM_ADAMW, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    KNOB_ASSERT(knob_optim_init(&t->opt, &t->P, &cfg, &err) == KNOB_OK);
    knob_rng_seed(&t->data, 1);
    knob_rng_seed(&t->drop, 2);
    t->train = knob_ckpt_kv_to_json("lr=0.01 batch=4");
    KNOB_ASSERT(t->train);
}

/* one "training step": every value, moment and RNG state changes */
static void toy_step(toy_state *t)
{
    for (size_t i = 0; i < t->P.n_elems; i++) {
        t->P.data[i] = knob_rng_normal(&t->data);
        t->opt.m[i] = knob_rng_normal(&t->drop);
        t->opt.v[i] = knob_rng_uniform(&t->data);
    }
    t->step++;
    t->opt.step++;
}

static knob_ckpt toy_ckpt(toy_state *t)
{
    static const knob_kv extra[1] = {{"tokenizer", "byte"}};
    return (knob_ckpt){.family = "toy", .config = "{\"n\":3}", .P = &t->P, .opt = &t->opt, .step = t->step,
                       .n_rng = 2, .rng = {{"data", &t->data}, {"dropout", &t->drop}}, .train = t->train,
                       .extra = extra, .n_extra = 1};
}

static void toy_free(toy_state *t)
{
    knob_json_free(t->train);
    knob_optim_free(&t->opt);
    knob_params_free(&t->P);
}

static int same_bytes(const char *a, const char *b)
{
    knob_err err;
    unsigned char *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    int ok = knob_read_file(a, &x, &nx, &err) == KNOB_OK && knob_read_file(b, &y, &ny, &err) == KNOB_OK &&
             nx == ny && memcmp(x, y, nx) == 0;
    knob_free(x);
    knob_free(y);
    return ok;
}

TEST(ckpt_writer_snapshot_has_the_bytes_of_an_inline_save)
{
    knob_err err;
    toy_state t;
    toy_init(&t);
    knob_ckpt_writer *w = knob_ckpt_writer_new(&t.P, 2, &err);
    CHECK(w);
    char inl[512], bg[512], bg2[512];
    for (int round = 0; w && round < 3; round++) {
        toy_step(&t);
        snprintf(inl, sizeof inl, "%s/ckw_inline_%d.safetensors", test_tmpdir(), round);
        snprintf(bg, sizeof bg, "%s/ckw_bg_%d.safetensors", test_tmpdir(), round);
        snprintf(bg2, sizeof bg2, "%s/ckw_bg2_%d.safetensors", test_tmpdir(), round);
        knob_ckpt c = toy_ckpt(&t);
        CHECK_OK(knob_ckpt_save(inl, &c, &err));
        const char *paths[2] = {bg, bg2};
        CHECK_OK(knob_ckpt_writer_save(w, paths, 2, &c, &err));
        /* training goes on while the file is written: neither side allocates */
        long before = knob_alloc_count();
        for (int k = 0; k < 3; k++)
            toy_step(&t);
        CHECK(knob_alloc_count() == before);
        CHECK_OK(knob_ckpt_writer_wait(w, &err));
        CHECK(same_bytes(inl, bg));
        CHECK(same_bytes(inl, bg2));
    }
    /* the file reads back as the state at the snapshot */
    knob_ckpt_file f;
    CHECK_OK(knob_ckpt_open(&f, bg, "toy", &err));
    CHECK(f.step == 9 && f.optim_step == 9);   /* snapshots at steps 1, 5, 9 */
    knob_ckpt_close(&f);
    knob_ckpt_writer_free(w);
    knob_ckpt_writer_free(NULL);
    toy_free(&t);
}

TEST(ckpt_writer_reports_a_failed_write_once_and_starts_nothing_after_it)
{
    knob_err err, want;
    toy_state t;
    toy_init(&t);
    toy_step(&t);
    char bad[512], good[512];
    snprintf(bad, sizeof bad, "%s/no_such_dir/x.safetensors", test_tmpdir());
    snprintf(good, sizeof good, "%s/ckw_after_failure.safetensors", test_tmpdir());
    knob_ckpt c = toy_ckpt(&t);
    CHECK(knob_ckpt_save(bad, &c, &want) == KNOB_ERR_IO);
    CHECK(strstr(want.msg, bad) == want.msg);
    knob_ckpt_writer *w = knob_ckpt_writer_new(&t.P, 2, &err);
    CHECK(w);
    const char *pb = bad, *pg = good;
    if (w) {
        /* the wait reports it, with the inline save's message */
        CHECK_OK(knob_ckpt_writer_save(w, &pb, 1, &c, &err));
        memset(&err, 0, sizeof err);
        CHECK(knob_ckpt_writer_wait(w, &err) == KNOB_ERR_IO);
        CHECK(strcmp(err.msg, want.msg) == 0);
        CHECK_OK(knob_ckpt_writer_wait(w, &err));   /* reported once */
        /* the next save reports it and writes nothing */
        CHECK_OK(knob_ckpt_writer_save(w, &pb, 1, &c, &err));
        memset(&err, 0, sizeof err);
        CHECK(knob_ckpt_writer_save(w, &pg, 1, &c, &err) == KNOB_ERR_IO);
        CHECK(strcmp(err.msg, want.msg) == 0);
        CHECK(access(good, F_OK) != 0);
        /* a writer for fewer values than the state is a usage error, not a short file */
        knob_ckpt_writer *small = knob_ckpt_writer_new(&t.P, 1, &err);
        CHECK_FAILS_WITH(knob_ckpt_writer_save(small, &pg, 1, &c, &err), KNOB_ERR_USAGE, "2 moments");
        knob_ckpt_writer_free(small);
        CHECK(access(good, F_OK) != 0);
    }
    knob_ckpt_writer_free(w);
    toy_free(&t);
}
