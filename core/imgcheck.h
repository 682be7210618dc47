/* Checks of image bytes that the system's stb_image (2.27) does not make, run before it decodes:
 * PNG chunks must fit the file (a tiny file declaring a 1 GB IDAT made stb allocate 2 GB), empty
 * IDAT chunks are dropped (stb computes NULL + 0 on one), and JPEGs are refused with a reason
 * (stb's JPEG decoder, not compiled in, wrote past its Huffman tables and shifted by 32 bits on
 * corrupt files). Each was found by the fuzz harnesses (tests/fuzz/) and is replayed from
 * tests/fuzz/corpus by tests/test_fuzz_replay.c; tests/test_data_hostile.c checks the messages. */
#ifndef KY_IMGCHECK_H
#define KY_IMGCHECK_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

/* b: the whole file, *n bytes; may shrink *n (dropped chunks). Other formats pass unchanged. */
ky_status ky_image_precheck(uint8_t *b, size_t *n, const char *path);

#endif
