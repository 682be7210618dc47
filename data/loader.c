/* Batch production (ky_loader_fill: a pure function of the configuration and batch number) and
 * the pthread ring that runs it ahead of the consumer. Tested by tests/test_data_loader.c. */
#include "data/loader.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

static ky_status check_config(const ky_loader_config *c) {
  KY_CHECK_NULL(c, "cfg");
  KY_CHECK(c->set && c->set->n > 0, KY_ERR_ARG, "loader: no samples (set is NULL or empty)");
  KY_CHECK(c->batch > 0, KY_ERR_ARG, "loader: batch %d, expected >= 1", c->batch);
  KY_CHECK(c->crop > 0 && c->crop <= 8192, KY_ERR_ARG, "loader: crop %d, expected 1..8192", c->crop);
  KY_CHECK((c->shard_lo == 0 && c->shard_hi == 0) || (c->shard_lo >= 0 && c->shard_lo < c->shard_hi && c->shard_hi <= c->batch),
           KY_ERR_ARG, "loader: shard [%d, %d) is not a non-empty part of a batch of %d", c->shard_lo, c->shard_hi, c->batch);
  KY_CHECK(c->first_batch >= 0, KY_ERR_ARG, "loader: first_batch %lld < 0", (long long)c->first_batch);
  KY_CHECK(c->norm >= KY_NORM_TORCH && c->norm <= KY_NORM_TF, KY_ERR_ARG, "loader: unknown normalisation %d", (int)c->norm);
  if (c->list) {
    KY_CHECK(c->n_list > 0, KY_ERR_ARG, "loader: list given with n_list = %d", c->n_list);
    for (int i = 0; i < c->n_list; i++)
      KY_CHECK(c->list[i] >= 0 && c->list[i] < c->set->n, KY_ERR_ARG,
               "loader: list[%d] = %d is not a sample index in 0..%d", i, c->list[i], c->set->n - 1);
  }
  for (int i = 0; i < c->set->n; i++)
    KY_CHECK(c->set->samples[i].labels && c->set->samples[i].rgb, KY_ERR_ARG,
             "loader: sample %s has no labels (training needs masks)", c->set->ids ? c->set->ids[i] : "?");
  return KY_OK;
}

/* Per-thread scratch, grown as needed. */
typedef struct {
  int *perm;
  int64_t perm_epoch;
  uint8_t *crop_rgb;
  uint16_t *crop_lab;
  uint8_t *work_rgb;
  uint16_t *work_lab;
  size_t work_cap;  /* pixels */
} fill_scratch;

static void scratch_free(fill_scratch *s) {
  free(s->perm);
  free(s->crop_rgb);
  free(s->crop_lab);
  free(s->work_rgb);
  free(s->work_lab);
  memset(s, 0, sizeof *s);
}

static ky_status fill_one(ky_batch *out, int i, const ky_loader_config *cfg, int n_list, int64_t s_pos, fill_scratch *sc) {
  int64_t epoch = s_pos / n_list;
  if (sc->perm_epoch != epoch) {
    KY_TRY(ky_sampler_epoch(sc->perm, n_list, cfg->seed, epoch));
    sc->perm_epoch = epoch;
  }
  int pos = sc->perm[s_pos % n_list];
  int item = cfg->list ? cfg->list[pos] : pos;
  const ky_dsb_sample *sm = &cfg->set->samples[item];
  const char *id = cfg->set->ids ? cfg->set->ids[item] : "?";
  out->item[i] = item;
  ky_rng rng = ky_sample_rng(cfg->seed, s_pos);
  int y0, x0, crop = cfg->crop;
  ky_crop_origin(&y0, &x0, sm->h, sm->w, crop, &rng);
  if (cfg->precrop) {
    int hp = sm->h > crop ? sm->h : crop, wp = sm->w > crop ? sm->w : crop;
    size_t np = (size_t)hp * wp;
    if (!sc->work_rgb || np > sc->work_cap) {   /* none yet, or too small */
      free(sc->work_rgb);
      free(sc->work_lab);
      sc->work_rgb = malloc(np * 3);
      sc->work_lab = malloc(np * 2);
      sc->work_cap = sc->work_rgb && sc->work_lab ? np : 0;
      if (!sc->work_cap) return ky_error(KY_ERR_NOMEM, "loader: out of memory for a %dx%d working copy", wp, hp);
    }
    /* Zero-padded private copy [hp, wp]. */
    for (int y = 0; y < hp; y++) {
      uint8_t *o = sc->work_rgb + (size_t)y * wp * 3;
      uint16_t *ol = sc->work_lab + (size_t)y * wp;
      if (y < sm->h) {
        memcpy(o, sm->rgb + (size_t)y * sm->w * 3, (size_t)sm->w * 3);
        memset(o + (size_t)sm->w * 3, 0, (size_t)(wp - sm->w) * 3);
        memcpy(ol, sm->labels + (size_t)y * sm->w, (size_t)sm->w * 2);
        memset(ol + sm->w, 0, (size_t)(wp - sm->w) * 2);
      } else {
        memset(o, 0, (size_t)wp * 3);
        memset(ol, 0, (size_t)wp * 2);
      }
    }
    ky_status s = cfg->precrop(cfg->precrop_ctx, sc->work_rgb, sc->work_lab, hp, wp, y0, x0, crop, &rng);
    if (s != KY_OK) return ky_error_context(s, "sample %s (stream position %lld): pre-crop hook: ", id, (long long)s_pos);
    KY_TRY(ky_crop(sc->crop_rgb, sc->crop_lab, sc->work_rgb, sc->work_lab, hp, wp, y0, x0, crop));
  } else {
    KY_TRY(ky_crop(sc->crop_rgb, sc->crop_lab, sm->rgb, sm->labels, sm->h, sm->w, y0, x0, crop));
  }
  if (cfg->augment) {
    ky_status s = cfg->augment(cfg->augment_ctx, sc->crop_rgb, sc->crop_lab, crop, crop, &rng);
    if (s != KY_OK) return ky_error_context(s, "sample %s (stream position %lld): augmentation: ", id, (long long)s_pos);
  }
  ky_status s = ky_batch_set_item(out, i, sc->crop_rgb, sc->crop_lab, cfg->norm);
  if (s != KY_OK) return ky_error_context(s, "sample %s: ", id);
  return KY_OK;
}

/* The rank's part [lo, hi) of each batch. */
static void shard(const ky_loader_config *c, int *lo, int *hi) {
  *lo = c->shard_hi ? c->shard_lo : 0;
  *hi = c->shard_hi ? c->shard_hi : c->batch;
}

static ky_status fill_with(ky_batch *out, const ky_loader_config *cfg, int64_t batch_no, fill_scratch *sc) {
  int n_list = cfg->list ? cfg->n_list : cfg->set->n, lo, hi;
  shard(cfg, &lo, &hi);
  KY_CHECK(out && out->n == hi - lo && out->h == cfg->crop && out->w == cfg->crop && out->x && out->cls,
           KY_ERR_SHAPE, "loader: batch buffer is not [%d, %d, %d]", hi - lo, cfg->crop, cfg->crop);
  KY_CHECK(!cfg->with_sigmoid || out->sig, KY_ERR_SHAPE, "loader: batch buffer has no sigmoid targets");
  size_t cp = (size_t)cfg->crop * cfg->crop;
  if (!sc->perm) {
    sc->perm = malloc((size_t)n_list * sizeof *sc->perm);
    sc->crop_rgb = malloc(cp * 3);
    sc->crop_lab = malloc(cp * 2);
    sc->perm_epoch = -1;
    if (!sc->perm || !sc->crop_rgb || !sc->crop_lab) return ky_error(KY_ERR_NOMEM, "loader: out of memory for scratch");
  }
  for (int i = lo; i < hi; i++)
    KY_TRY(fill_one(out, i - lo, cfg, n_list, batch_no * cfg->batch + i, sc));
  return KY_OK;
}

ky_status ky_loader_fill(ky_batch *out, const ky_loader_config *cfg, int64_t batch_no) {
  KY_TRY(check_config(cfg));
  KY_CHECK(batch_no >= 0, KY_ERR_ARG, "ky_loader_fill: batch number %lld < 0", (long long)batch_no);
  fill_scratch sc;
  memset(&sc, 0, sizeof sc);
  ky_status s = fill_with(out, cfg, batch_no, &sc);
  scratch_free(&sc);
  return s;
}

/* --- the ring */
enum { SLOT_FREE, SLOT_FILLING, SLOT_READY };

typedef struct {
  ky_batch b;
  int64_t batch_no;
  int state;
  ky_status status;
  char msg[1024];
} slot_t;

struct ky_loader {
  ky_loader_config cfg;
  int *list;  /* own copy of cfg.list */
  int k;
  slot_t *slots;
  pthread_t *threads;
  int n_threads;
  pthread_mutex_t mu;
  pthread_cond_t cv_free, cv_ready;
  int64_t next_claim, next_consume;
  int held;  /* slot handed to the consumer, or -1 */
  int stop;
  ky_status failed;
  char failed_msg[1024];
};

static void *worker(void *arg) {
  ky_loader *l = arg;
  /* Linux nice values are per thread: this lowers only this worker (best effort). */
  if (l->cfg.nice > 0) (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), l->cfg.nice);
  fill_scratch sc;
  memset(&sc, 0, sizeof sc);
  pthread_mutex_lock(&l->mu);
  for (;;) {
    slot_t *sl = &l->slots[l->next_claim % l->k];
    while (!l->stop && sl->state != SLOT_FREE) {
      pthread_cond_wait(&l->cv_free, &l->mu);
      sl = &l->slots[l->next_claim % l->k];
    }
    if (l->stop) break;
    int64_t no = l->next_claim++;
    sl->state = SLOT_FILLING;
    sl->batch_no = no;
    pthread_mutex_unlock(&l->mu);
    ky_error_clear();
    ky_status s = fill_with(&sl->b, &l->cfg, no, &sc);
    pthread_mutex_lock(&l->mu);
    sl->status = s;
    if (s != KY_OK) snprintf(sl->msg, sizeof sl->msg, "%s", ky_last_error());
    sl->state = SLOT_READY;
    pthread_cond_broadcast(&l->cv_ready);
  }
  pthread_mutex_unlock(&l->mu);
  scratch_free(&sc);
  return NULL;
}

static void loader_free(ky_loader *l) {
  if (l->slots)
    for (int i = 0; i < l->k; i++) ky_batch_free(&l->slots[i].b);
  free(l->slots);
  free(l->threads);
  free(l->list);
  free(l);
}

ky_status ky_loader_start(ky_loader **out, const ky_loader_config *cfg) {
  KY_CHECK_NULL(out, "out");
  *out = NULL;
  KY_TRY(check_config(cfg));
  KY_CHECK(cfg->threads >= 1 && cfg->threads <= 256, KY_ERR_ARG, "loader: threads %d, expected 1..256", cfg->threads);
  KY_CHECK(cfg->ring >= 0 && cfg->ring <= 1024, KY_ERR_ARG, "loader: ring %d, expected 0..1024", cfg->ring);
  ky_loader *l = calloc(1, sizeof *l);
  if (!l) return ky_error(KY_ERR_NOMEM, "loader: out of memory");
  l->cfg = *cfg;
  l->k = cfg->ring ? cfg->ring : 2 * cfg->threads;
  l->held = -1;
  l->next_claim = l->next_consume = cfg->first_batch;
  if (cfg->list) {
    l->list = malloc((size_t)cfg->n_list * sizeof *l->list);
    if (!l->list) { loader_free(l); return ky_error(KY_ERR_NOMEM, "loader: out of memory"); }
    memcpy(l->list, cfg->list, (size_t)cfg->n_list * sizeof *l->list);
    l->cfg.list = l->list;
  }
  l->slots = calloc((size_t)l->k, sizeof *l->slots);
  l->threads = calloc((size_t)cfg->threads, sizeof *l->threads);
  if (!l->slots || !l->threads) { loader_free(l); return ky_error(KY_ERR_NOMEM, "loader: out of memory"); }
  for (int i = 0; i < l->k; i++) {
    int lo, hi;
    shard(cfg, &lo, &hi);
    ky_status s = ky_batch_alloc(&l->slots[i].b, hi - lo, cfg->crop, cfg->crop, cfg->with_sigmoid);
    if (s != KY_OK) { loader_free(l); return s; }
  }
  pthread_mutex_init(&l->mu, NULL);
  pthread_cond_init(&l->cv_free, NULL);
  pthread_cond_init(&l->cv_ready, NULL);
  for (int i = 0; i < cfg->threads; i++) {
    if (pthread_create(&l->threads[i], NULL, worker, l) != 0) {
      ky_loader_stop(l);
      return ky_error(KY_ERR_STATE, "loader: cannot start worker thread %d", i);
    }
    l->n_threads = i + 1;
  }
  *out = l;
  return KY_OK;
}

ky_status ky_loader_next(ky_loader *l, const ky_batch **batch, int64_t *batch_no) {
  KY_CHECK_NULL(l, "loader");
  KY_CHECK_NULL(batch, "batch");
  *batch = NULL;
  pthread_mutex_lock(&l->mu);
  if (l->failed != KY_OK) {
    ky_status f = l->failed;
    pthread_mutex_unlock(&l->mu);
    return ky_error(f, "%s", l->failed_msg);
  }
  if (l->held >= 0) {
    l->slots[l->held].state = SLOT_FREE;
    l->held = -1;
    pthread_cond_broadcast(&l->cv_free);
  }
  int idx = (int)(l->next_consume % l->k);
  slot_t *sl = &l->slots[idx];
  while (!(sl->state == SLOT_READY && sl->batch_no == l->next_consume)) pthread_cond_wait(&l->cv_ready, &l->mu);
  int64_t no = l->next_consume++;
  l->held = idx;
  if (sl->status != KY_OK) {
    l->failed = sl->status;
    snprintf(l->failed_msg, sizeof l->failed_msg, "batch %lld: %s", (long long)no, sl->msg);
    ky_status f = l->failed;
    pthread_mutex_unlock(&l->mu);
    return ky_error(f, "%s", l->failed_msg);
  }
  pthread_mutex_unlock(&l->mu);
  *batch = &sl->b;
  if (batch_no) *batch_no = no;
  return KY_OK;
}

void ky_loader_stop(ky_loader *l) {
  if (!l) return;
  pthread_mutex_lock(&l->mu);
  l->stop = 1;
  pthread_cond_broadcast(&l->cv_free);
  pthread_cond_broadcast(&l->cv_ready);
  pthread_mutex_unlock(&l->mu);
  for (int i = 0; i < l->n_threads; i++) pthread_join(l->threads[i], NULL);
  pthread_mutex_destroy(&l->mu);
  pthread_cond_destroy(&l->cv_free);
  pthread_cond_destroy(&l->cv_ready);
  loader_free(l);
}
