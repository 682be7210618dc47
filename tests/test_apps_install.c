/* `make install`: a tiny program is built against the installed copies that `make test` makes in
 * $KY_BUILD/install-test (shared: libkaryon.a + libkaryon.so; static: libkaryon.a only) through
 * `pkg-config --cflags --libs karyon`, then run: its ReLU values and the ResNet34 U-Net's parameter
 * count must come out right, and readelf must show it linked the way it was asked (libkaryon.so.0
 * needed, or not). Also runs the installed `karyon info`. Compiler: $CC, else cc. */
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
#include "tests/util_test.h"

static char build[512], *dir;

static const char *kProgram =
    "#include <stdio.h>\n"
    "#include \"core/ctx.h\"\n"
    "#include \"models/model.h\"\n"
    "#include \"models/summary.h\"\n"
    "#include \"ops/ops.h\"\n"
    "int main(void) {\n"
    "  ky_ctx ctx;\n"
    "  if (ky_ctx_init(&ctx, KY_DEV_CPU, 0) != KY_OK) return 1;\n"
    "  float v[4] = {-1.5f, 2.0f, -0.25f, 3.5f}, out[4];\n"
    "  int shape[1] = {4};\n"
    "  ky_tensor *x, *y;\n"
    "  if (ky_tensor_from_host(&ctx, &x, KY_F32, 1, shape, v) != KY_OK || ky_relu(&ctx, &y, x) != KY_OK ||\n"
    "      ky_tensor_to_host(&ctx, out, y) != KY_OK) return 2;\n"
    "  printf(\"relu %g %g %g %g\\n\", out[0], out[1], out[2], out[3]);\n"
    "  ky_ctx_free(&ctx);\n"
    "  ky_model_config cfg = ky_model_config_default();\n"
    "  cfg.no_alloc = 1;\n"
    "  ky_model *m = NULL;\n"
    "  ky_model_summary s;\n"
    "  if (ky_model_create(&m, \"unet_resnet34\", &cfg) != KY_OK || ky_model_summarize(&s, m, 1, 256, 256) != KY_OK) {\n"
    "    fprintf(stderr, \"%s\\n\", ky_last_error());\n"
    "    return 3;\n"
    "  }\n"
    "  printf(\"params %lld\\n\", (long long)s.params);\n"
    "  ky_model_summary_free(&s);\n"
    "  ky_model_free(m);\n"
    "  return 0;\n"
    "}\n";

static int setup(void **st) {
  const char *b = getenv("KY_BUILD");
  snprintf(build, sizeof build, "%s", b && *b ? b : "build");
  char pc[700];
  snprintf(pc, sizeof pc, "%s/install-test/shared/lib/pkgconfig/karyon.pc", build);
  if (access(pc, R_OK) != 0) {
    fprintf(stderr, "test_apps_install: %s missing (run through `make test`, which installs there)\n", pc);
    return -1;
  }
  dir = ky_test_tmpdir("install");
  if (!dir) return -1;
  char src[600];
  snprintf(src, sizeof src, "%s/tiny.c", dir);
  FILE *f = fopen(src, "w");
  if (!f) return -1;
  fputs(kProgram, f);
  return fclose(f) == 0 ? 0 : -1;
}

static int teardown(void **st) {
  if (dir) ky_test_rmdir(dir);
  free(dir);
  return 0;
}

static char *slurp(const char *path) {
  char *buf = NULL;
  size_t n = 0;
  if (ky_file_read_all(path, &buf, &n) != KY_OK) fail_msg("cannot read %s: %s", path, ky_last_error());
  return buf;
}

/* Builds tiny.c against the install in $KY_BUILD/install-test/<kind> and checks what it prints. */
static void build_and_run(const char *kind, const char *pkg_flags, int want_shared) {
  const char *cc = getenv("CC");
  char prefix[700], exe[700], cmd[4096], log[700], out[700];
  snprintf(prefix, sizeof prefix, "%s/install-test/%s", build, kind);
  snprintf(exe, sizeof exe, "%s/tiny_%s", dir, kind);
  snprintf(log, sizeof log, "%s/cc_%s.log", dir, kind);
  snprintf(out, sizeof out, "%s/out_%s.txt", dir, kind);
  snprintf(cmd, sizeof cmd,
           "PKG_CONFIG_PATH='%s/lib/pkgconfig' && export PKG_CONFIG_PATH && "
           "%s -std=c11 '%s/tiny.c' -o '%s' $(pkg-config %s karyon) -Wl,-rpath,'%s/lib' >'%s' 2>&1",
           prefix, cc && *cc ? cc : "cc", dir, exe, pkg_flags, prefix, log);
  if (system(cmd) != 0) {
    char *l = slurp(log);
    fail_msg("%s build failed: %s\n%s", kind, cmd, l);
  }
  snprintf(cmd, sizeof cmd, "'%s' > '%s'", exe, out);
  assert_int_equal(system(cmd), 0);
  char *got = slurp(out);
  assert_string_equal(got, "relu 0 2 0 3.5\nparams 24531523\n");
  free(got);
  /* Linked the way it was asked: the shared install's program needs libkaryon.so.0, the static one not. */
  snprintf(cmd, sizeof cmd, "readelf -d '%s' | grep -q 'NEEDED.*libkaryon\\.so\\.0'", exe);
  assert_int_equal(system(cmd) == 0, want_shared);
}

static void test_shared(void **st) { build_and_run("shared", "--cflags --libs", 1); }

static void test_static(void **st) { build_and_run("static", "--cflags --libs --static", 0); }

/* The installed layout, and the installed karyon runs. */
static void test_layout_and_binary(void **st) {
  const char *want[] = {"lib/libkaryon.a",      "lib/libkaryon.so",    "lib/libkaryon.so.0",
                        "include/karyon/core/ctx.h", "include/karyon/ops/ops.h", "include/karyon/models/model.h",
                        "lib/pkgconfig/karyon.pc", "bin/karyon"};
  char p[1024];
  for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
    snprintf(p, sizeof p, "%s/install-test/shared/%s", build, want[i]);
    if (access(p, R_OK) != 0) fail_msg("not installed: %s", p);
  }
  /* Private headers stay out; the static-only install has no shared library. */
  snprintf(p, sizeof p, "%s/install-test/shared/include/karyon/ops/op_util.h", build);
  assert_int_not_equal(access(p, F_OK), 0);
  snprintf(p, sizeof p, "%s/install-test/static/lib/libkaryon.so", build);
  assert_int_not_equal(access(p, F_OK), 0);
  char cmd[2048], out[700];
  snprintf(out, sizeof out, "%s/info.txt", dir);
  snprintf(cmd, sizeof cmd, "'%s/install-test/shared/bin/karyon' info > '%s' 2>&1", build, out);
  assert_int_equal(system(cmd), 0);
  char *got = slurp(out);
  assert_non_null(strstr(got, "karyon backends: cpu"));
  free(got);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_layout_and_binary),
      cmocka_unit_test(test_shared),
      cmocka_unit_test(test_static),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
