// sidecost: a one-way stream, writer and reader pinned, each call timed (CLOCK_MONOTONIC, vDSO).
// usage: sidecost TRANSPORT SIZE COUNT CPU_W CPU_R   (TCP with TCP_NODELAY on both sockets, as lbsim measure;
//   unix_dgram is a socketpair, whose ends are each other's peer, so max_dgram_qlen does not apply;
//   unix_dgram_bound is lbsim's harness set-up: a bound server, a client connect()ed to it, not connected back)
// prints, per side: calls, median/p10/p90 of calls under 5 us (no sleep), share of calls over 5 us,
// voluntary context switches, and the throughput (bytes received / (first write .. last byte)).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}
static void pin(int cpu) {
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    if (sched_setaffinity(0, sizeof s, &s)) { perror("affinity"); exit(2); }
}
static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static void dump(const char *side, double *t0, double *t, long n) {
    const char *pre = getenv("SIDECOST_DUMP");  // PREFIX: write PREFIX.writer / PREFIX.reader, "start_ns dur_ns" per call
    if (!pre) return;
    char path[4096];
    snprintf(path, sizeof path, "%s.%s", pre, side);
    FILE *f = fopen(path, "w");
    if (!f) { perror(path); return; }
    for (long i = 0; i < n; i++) fprintf(f, "%.0f %.0f\n", t0[i], t[i]);
    fclose(f);
}
static void report(const char *side, double *t, long n, long nvcsw) {
    double *fast = malloc(sizeof(double) * n);
    long nf = 0, slow = 0;
    for (long i = 0; i < n; i++) {
        if (t[i] < 5000) fast[nf++] = t[i]; else slow++;
    }
    qsort(fast, nf, sizeof(double), cmpd);
    double sum = 0;
    for (long i = 0; i < n; i++) sum += t[i];
    printf("%s calls %ld fast_p10 %.0f fast_p50 %.0f fast_p90 %.0f slow_frac %.4f mean %.0f nvcsw %ld\n", side, n,
           nf ? fast[nf / 10] : -1, nf ? fast[nf / 2] : -1, nf ? fast[nf * 9 / 10] : -1, (double)slow / n, sum / n,
           nvcsw);
    free(fast);
}

int main(int argc, char **argv) {
    if (argc != 6) { fprintf(stderr, "usage: sidecost tcp|udp|unix_stream|unix_dgram|unix_dgram_bound SIZE COUNT CPU_W CPU_R\n"); return 2; }
    const char *tr = argv[1];
    long size = atol(argv[2]), count = atol(argv[3]);
    int cw = atoi(argv[4]), cr = atoi(argv[5]);
    int wfd = -1, rfd = -1;
    int dgram = !strcmp(tr, "udp") || !strcmp(tr, "unix_dgram") || !strcmp(tr, "unix_dgram_bound");
    if (!strcmp(tr, "unix_dgram_bound")) {  /* as lbsim's harness: bound server, client connect()ed, server not connected back */
        struct sockaddr_un sa = {.sun_family = AF_UNIX}, ca = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof sa.sun_path, "/tmp/sidecost.s.%d", getpid());
        snprintf(ca.sun_path, sizeof ca.sun_path, "/tmp/sidecost.c.%d", getpid());
        unlink(sa.sun_path); unlink(ca.sun_path);
        rfd = socket(AF_UNIX, SOCK_DGRAM, 0); wfd = socket(AF_UNIX, SOCK_DGRAM, 0);
        if (bind(rfd, (void *)&sa, sizeof sa) || bind(wfd, (void *)&ca, sizeof ca) || connect(wfd, (void *)&sa, sizeof sa)) { perror("bind/connect"); return 2; }
        unlink(sa.sun_path); unlink(ca.sun_path);  /* connected: the paths are no longer needed */
    } else if (!strcmp(tr, "unix_stream") || !strcmp(tr, "unix_dgram")) {
        int sv[2];
        if (socketpair(AF_UNIX, dgram ? SOCK_DGRAM : SOCK_STREAM, 0, sv)) { perror("socketpair"); return 2; }
        wfd = sv[0]; rfd = sv[1];
    } else {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t al = sizeof a;
        int l = socket(AF_INET, dgram ? SOCK_DGRAM : SOCK_STREAM, 0);
        bind(l, (void *)&a, sizeof a);
        getsockname(l, (void *)&a, &al);
        if (dgram) {
            rfd = l;
            wfd = socket(AF_INET, SOCK_DGRAM, 0);
            connect(wfd, (void *)&a, sizeof a);
        } else {
            listen(l, 1);
            wfd = socket(AF_INET, SOCK_STREAM, 0);
            connect(wfd, (void *)&a, sizeof a);
            rfd = accept(l, 0, 0);
            close(l);
            int one = 1;  // as lbsim's harness (and the model's default tcp_nodelay)
            setsockopt(wfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            setsockopt(rfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
    }
    double *shared = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    pid_t pid = fork();
    char *buf = malloc(size);
    memset(buf, 'x', size);
    if (pid == 0) {  // reader
        pin(cr);
        close(wfd);
        struct timeval tv = {0, 300000};
        setsockopt(rfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        long cap = count * (dgram ? 1 : 4) + 16, n = 0;
        double *t = malloc(sizeof(double) * cap), *ts = malloc(sizeof(double) * cap);
        long long got = 0, want = (long long)size * count;
        double last = 0;
        while (n < cap && (dgram || got < want)) {
            double t0 = now_ns();
            ssize_t r = read(rfd, buf, size);
            double t1 = now_ns();
            if (r <= 0) break;
            ts[n] = t0;
            t[n++] = t1 - t0;
            got += r;
            last = t1;
        }
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        fflush(stdout);
        report("reader", t, n, ru.ru_nvcsw);
        dump("reader", ts, t, n);
        shared[1] = last;
        shared[2] = (double)got;
        fflush(stdout);
        _exit(0);
    }
    pin(cw);
    close(rfd);
    usleep(50000);
    double *t = malloc(sizeof(double) * count), *ts = malloc(sizeof(double) * count);
    double first = now_ns();
    for (long i = 0; i < count; i++) {
        double t0 = now_ns();
        ssize_t w = write(wfd, buf, size);
        double t1 = now_ns();
        if (w != size) { if (w < 0) perror("write"); break; }
        ts[i] = t0;
        t[i] = t1 - t0;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    report("writer", t, count, ru.ru_nvcsw);
    dump("writer", ts, t, count);
    fflush(stdout);
    if (!dgram) shutdown(wfd, SHUT_WR);
    int st;
    waitpid(pid, &st, 0);
    double secs = (shared[1] - first) / 1e9;
    printf("throughput_MBps %.0f received_bytes %.0f\n", shared[2] / secs / 1e6, shared[2]);
    return 0;
}
