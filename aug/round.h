/* Round half to even (cvRound / lrint semantics) that compiles to one instruction where the target
 * has SSE4.1/AVX (rint sets no errno, so it is inlined; lrint is a libm call under the default
 * -fmath-errno). Internal to aug/; exercised by every parity test of tests/test_aug_*.c. */
#ifndef KY_AUG_ROUND_H
#define KY_AUG_ROUND_H

#include <math.h>

static inline int ky_aug_iround(double v) { return (int)rint(v); }
static inline int ky_aug_iroundf(float v) { return (int)rintf(v); }

#endif
