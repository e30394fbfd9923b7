// What one IPI costs the CPU it lands on when that CPU is busy: a thread spins on CPU 1 reading
// CLOCK_MONOTONIC and counts the gaps between two reads longer than THRESH_NS, while the main thread,
// on CPU 0, calls membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) every PERIOD_US: the kernel sends one
// IPI to each CPU running a thread of this process (kernel/sched/membarrier.c: smp_call_function_many
// with ipi_mb, a bare memory barrier) and waits for it.  So each call takes from the spinner what
// receiving an IPI costs, and nothing else: no task is woken.  Run by tools/cross-cpu/busy_target.py.
// MODE "signal" sends the spinner SIGUSR1 (an empty handler) with tgkill instead: signal_wake_up ->
// kick_process sends it a reschedule IPI without waiting, so the call's length is the sender's side of
// an IPI to a running vCPU; MODE "blocked" sends the same signal while the spinner blocks it (no
// wake-up, no IPI): the difference of the two calls' p50 is what sending the IPI costs.
//
//   cc -O2 -pthread -o ipicost ipicost.c
//   ./ipicost MODE CALLS PERIOD_US THRESH_NS      (MODE: membarrier, signal or blocked)
//
// Prints one JSON line: calls, the spinner's elapsed_ns / gaps / gap_ns while the calls ran, the
// same for an equal stretch without calls just before (the background), and the calls' p50 duration.
#define _GNU_SOURCE
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../pinclock.h"

static volatile int g_phase;  // 0: spinner starting, 1: background, 2: calls, 3: stop
static volatile pid_t g_tid;
static int g_mode;  // 0 membarrier, 1 signal, 2 blocked

static void on_usr1(int sig) { (void)sig; }
static long long g_thresh;
static long long g_gaps[3], g_gap_ns[3], g_elapsed[3];

static void *spin(void *arg) {
    (void)arg;
    if (pin(1) < 0) {
        perror("ipicost: pin CPU 1");
        exit(1);
    }
    sigset_t set;  // the main thread blocks SIGUSR1 (inherited): "signal" takes it here, "blocked" not
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(g_mode == 1 ? SIG_UNBLOCK : SIG_BLOCK, &set, NULL);
    g_tid = (pid_t)syscall(SYS_gettid);
    long long prev = now(), t0 = prev;
    int phase = 0;
    g_phase = 1;
    while (phase < 3) {
        long long t = now();
        int ph = g_phase;
        if (ph != phase) {
            if (phase > 0)
                g_elapsed[phase] = t - t0;
            t0 = t;
            phase = ph;
        }
        long long d = t - prev;
        if (d > g_thresh) {
            g_gaps[phase]++;
            g_gap_ns[phase] += d;
        }
        prev = t;
    }
    return NULL;
}

static int cmp(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

static void pause_us(long us) {
    long long end = now() + us * 1000LL;
    struct timespec ts = {0, us * 1000L};
    nanosleep(&ts, NULL);
    while (now() < end)
        ;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: ipicost membarrier|signal|blocked CALLS PERIOD_US THRESH_NS\n");
        return 2;
    }
    g_mode = !strcmp(argv[1], "membarrier") ? 0 : !strcmp(argv[1], "signal") ? 1 : !strcmp(argv[1], "blocked") ? 2 : -1;
    if (g_mode < 0) {
        fprintf(stderr, "ipicost: MODE must be membarrier, signal or blocked\n");
        return 2;
    }
    int calls = atoi(argv[2]);
    long period = atol(argv[3]);
    g_thresh = atoll(argv[4]);
    if (calls < 1 || calls > 1000000 || period < 10 || period > 100000 || g_thresh < 50) {
        fprintf(stderr, "ipicost: CALLS 1..1000000, PERIOD_US 10..100000, THRESH_NS >= 50\n");
        return 2;
    }
    if (pin(0) < 0 || syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) < 0) {
        perror("ipicost: pin CPU 0 or membarrier register");
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    sigset_t mine;  // only the spinner takes SIGUSR1
    sigemptyset(&mine);
    sigaddset(&mine, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &mine, NULL);
    pthread_t th;
    if (pthread_create(&th, NULL, spin, NULL)) {
        fprintf(stderr, "ipicost: pthread_create failed\n");
        return 1;
    }
    while (g_phase == 0)
        ;
    // the background: the same stretch of time, the same sleeps, no IPI
    for (int i = 0; i < calls; i++)
        pause_us(period);
    g_phase = 2;
    long long *dur = malloc(sizeof *dur * (size_t)calls);
    if (!dur)
        return 1;
    for (int i = 0; i < calls; i++) {
        pause_us(period);
        long long t = now();
        long rc = g_mode == 0 ? syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0)
                              : syscall(SYS_tgkill, getpid(), g_tid, SIGUSR1);
        if (rc < 0) {
            perror("ipicost: membarrier or tgkill");
            return 1;
        }
        dur[i] = now() - t;
    }
    g_phase = 3;
    pthread_join(th, NULL);
    qsort(dur, (size_t)calls, sizeof *dur, cmp);
    printf("{\"mode\": \"%s\", \"calls\": %d, \"period_us\": %ld, \"thresh_ns\": %lld, \"call_p50_ns\": %lld, "
           "\"background\": {\"elapsed_ns\": %lld, \"gaps\": %lld, \"gap_ns\": %lld}, "
           "\"with_calls\": {\"elapsed_ns\": %lld, \"gaps\": %lld, \"gap_ns\": %lld}}\n",
           argv[1], calls, period, g_thresh, dur[calls / 2], g_elapsed[1], g_gaps[1], g_gap_ns[1], g_elapsed[2], g_gaps[2],
           g_gap_ns[2]);
    free(dur);
    return 0;
}
