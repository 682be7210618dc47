/* `karyon pack`: rewrites a DSB folder in the compact layout (one grey-or-RGB image and one 16-bit
 * label map per sample; see ky_dsb_save_compact), which karyon reads like the original. Made to fit
 * the training set under the device tool's 64 MiB carry limit. Tested by tests/test_apps_cli.c;
 * the layout itself by tests/test_data_dsb.c. */
#include <stdio.h>

#include "apps/cli.h"
#include "core/fileio.h"
#include "data/dsb.h"

const char ky_cmd_pack_summary[] = "rewrite a DSB folder compactly (one label map per image)";

static void usage(void) {
  printf("usage: karyon pack --data DIR --out DIR [--ids ID1,ID2,...]\n"
         "  DIR holds <id>/images/<id>.png and <id>/masks/*.png (the DSB 2018 layout; images\n"
         "  without masks/ are packed without labels). Writes, for every id (all of DIR, or --ids):\n"
         "    <out>/<id>/images/<id>.png  8-bit grey when R = G = B everywhere, else 8-bit RGB\n"
         "    <out>/<id>/labels.png       16-bit label map, masks painted 1..N in file-name order\n"
         "  Every karyon command that takes a DSB folder reads the result and sees the same pixels\n"
         "  and labels. The DSB stage-1 training set shrinks from 189 MB to 77 MB.\n");
}

int ky_cmd_pack(int argc, char **argv) {
  static const char *const known[] = {"data", "out", "ids", "help!", NULL};
  if (ky_cli_wants_help(argc, argv)) { usage(); return 0; }
  if (!ky_cli_check(argc, argv, "pack", known)) return 2;
  const char *data = ky_cli_opt(argc, argv, "data"), *out = ky_cli_opt(argc, argv, "out");
  if (!data || !out) {
    fprintf(stderr, "karyon pack: --data and --out are required (karyon pack --help)\n");
    return 2;
  }
  ky_dsb_ids ids;
  ky_status s = ky_cli_ids(&ids, data, ky_cli_opt(argc, argv, "ids"));
  if (s != KY_OK) return ky_cli_fail("pack", s);
  int done = 0, labelled = 0;
  for (int i = 0; i < ids.n && s == KY_OK; i++) {
    ky_dsb_sample smp;
    s = ky_dsb_load(&smp, data, ids.ids[i], KY_DSB_MASKS_OPTIONAL);
    if (s == KY_OK) {
      s = ky_dsb_save_compact(&smp, out, ids.ids[i]);
      labelled += smp.labels != NULL;
      ky_dsb_sample_free(&smp);
    }
    done += s == KY_OK;
  }
  ky_dsb_ids_free(&ids);
  if (s != KY_OK) return ky_cli_fail("pack", s);
  printf("karyon pack: wrote %d sample%s (%d with labels) into %s\n", done, done == 1 ? "" : "s", labelled, out);
  return 0;
}
