/* `karyon targets`: writes the reference training targets (body, border, full, labels PNGs) for
 * the samples of a DSB folder. Tested by tests/test_data_targets.c (the library calls) and by
 * hand on tests/fixtures/dsb_sample. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/cli.h"
#include "core/fileio.h"
#include "core/image.h"
#include "data/dsb.h"
#include "data/targets.h"

const char ky_cmd_targets_summary[] = "write body/border/full/label target PNGs for a DSB folder";

static void usage(void) {
  printf("usage: karyon targets --data DIR --out DIR [--ids ID1,ID2,...]\n"
         "  DIR holds <id>/images/<id>.png and <id>/masks/*.png (the DSB 2018 layout).\n"
         "  For every id (all of DIR, or the comma-separated --ids) writes into --out:\n"
         "    <id>_body.png    8-bit 0/255 body (nucleus minus the separation band)\n"
         "    <id>_border.png  8-bit 0/255 separation band between nuclei closer than ~2r px\n"
         "    <id>_full.png    8-bit 0/255 full mask (labels > 0)\n"
         "    <id>_labels.png  16-bit label map (masks painted 1..N in file-name order)\n"
         "  The targets follow the reference's create_mask (spec section 1.1).\n");
}

static ky_status write_one(const char *data, const char *id, const char *out) {
  ky_dsb_sample s;
  KY_TRY(ky_dsb_load(&s, data, id, KY_DSB_MASKS_REQUIRED));
  size_t np = (size_t)s.h * s.w;
  uint8_t *body = malloc(np), *sep = malloc(np), *full = malloc(np);
  ky_status st = KY_OK;
  if (!body || !sep || !full) st = ky_error(KY_ERR_NOMEM, "%s: out of memory", id);
  if (st == KY_OK) st = ky_targets_make(body, sep, full, s.labels, s.h, s.w);
  if (st != KY_OK) ky_error_context(st, "%s: ", id);
  char path[4096];
  const char *names[3] = {"body", "border", "full"};
  const uint8_t *planes[3] = {body, sep, full};
  for (int k = 0; k < 3 && st == KY_OK; k++) {
    snprintf(path, sizeof path, "%s/%s_%s.png", out, id, names[k]);
    st = ky_png_save_u8(path, planes[k], s.w, s.h, 1);
  }
  if (st == KY_OK) {
    snprintf(path, sizeof path, "%s/%s_labels.png", out, id);
    st = ky_dsb_write_labels(path, s.labels, s.h, s.w);
  }
  free(body);
  free(sep);
  free(full);
  ky_dsb_sample_free(&s);
  return st;
}

int ky_cmd_targets(int argc, char **argv) {
  static const char *const known[] = {"data", "out", "ids", "help!", NULL};
  if (ky_cli_wants_help(argc, argv)) { usage(); return 0; }
  if (!ky_cli_check(argc, argv, "targets", known)) return 2;
  const char *data = ky_cli_opt(argc, argv, "data"), *out = ky_cli_opt(argc, argv, "out");
  const char *ids_opt = ky_cli_opt(argc, argv, "ids");
  if (!data || !out) {
    fprintf(stderr, "karyon targets: --data and --out are required (karyon targets --help)\n");
    return 2;
  }
  ky_status s = ky_mkdirs(out);
  if (s != KY_OK) return ky_cli_fail("targets", s);
  ky_dsb_ids ids;
  s = ky_cli_ids(&ids, data, ids_opt);
  if (s != KY_OK) return ky_cli_fail("targets", s);
  int done = 0;
  for (int i = 0; i < ids.n && s == KY_OK; i++) {
    s = write_one(data, ids.ids[i], out);
    if (s == KY_OK) done++;
  }
  ky_dsb_ids_free(&ids);
  if (s != KY_OK) return ky_cli_fail("targets", s);
  printf("karyon targets: wrote targets for %d image%s into %s\n", done, done == 1 ? "" : "s", out);
  return 0;
}
