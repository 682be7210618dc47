# Rewrites CUDA kernel launches `k<<<grid, block>>>(args);` into emulator calls, for tests/cuda_emu/run_ops.sh.
import re, sys
src = open(sys.argv[1]).read()
pat = re.compile(r'([A-Za-z_][\w:]*(?:<[^;<>()]*>)?)\s*<<<(.*?)>>>\s*\((.*?)\)\s*;', re.S)
def rep(m):
    return 'emu_launch(emu_make_cfg(%s), [&]{ %s(%s); });' % (m.group(2), m.group(1), m.group(3))
out, n = pat.subn(rep, src)
sys.stderr.write(f"{sys.argv[1]}: {n} launches\n")
open(sys.argv[2], 'w').write('#include "emu_cuda.h"\n' + out)
