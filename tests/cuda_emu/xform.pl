#!/usr/bin/perl
# Rewrites CUDA kernel launches `k<<<grid, block>>>(args);` into emulator calls and marks every
# __shared__ array for per-block poisoning, for tests/cuda_emu/run_ops.sh and run.sh (perl, which
# every Debian system has, so the emulation needs no Python).
# Usage: xform.pl IN.cu OUT.cpp [KERNEL=FUNC ...]: a launch of KERNEL<T...> becomes a host call
# FUNC<T...>(cfg, args) (run.sh replays the TF32 mma kernel this way: g++ cannot run its PTX).
use strict;
use warnings;
my ($in, $out, @pairs) = @ARGV;
my %replay = map { split /=/, $_, 2 } @pairs;
sub launch {
  my ($k, $cfg, $args) = @_;
  (my $name = $k) =~ s/<.*//s;
  return "$replay{$name}" . substr($k, length $name) . "(emu_make_cfg($cfg), $args);" if exists $replay{$name};
  return "emu_launch(emu_make_cfg($cfg), [&]{ $k($args); });";
}
open my $fi, '<', $in or die "$in: $!\n";
my $src = do { local $/; <$fi> };
close $fi;
my $n = ($src =~ s{([A-Za-z_][\w:]*(?:<[^;<>()]*>)?)\s*<<<(.*?)>>>\s*\((.*?)\)\s*;}{launch($1, $2, $3)}gse) || 0;
# Shared arrays start each block as garbage (emu_shared_fresh poisons them); the declaration is a
# function-local static in the emulation, so without this a block would see its predecessor's data.
my $ns = ($src =~ s{(__shared__\s[^;{}]*?\b([A-Za-z_]\w*)\s*(?:\[[^;]*?\]\s*)+;)}{$1 emu_shared_fresh($2, sizeof $2);}g) || 0;
print STDERR "$in: $n launches, $ns shared arrays\n";
open my $fo, '>', $out or die "$out: $!\n";
print $fo "#include \"emu_cuda.h\"\n", $src;
close $fo;
