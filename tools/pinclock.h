// The two helpers the tools' C programs share: CLOCK_MONOTONIC in ns and pinning the calling thread to
// one CPU.  Included by relative path ("../pinclock.h"), so each program still builds with a bare
// `cc -O2 file.c`.
#ifndef LBSIM_TOOLS_PINCLOCK_H
#define LBSIM_TOOLS_PINCLOCK_H
#include <sched.h>
#include <time.h>

static inline long long now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static inline int pin(int c) {
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(c, &s);
    return sched_setaffinity(0, sizeof s, &s);
}
#endif
