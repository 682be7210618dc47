/* The autograd tape: ops record a node (inputs, output, saved state, backward function) in
 * execution order; ky_backward walks the nodes in reverse and accumulates gradients.
 * Tested by tests/test_core_autograd.c and the op-case gradient checks (tests/optable_cases.c). */
#ifndef KY_TAPE_H
#define KY_TAPE_H

#include "core/tensor.h"

typedef struct ky_ctx ky_ctx;

#define KY_NODE_MAX_IN 8

struct ky_node {
  const char *op;                                  /* "conv2d", ... (messages) */
  ky_status (*backward)(ky_ctx *ctx, ky_node *n);  /* reads out->grad, accumulates into in[i]->grad */
  ky_tensor *out;
  ky_tensor *in[KY_NODE_MAX_IN];
  int n_in;
  void *saved;                                     /* op-specific, arena memory */
  ky_node *prev;                                   /* the node recorded before this one */
};

typedef struct {
  ky_node *last;   /* newest node; the list runs backwards through prev */
  size_t count;
} ky_tape;

#endif
