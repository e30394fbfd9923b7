// What a CPU loses to the work that interrupts a busy task: a nice-19 spinner pinned to one CPU reads
// CLOCK_MONOTONIC in a tight loop and counts every gap between two reads longer than THRESH_NS (its CPU
// was taken: an interrupt, another task, or the hypervisor, which the guest kernel cannot see).  Run by
// tools/cross-cpu/busy_target.py, beside a cross-CPU ping-pong whose server shares this CPU.
//
//   cc -O2 -o spingaps spingaps.c
//   ./spingaps CPU SECONDS THRESH_NS
//
// Stops after SECONDS or on SIGTERM/SIGINT, whichever comes first, and prints one JSON line:
// elapsed_ns, gaps, gap_ns and a histogram of gap lengths in 250 ns bins up to 250 us (the last bin
// holds every longer gap).
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "../pinclock.h"

#define BIN_NS 250
#define NBINS 1001

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) { (void)sig; g_stop = 1; }

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: spingaps CPU SECONDS THRESH_NS\n");
        return 2;
    }
    int cpu = atoi(argv[1]);
    double seconds = atof(argv[2]);
    long long thresh = atoll(argv[3]);
    if (seconds <= 0 || seconds > 600 || thresh < 50) {
        fprintf(stderr, "spingaps: SECONDS must be in (0, 600], THRESH_NS at least 50\n");
        return 2;
    }
    if (pin(cpu) < 0 || setpriority(PRIO_PROCESS, 0, 19) < 0) {
        perror("spingaps: pin or nice");
        return 1;
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    printf("ready\n");  /* pinned, niced, signals caught: the driver may start the ping-pong */
    fflush(stdout);
    static long long hist[NBINS];
    long long gaps = 0, gap_ns = 0;
    long long start = now(), end = start + (long long)(seconds * 1e9), prev = start, t = start;
    fflush(stdout);
    while (!g_stop && t < end) {
        t = now();
        long long d = t - prev;
        if (d > thresh) {
            gaps++;
            gap_ns += d;
            long long b = d / BIN_NS;
            hist[b < NBINS ? b : NBINS - 1]++;
        }
        prev = t;
    }
    printf("{\"cpu\": %d, \"thresh_ns\": %lld, \"bin_ns\": %d, \"elapsed_ns\": %lld, \"gaps\": %lld, "
           "\"gap_ns\": %lld, \"hist\": [", cpu, thresh, BIN_NS, t - start, gaps, gap_ns);
    for (int i = 0; i < NBINS; i++)
        printf("%s%lld", i ? ", " : "", hist[i]);
    printf("]}\n");
    return 0;
}
