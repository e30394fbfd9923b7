// Cross-CPU wake-up cost against how long the woken CPU has been idle, and against whether
// the waker keeps running afterwards (docs/notes/idle-wake.md; run by tools/idle-wake/idle_wake.py).
//
// A UNIX socketpair, 1-byte messages.  A is pinned to CPU 0, B to CPU 1.  B blocks in read()
// and, as soon as it returns, stamps CLOCK_MONOTONIC into an 8-byte reply.  For each point
// (D, E): A spins D us after each reply (so B has been idle about D us when A writes), writes
// 1 byte, spins E us more (the waker stays busy for E us after the wake-up), then waits for the
// reply: polling with MSG_DONTWAIT (mode "spin": A never sleeps) or blocking in read() (mode
// "block", as a ping-pong does).  Per round trip it records the write() call (an expensive IPI
// exit shows as a slow write; ipi_frac is the share of writes over 5 us, not of IPIs: traced,
// fast writes send IPIs too, see trace_idlewake.py), the round trip, and the one-way wake-up:
// A's write() to B's read() returning, on the shared CLOCK_MONOTONIC.
//
//   cc -O2 -o idlewake idlewake.c
//   ./idlewake MODE N BUDGET_MS D1,D2,... E1,E2,...
//
// prints one CSV row per (D, E) after a header.  Each point runs 100 warm-up round trips, then
// N round trips or BUDGET_MS milliseconds, whichever ends first (the row says how many ran).
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../pinclock.h"

static int cmp(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

static long long pct(long long *v, int n, int p) { return n ? v[(long long)n * p / 100 < n ? (long long)n * p / 100 : n - 1] : -1; }

static int parse_list(const char *s, int *out, int max) {
    int n = 0;
    char *copy = strdup(s), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok && n < max; tok = strtok_r(NULL, ",", &save)) {
        char *end;
        long v = strtol(tok, &end, 10);
        if (*end || v < 0 || v > 100000) { free(copy); return -1; }
        out[n++] = (int)v;
    }
    free(copy);
    return n;
}

static void spin_until(long long t) { while (now() < t) ; }

int main(int argc, char **argv) {
    if (argc != 6 || (strcmp(argv[1], "spin") && strcmp(argv[1], "block"))) {
        fprintf(stderr, "usage: %s spin|block N BUDGET_MS D1,D2,... E1,E2,...\n", argv[0]);
        return 2;
    }
    int block = !strcmp(argv[1], "block");
    int n = atoi(argv[2]);
    long long budget = atoll(argv[3]) * 1000000LL;
    int ds[64], es[64];
    int nd = parse_list(argv[4], ds, 64), ne = parse_list(argv[5], es, 64);
    if (n <= 0 || n > 1000000 || budget <= 0 || nd <= 0 || ne <= 0) {
        fprintf(stderr, "%s: bad N, BUDGET_MS or lists (N 1..1000000, delays in us 0..100000)\n", argv[0]);
        return 2;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) { perror("socketpair"); return 1; }
    pid_t p = fork();
    if (p < 0) { perror("fork"); return 1; }
    if (!p) {  // B
        if (pin(1)) _exit(3);
        close(sv[0]);
        char c;
        for (;;) {
            if (read(sv[1], &c, 1) != 1) _exit(0);
            long long t = now();
            if (write(sv[1], &t, sizeof t) != sizeof t) _exit(0);
        }
    }
    if (pin(0)) { perror("sched_setaffinity"); return 1; }
    close(sv[1]);
    long long *rtt = malloc(sizeof(long long) * n), *wr = malloc(sizeof(long long) * n),
              *ow = malloc(sizeof(long long) * n), *cheap = malloc(sizeof(long long) * n),
              *dear = malloc(sizeof(long long) * n);
    printf("mode,delay_us,after_us,round_trips,rtt_p50_ns,rtt_p10_ns,rtt_p90_ns,write_p50_ns,write_p90_ns,"
           "ipi_frac,oneway_p50_ns,oneway_p90_ns,oneway_noipi_p50_ns,oneway_ipi_p50_ns\n");
    for (int di = 0; di < nd; di++) {
        for (int ei = 0; ei < ne; ei++) {
            long long D = ds[di] * 1000LL, E = es[ei] * 1000LL;
            char c = 'x';
            int done = 0;
            long long start = 0;
            for (int i = -100; i < n; i++) {
                if (i == 0) start = now();
                if (i > 0 && now() - start > budget) break;
                spin_until(now() + D);
                long long a = now();
                if (write(sv[0], &c, 1) != 1) { perror("write"); return 1; }
                long long b = now();
                spin_until(b + E);
                long long tb = 0;
                size_t got = 0;
                while (got < sizeof tb) {
                    ssize_t r = block ? read(sv[0], (char *)&tb + got, sizeof tb - got)
                                      : recv(sv[0], (char *)&tb + got, sizeof tb - got, MSG_DONTWAIT);
                    if (r > 0) got += (size_t)r;
                    else if (r == 0 || (errno != EAGAIN && errno != EINTR)) { perror("read"); return 1; }
                }
                long long e = now();
                if (i >= 0) { rtt[i] = e - a; wr[i] = b - a; ow[i] = tb - a; done = i + 1; }
            }
            int nc = 0, nipi = 0;
            for (int i = 0; i < done; i++) {
                if (wr[i] > 5000) dear[nipi++] = ow[i]; else cheap[nc++] = ow[i];
            }
            qsort(rtt, done, 8, cmp); qsort(wr, done, 8, cmp); qsort(ow, done, 8, cmp);
            qsort(cheap, nc, 8, cmp); qsort(dear, nipi, 8, cmp);
            printf("%s,%d,%d,%d,%lld,%lld,%lld,%lld,%lld,%.3f,%lld,%lld,%lld,%lld\n", argv[1], ds[di], es[ei], done,
                   pct(rtt, done, 50), pct(rtt, done, 10), pct(rtt, done, 90), pct(wr, done, 50), pct(wr, done, 90),
                   done ? (double)nipi / done : 0.0, pct(ow, done, 50), pct(ow, done, 90), pct(cheap, nc, 50),
                   pct(dear, nipi, 50));
            fflush(stdout);
        }
    }
    close(sv[0]);
    waitpid(p, NULL, 0);
    return 0;
}
