/* Tests for data/folds: the shared sample's folds.csv, quoting/CRLF robustness, errors naming
 * the line, oversampling specs, always-in-train ids and the hash fallback. Run by `make test`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fileio.h"
#include "data/folds.h"

static char g_dir[64];

static int setup(void **st) {
  strcpy(g_dir, "/tmp/ky_folds_XXXXXX");
  return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **st) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
  return system(cmd);
}

static const char *write_csv(const char *name, const char *text) {
  static char path[256];
  snprintf(path, sizeof path, "%s/%s", g_dir, name);
  assert_int_equal(ky_file_write_atomic(path, text, strlen(text)), KY_OK);
  return path;
}

static void test_sample_csv(void **st) {
  ky_folds f;
  assert_int_equal(ky_folds_load(&f, "tests/fixtures/dsb_sample/folds.csv"), KY_OK);
  assert_int_equal(f.n, 9);
  int i = ky_folds_find(&f, "1ec74a26e772966df764e063f1391109a60d803cff9d15680093641ed691bf72");
  assert_true(i >= 0);
  assert_int_equal(f.rows[i].fold, 3);
  assert_string_equal(f.rows[i].cluster, "b");
  assert_string_equal(f.rows[i].source, "train");
  /* hold_out: 4193474b and f4b7c24b. */
  int nh = 0;
  for (int k = 0; k < f.n; k++) nh += f.rows[k].hold_out;
  assert_int_equal(nh, 2);
  assert_int_equal(f.rows[ky_folds_find(&f, "4193474b2f1c72f735b13633b219d9cabdd43c21d9c2bb4dfc4809f104ba4c06")].hold_out, 1);
  assert_int_equal(f.rows[i].hold_out, 0);
  int *tr, *va, nt, nv;
  assert_int_equal(ky_folds_split(&tr, &nt, &va, &nv, &f, 1, NULL, NULL), KY_OK);
  assert_int_equal(nv, 3);   /* 4193474b, e321cfa9, f4b7c24b */
  assert_int_equal(nt, 6);
  for (int k = 0; k < nv; k++) assert_int_equal(f.rows[va[k]].fold, 1);
  for (int k = 0; k < nt; k++) assert_int_not_equal(f.rows[tr[k]].fold, 1);
  free(tr); free(va);
  /* Albu's factors: b x4, c x3, e x4 on the training rows of fold 1 (1ec74a26 b, 8e507d58 c,
   * and four f/a rows) -> 4 + 3 + 4 = 11. */
  ky_oversample os;
  assert_int_equal(ky_oversample_parse(&os, "b:4,d:4,e:4,m:4,c:3,n:3,polosa:5"), KY_OK);
  assert_int_equal(os.n, 7);
  assert_int_equal(ky_folds_split(&tr, &nt, &va, &nv, &f, 1, &os, NULL), KY_OK);
  assert_int_equal(nt, 11);
  assert_int_equal(nv, 3);
  free(tr); free(va);
  ky_folds_free(&f);
}

static void test_quotes_crlf_and_column_order(void **st) {
  const char *p = write_csv("q.csv",
      "\xef\xbb\xbf" "source,\"fold\",img_id,cluster\r\n"
      "train,0,aaa,f\r\n"
      "\r\n"
      "\"wiki,media\",2,\"b\"\"q\",c\r\n"
      "wikimedia,1,ccc,\"\"\r\n"
      "train,3,193ffaa5272d5c421ae02130a64d98ad120ec70e4ed97a72cdcd4801ce93b066,a\r\n"
      "train,3,538b7673d507014d83af238876e03617396b70fe27f525f8205a4a96900fbb8e,f\n");
  ky_folds f;
  assert_int_equal(ky_folds_load(&f, p), KY_OK);
  assert_int_equal(f.n, 5);
  assert_string_equal(f.rows[1].id, "b\"q");
  assert_string_equal(f.rows[1].source, "wiki,media");
  assert_int_equal(f.rows[1].fold, 2);
  assert_string_equal(f.rows[2].cluster, "");
  assert_int_equal(f.rows[0].hold_out, 0);   /* no hold_out column */
  assert_true(ky_folds_always_train(&f.rows[2]));   /* source wikimedia */
  assert_false(ky_folds_always_train(&f.rows[1]));
  assert_true(ky_folds_always_train(&f.rows[3]));   /* polosa */
  assert_true(ky_folds_always_train(&f.rows[4]));   /* galaxy */
  /* Fold 3: polosa and galaxy stay in validation and are also in training; polosa x5. */
  ky_oversample os;
  assert_int_equal(ky_oversample_parse(&os, "c:2, polosa:5"), KY_OK);
  int *tr, *va, nt, nv;
  assert_int_equal(ky_folds_split(&tr, &nt, &va, &nv, &f, 3, &os, NULL), KY_OK);
  assert_int_equal(nv, 2);
  /* aaa 1 + b"q (c) 2 + ccc 1 + polosa 5 + galaxy 1 */
  assert_int_equal(nt, 10);
  int n_polosa = 0;
  for (int k = 0; k < nt; k++) n_polosa += tr[k] == 3;
  assert_int_equal(n_polosa, 5);
  free(tr); free(va);
  ky_folds_free(&f);
}

static void test_errors_name_the_line(void **st) {
  ky_folds f;
  const char *p = write_csv("e1.csv", "img_id,fold\na,0\nb,7\n");
  assert_int_equal(ky_folds_load(&f, p), KY_ERR_FORMAT);
  assert_non_null(strstr(ky_last_error(), "e1.csv:3:"));
  assert_non_null(strstr(ky_last_error(), "fold '7'"));
  p = write_csv("e2.csv", "img_id,fold\r\n\r\na,0\r\nb,1,x\r\n");
  assert_int_equal(ky_folds_load(&f, p), KY_ERR_FORMAT);
  assert_non_null(strstr(ky_last_error(), "e2.csv:4:"));
  p = write_csv("e3.csv", "id,fold\na,0\n");
  assert_int_equal(ky_folds_load(&f, p), KY_ERR_FORMAT);
  assert_non_null(strstr(ky_last_error(), "img_id"));
  p = write_csv("e4.csv", "img_id,fold\n\"a,0\n");
  assert_int_equal(ky_folds_load(&f, p), KY_ERR_FORMAT);
  assert_non_null(strstr(ky_last_error(), "unterminated"));
  p = write_csv("e5.csv", "img_id,fold\na,0\na,1\n");
  assert_int_equal(ky_folds_load(&f, p), KY_ERR_FORMAT);
  assert_non_null(strstr(ky_last_error(), "duplicate"));
  p = write_csv("e6.csv", "img_id,fold,hold_out\na,0,True\nb,1,false\nc,2,\nd,3,yes\n");
  assert_int_equal(ky_folds_load(&f, p), KY_ERR_FORMAT);
  assert_non_null(strstr(ky_last_error(), "e6.csv:5: hold_out 'yes'"));
  p = write_csv("e7.csv", "img_id,fold,hold_out\na,0,True\nb,1,false\nc,2,\n");
  assert_int_equal(ky_folds_load(&f, p), KY_OK);
  assert_int_equal(f.rows[0].hold_out + 2 * f.rows[1].hold_out + 4 * f.rows[2].hold_out, 1);
  ky_folds_free(&f);
  assert_int_equal(ky_folds_load(&f, "/nonexistent_ky/folds.csv"), KY_ERR_IO);
  assert_non_null(strstr(ky_last_error(), "/nonexistent_ky/folds.csv"));
  ky_oversample os;
  assert_int_equal(ky_oversample_parse(&os, "b:4,c"), KY_ERR_ARG);
  assert_int_equal(ky_oversample_parse(&os, "b:0"), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "'b'"));
  assert_int_equal(ky_oversample_parse(&os, NULL), KY_OK);
  assert_int_equal(os.n, 0);
}

static void test_fallback(void **st) {
  enum { N = 200 };
  char buf[N][16];
  const char *ids[N];
  for (int i = 0; i < N; i++) { snprintf(buf[i], sizeof buf[i], "id%03d", i); ids[i] = buf[i]; }
  ky_folds a, b;
  assert_int_equal(ky_folds_fallback(&a, ids, N), KY_OK);
  assert_int_equal(ky_folds_fallback(&b, ids + 100, 100), KY_OK);
  int count[KY_FOLDS_K] = {0};
  for (int i = 0; i < N; i++) count[a.rows[i].fold]++;
  for (int k = 0; k < KY_FOLDS_K; k++) assert_true(count[k] > 25 && count[k] < 75);
  /* A sample's fold depends on its id only, not on which other ids are listed. */
  for (int i = 0; i < 100; i++) assert_int_equal(a.rows[100 + i].fold, b.rows[i].fold);
  int *tr, *va, nt, nv;
  assert_int_equal(ky_folds_split(&tr, &nt, &va, &nv, &a, 2, NULL, NULL), KY_OK);
  assert_int_equal(nt + nv, N);
  assert_int_equal(nv, count[2]);
  free(tr); free(va);
  assert_int_equal(ky_folds_split(&tr, &nt, &va, &nv, &a, 4, NULL, NULL), KY_ERR_ARG);
  assert_non_null(strstr(ky_last_error(), "fold 4"));
  ky_folds_free(&a);
  ky_folds_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sample_csv),
      cmocka_unit_test(test_quotes_crlf_and_column_order),
      cmocka_unit_test(test_errors_name_the_line),
      cmocka_unit_test(test_fallback),
  };
  return cmocka_run_group_tests_name("data_folds", tests, setup, teardown);
}
