/* `karyon watershed`: marker-controlled watershed of one image with skimage semantics (PNG in,
 * 16-bit label PNG out). Tested by tests/test_post_watershed.c (the library call) and by hand. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/cli.h"
#include "core/image.h"
#include "post/watershed.h"

const char ky_cmd_watershed_summary[] = "marker-controlled watershed of a PNG (skimage semantics)";

static void usage(void) {
  printf("usage: karyon watershed --elevation E.png --markers M.png [--mask K.png] [--lines]\n"
         "                        [--connectivity 4|8] [--fast] --out L.png\n"
         "  E.png: 8-bit (exact uint8 flood) or 16-bit (values as floats) elevation; first channel used.\n"
         "  M.png: 8/16-bit markers, 0 = none. K.png: nonzero = may be flooded.\n"
         "  --lines keeps one-pixel watershed lines at 0 (skimage watershed_line=True).\n"
         "  --connectivity 4 (default, skimage connectivity=1) or 8.\n"
         "  --fast uses the 256-bucket queue (8-bit only; tie order of equal-elevation markers differs).\n"
         "  L.png: 16-bit labels.\n");
}

/* Channel 0 of an image as int32 or float. */
static ky_status load_plane(ky_image *im, const char *path, const char *what) {
  ky_status s = ky_image_load(im, path);
  if (s != KY_OK) return ky_error_context(s, "%s: ", what);
  return KY_OK;
}

static double px(const ky_image *im, size_t i) {
  return im->depth == 16 ? ((uint16_t *)im->data)[i * im->c] : ((uint8_t *)im->data)[i * im->c];
}

int ky_cmd_watershed(int argc, char **argv) {
  static const char *const known[] = {"elevation", "markers", "mask", "lines!", "connectivity", "fast!", "out",
                                      "help!", NULL};
  if (ky_cli_wants_help(argc, argv)) { usage(); return 0; }
  if (!ky_cli_check(argc, argv, "watershed", known)) return 2;
  const char *ep = ky_cli_opt(argc, argv, "elevation"), *mp = ky_cli_opt(argc, argv, "markers");
  const char *kp = ky_cli_opt(argc, argv, "mask"), *op = ky_cli_opt(argc, argv, "out");
  int lines = ky_cli_flag(argc, argv, "lines"), fast = ky_cli_flag(argc, argv, "fast");
  if (!ep || !mp || !op) {
    fprintf(stderr, "karyon watershed: --elevation, --markers and --out are required\n");
    return 2;
  }
  long conn;
  if (!ky_cli_int(argc, argv, "watershed", "connectivity", 4, 8, 4, &conn)) return 2;
  if (conn != 4 && conn != 8) {
    fprintf(stderr, "karyon watershed: --connectivity is '%ld', expected 4 or 8\n", conn);
    return 2;
  }
  ky_image e = {0}, m = {0}, k = {0};
  int32_t *lab = NULL;
  uint8_t *mask = NULL, *e8 = NULL;
  float *ef = NULL;
  uint16_t *out = NULL;
  ky_status s;
  if ((s = load_plane(&e, ep, "elevation")) != KY_OK || (s = load_plane(&m, mp, "markers")) != KY_OK ||
      (kp && (s = load_plane(&k, kp, "mask")) != KY_OK))
    goto fail;
  int h = e.h, w = e.w;
  size_t n = (size_t)h * w;
  if (m.h != h || m.w != w || (kp && (k.h != h || k.w != w))) {
    s = ky_error(KY_ERR_SHAPE, "elevation %s is %dx%d but %s is %dx%d", ep, w, h,
                 (m.h != h || m.w != w) ? mp : kp, (m.h != h || m.w != w) ? m.w : k.w, (m.h != h || m.w != w) ? m.h : k.h);
    goto fail;
  }
  lab = malloc(n * sizeof *lab);
  out = malloc(n * sizeof *out);
  if (kp) mask = malloc(n);
  if (!lab || !out || (kp && !mask)) { s = ky_error(KY_ERR_NOMEM, "no memory for a %dx%d image", w, h); goto fail; }
  for (size_t i = 0; i < n; i++) lab[i] = (int32_t)px(&m, i);
  if (kp) for (size_t i = 0; i < n; i++) mask[i] = px(&k, i) != 0;
  if (e.depth == 8) {
    if (!(e8 = malloc(n))) { s = ky_error(KY_ERR_NOMEM, "no memory"); goto fail; }
    for (size_t i = 0; i < n; i++) e8[i] = (uint8_t)px(&e, i);
    s = fast ? ky_post_watershed_u8_fast(lab, e8, mask, h, w, conn, lines)
             : ky_post_watershed_u8(lab, e8, mask, h, w, conn, lines);
  } else {
    if (fast) { s = ky_error(KY_ERR_ARG, "--fast needs an 8-bit elevation, %s is 16-bit", ep); goto fail; }
    if (!(ef = malloc(n * sizeof *ef))) { s = ky_error(KY_ERR_NOMEM, "no memory"); goto fail; }
    for (size_t i = 0; i < n; i++) ef[i] = (float)px(&e, i);
    s = ky_post_watershed_f32(lab, ef, mask, h, w, conn, lines);
  }
  if (s != KY_OK) goto fail;
  for (size_t i = 0; i < n; i++) out[i] = (uint16_t)lab[i];   /* markers came from a 16-bit PNG */
  if ((s = ky_png_save_u16(op, out, w, h, 1)) != KY_OK) goto fail;
  ky_image_free(&e); ky_image_free(&m); ky_image_free(&k);
  free(lab); free(mask); free(e8); free(ef); free(out);
  return 0;
fail:
  ky_image_free(&e); ky_image_free(&m); ky_image_free(&k);
  free(lab); free(mask); free(e8); free(ef); free(out);
  return ky_cli_fail("watershed", s);
}
