/*
 * The host build of bpf/arith.h: the same functions the BPF scheduler
 * runs, given external linkage so that the daemon links them (build.rs
 * compiles this file; src/arith.rs wraps the functions for Rust).
 */
#define REBAL_ARITH_FN
#include "../bpf/arith.h"
