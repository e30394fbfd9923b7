/*
 * lbsim-harness: real-kernel ping-pong / streaming microbenchmark over
 * loopback TCP/UDP (127.0.0.1 only) and UNIX-domain stream/dgram sockets.
 *
 *   lbsim-harness --transport tcp|udp|unix_stream|unix_dgram|unix_seqpacket
 *                 --workload pingpong|stream|split --size BYTES --count N
 *                 --warmup N --cpu-a A --cpu-b B [--max-seconds S]
 *                 [--busy-cpu C]... [--policy other|fifo]
 *                 [--rcvbuf N] [--sndbuf N] [--nagle] [--flows N]
 *                 [--senders 1|2] [--cpu-c C] [--busy-poll US]
 *                 [--zerocopy] [--batch N] [--epoll]
 *   lbsim-harness --micro-epoll N
 *   lbsim-harness --micro-unix-lookup N
 *   lbsim-harness --micro-hrtimer N
 *
 * The parent (client / sender) is pinned to CPU A, a forked child
 * (peer / receiver) to CPU B.  One JSON line is printed on stdout.
 * split: no child; one thread on CPU A writes SIZE bytes into one end and
 * reads them from the other, timing the write and the read calls apart
 * (the sending and the receiving side's cost, with no scheduling between).
 *
 * --rcvbuf/--sndbuf set SO_RCVBUF/SO_SNDBUF on every socket of the run (before
 * listen/connect, so TCP's window scale sees them); the values the kernel
 * kept (getsockopt: doubled, clamped to SOCK_MIN_RCVBUF/SOCK_MIN_SNDBUF, see
 * net/core/sock.c sk_setsockopt) are reported.  --nagle leaves TCP_NODELAY
 * off (the default sets it on both ends).  --flows N runs N independent
 * client/peer pairs at once (each pinned like the one pair: A and B); the
 * result aggregates them (round trips merged before the percentiles, bytes
 * summed over the union of their intervals).  --senders 2 adds a second
 * sending process (own socket, on CPU C, default A) into the same datagram
 * receiver (udp/unix_dgram streams only).  Every result reports the voluntary
 * context switches (getrusage ru_nvcsw) per message of each side.
 * --busy-poll US sets SO_BUSY_POLL (sk_ll_usec, net/core/sock.c sk_setsockopt;
 * no capability needed on 6.x) on every socket; the values read back are
 * reported (busy_poll_client/_server; without it: net.core.busy_read's, which
 * sock_init_data copies; -1 if the kernel has no CONFIG_NET_RX_BUSY_POLL).
 * On lo it changes nothing: docs/notes/noop-switches.md.
 * --zerocopy (tcp/udp, pingpong/stream) sets SO_ZEROCOPY on every socket and sends
 * every message with MSG_ZEROCOPY (net/ipv4/tcp.c tcp_sendmsg_locked, net/ipv4/ip_output.c
 * __ip_append_data); after each send call one recvmsg(MSG_ERRQUEUE | MSG_DONTWAIT) reaps
 * a completion if one is queued, and each sender drains the rest (at most 1 s) before it
 * stops.  The completions are reported (zc_sends, zc_completed, zc_copied: on lo the
 * receive path copies the pages, net/core/dev.c skb_orphan_frags_rx, so every completion
 * carries SO_EE_CODE_ZEROCOPY_COPIED): docs/notes/zerocopy-rfs.md.
 * unix_seqpacket: a SOCK_SEQPACKET pair made as unix_stream's (bind, listen,
 * connect, accept: unix_stream_connect), then driven as datagrams (one record
 * per send/recv, the unix_dgram size limit): docs/notes/seqpacket.md.
 * --batch N (streams only, 1..64): udp/unix_dgram send N messages per sendmmsg
 * and receive up to N per recvmmsg(MSG_WAITFORONE) (net/socket.c __sys_sendmmsg,
 * do_recvmmsg); tcp/unix_stream write N messages per batch with MSG_MORE on
 * the first N-1 (net/ipv4/tcp.c tcp_push; unix_stream_sendmsg ignores it) and
 * read as without it: docs/notes/batch.md.
 * --epoll makes every receive wait in epoll_wait (one fd, level-triggered,
 * maxevents 1) until the socket is readable, then recv as without it (the
 * same byte accounting: a stream read still loops until the message is in);
 * fs/eventpoll.c ep_poll, woken through ep_poll_callback: docs/notes/epoll.md.
 * --micro-epoll N times epoll_wait on an always-readable socket and the
 * ep_poll_callback a write adds (see micro_epoll), beside the null syscall.
 * --micro-unix-lookup N times what a unix_dgram send to a path costs more than
 * one on a connected socket (see micro_unix_lookup).
 * --micro-hrtimer N times what an hrtimer costs a busy CPU: programming the
 * clock event and an expiry (see micro_hrtimer).
 *
 * Exit codes: 0 ok, 1 runtime failure, 2 bad arguments / size not
 * carriable by the transport, 3 SCHED_FIFO could not be set (--micro-hrtimer:
 * no perf events here).
 * On failure stdout carries {"error": "..."}.
 *
 * Build: cc -std=c11 -O2 -Wall -o lbsim-harness harness.c   (Linux, glibc)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/perf_event.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_BUSY 16
#define MAX_SIZE (64L * 1024 * 1024)
#define MAX_COUNT 10000000L
#define UDP_MAX_PAYLOAD 65507L
#define UNIX_DGRAM_OVERHEAD 32L       /* unix_dgram_sendmsg: len > sk_sndbuf - 32 */
#define DGRAM_IDLE_NS 200000000LL     /* receiver gives up 200 ms after sender done */
#define DGRAM_POLL_US 50000           /* SO_RCVTIMEO of the datagram stream receiver */

enum { T_TCP, T_UDP, T_USTREAM, T_UDGRAM, T_USEQ };
enum { W_PINGPONG, W_STREAM, W_SPLIT };
static const char *tnames[] = {"tcp", "udp", "unix_stream", "unix_dgram", "unix_seqpacket"};
#define NTRANSPORTS ((int)(sizeof tnames / sizeof *tnames))
static const char *wnames[] = {"pingpong", "stream", "split"};
#ifndef SO_BUSY_POLL
#define SO_BUSY_POLL 46               /* include/uapi/asm-generic/socket.h */
#endif
#ifndef SO_ZEROCOPY
#define SO_ZEROCOPY 60                /* include/uapi/asm-generic/socket.h */
#endif
#ifndef MSG_ZEROCOPY
#define MSG_ZEROCOPY 0x4000000        /* include/linux/socket.h */
#endif
#ifndef SO_EE_ORIGIN_ZEROCOPY
#define SO_EE_ORIGIN_ZEROCOPY 5       /* include/uapi/linux/errqueue.h */
#endif
#ifndef SO_EE_CODE_ZEROCOPY_COPIED
#define SO_EE_CODE_ZEROCOPY_COPIED 1
#endif
#define ZC_DRAIN_NS 1000000000LL      /* --zerocopy: a sender waits at most 1 s for its completions */
#define MAX_BATCH 64                  /* --batch: messages per sendmmsg/recvmmsg or MSG_MORE run */
#define SPLIT_MAX_SIZE 65536L         /* split: a write must fit the default buffers (no reader meanwhile) */

/* child -> parent messages (fixed size, < PIPE_BUF so writes are atomic) */
enum { M_READY = 1, M_WARM = 2, M_RESULT = 3, M_ERROR = 4 };
struct cmsg {
    int32_t kind;
    int32_t code;   /* exit code suggested for M_ERROR */
    int64_t v[6];
    char err[224];
};

struct opts {
    int transport, workload;
    long size, count, warmup;
    int cpu_a, cpu_b;
    double max_seconds;
    int busy[MAX_BUSY];
    int nbusy;
    int fifo;
    long rcvbuf, sndbuf;   /* 0: kernel default */
    int nagle;             /* 1: leave TCP_NODELAY off */
    long busy_poll;        /* SO_BUSY_POLL in us; -1: not set (net.core.busy_read's value) */
    int epoll;             /* 1: receivers wait in epoll_wait before each recv (--epoll) */
    int flows, senders, cpu_c;
    int zerocopy;          /* 1: SO_ZEROCOPY, MSG_ZEROCOPY on every send */
    int batch;             /* --batch N: messages per batch call (streams); 1: one per call */
};

/* getsockopt values after setup: client/server SO_RCVBUF, SO_SNDBUF */
static int g_bufs[4] = {-1, -1, -1, -1};
/* getsockopt SO_BUSY_POLL after setup: client, server (-1: not readable) */
static int g_busy_poll[2] = {-1, -1};
/* --epoll: set once from the options; this process's epoll instance and the fd it watches */
static int g_epoll = 0;
static int g_ep = -1, g_ep_fd = -1;
static volatile pid_t g_sender2 = -1;
#define MAX_FLOWS 64
static volatile pid_t g_flowpid[MAX_FLOWS];
static volatile int g_nflow = 0;

/* global state needed for cleanup (also from signal handlers) */
static volatile pid_t g_child = -1;
static volatile pid_t g_spin[MAX_BUSY];
static volatile int g_nspin = 0;
static char g_path_s[sizeof(((struct sockaddr_un *)0)->sun_path)];
static char g_dir[sizeof g_path_s - 2];  /* room for "/s" and "/c" inside sun_path */
static char g_path_c[sizeof(((struct sockaddr_un *)0)->sun_path)];
static int g_is_child = 0;
static int g_res_wfd = -1;      /* child: write end of result pipe */
/* --zerocopy: the send flag, and this process's zerocopy sends and completions */
static int g_zc_flag = 0;
static int64_t g_zc_sends = 0, g_zc_done = 0, g_zc_copied = 0;

static unsigned ceil_secs(double s)
{
    unsigned u = (unsigned)s;
    return (double)u < s ? u + 1 : u;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---------------------------------------------------------------- cleanup */

static void kill_wait(pid_t pid)
{
    if (pid > 0) {
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
}

/* async-signal-safe */
static void cleanup(void)
{
    pid_t c = g_child;
    g_child = -1;
    kill_wait(c);
    c = g_sender2;
    g_sender2 = -1;
    kill_wait(c);
    int nf = g_nflow;
    g_nflow = 0;
    for (int i = 0; i < nf; i++)
        kill_wait(g_flowpid[i]);
    int n = g_nspin;
    g_nspin = 0;
    for (int i = 0; i < n; i++)
        kill_wait(g_spin[i]);
    if (g_path_s[0])
        unlink(g_path_s);
    if (g_path_c[0])
        unlink(g_path_c);
    g_path_s[0] = g_path_c[0] = 0;
    if (g_dir[0])
        rmdir(g_dir);
    g_dir[0] = 0;
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void child_fail(int code, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
static void fail(int code, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));

/* parent: clean up, print JSON error, exit */
static void fail(int code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (g_is_child)
        child_fail(code, "%s", msg);
    cleanup();
    fputs("{\"error\": ", stdout);
    json_str(stdout, msg);
    fputs("}\n", stdout);
    fflush(stdout);
    exit(code);
}

/* child: report error through the result pipe, exit */
static void child_fail(int code, const char *fmt, ...)
{
    struct cmsg m;
    memset(&m, 0, sizeof m);
    m.kind = M_ERROR;
    m.code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m.err, sizeof m.err, fmt, ap);
    va_end(ap);
    if (g_res_wfd >= 0) {
        ssize_t r = write(g_res_wfd, &m, sizeof m);
        (void)r;
    }
    _exit(code);
}

static void on_signal(int sig)
{
    static const char alrm[] = "{\"error\": \"watchdog: run exceeded max-seconds budget\"}\n";
    static const char term[] = "{\"error\": \"terminated by signal\"}\n";
    cleanup();
    if (sig == SIGALRM) {
        ssize_t r = write(1, alrm, sizeof alrm - 1);
        (void)r;
    } else {
        ssize_t r = write(1, term, sizeof term - 1);
        (void)r;
    }
    _exit(1);
}

static void install_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static void reset_handlers_in_child(void)
{
    signal(SIGALRM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
}

/* make the forked child die with the parent */
static void die_with_parent(pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(1);
}

/* ---------------------------------------------------------------- helpers */

static int pin_cpu(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set);
}

static int set_fifo(void)
{
    struct sched_param sp;
    memset(&sp, 0, sizeof sp);
    sp.sched_priority = 1;
    return sched_setscheduler(0, SCHED_FIFO, &sp);
}

static long parse_long(const char *opt, const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        fail(2, "invalid value '%s' for --%s (expected integer in [%ld, %ld])", s, opt, lo, hi);
    return v;
}

static int write_all_fd(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t r = write(fd, c, n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        c += r;
        n -= (size_t)r;
    }
    return 0;
}

/* a result: six values (a stream side's CPU time, ns, in the sixth) */
static void child_send6(int kind, int64_t a, int64_t b, int64_t c, int64_t d, int64_t e, int64_t f)
{
    struct cmsg m;
    memset(&m, 0, sizeof m);
    m.kind = kind;
    m.v[0] = a;
    m.v[1] = b;
    m.v[2] = c;
    m.v[3] = d;
    m.v[4] = e;
    m.v[5] = f;
    if (write_all_fd(g_res_wfd, &m, sizeof m) < 0)
        _exit(1);
}

static int64_t nvcsw(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) < 0)
        return 0;
    return (int64_t)ru.ru_nvcsw;
}

/* this process's CPU time (ns): sum_exec_runtime, which counts the softirqs run in its context
 * (no CONFIG_IRQ_TIME_ACCOUNTING on the guests measured), so a stream side's busy share holds
 * the protocol work loopback does on its CPU */
static int64_t cpu_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) < 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void child_send(int kind, int64_t a, int64_t b, int64_t c, int64_t d)
{
    struct cmsg m;
    memset(&m, 0, sizeof m);
    m.kind = kind;
    m.v[0] = a;
    m.v[1] = b;
    m.v[2] = c;
    m.v[3] = d;
    if (write_all_fd(g_res_wfd, &m, sizeof m) < 0)
        _exit(1);
}

/*
 * Parent: wait for one message from the child until absolute deadline.
 * Returns 0 on message, -1 on timeout, -2 on EOF (child gone).
 */
static int read_cmsg(int fd, struct cmsg *m, int64_t deadline)
{
    size_t got = 0;
    while (got < sizeof *m) {
        int64_t left = deadline - now_ns();
        if (left <= 0)
            return -1;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int ms = (int)(left / 1000000 + 1);
        int pr = poll(&p, 1, ms);
        if (pr < 0) {
            if (errno == EINTR)
                continue;
            return -2;
        }
        if (pr == 0)
            continue;
        ssize_t r = read(fd, (char *)m + got, sizeof *m - got);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -2;
        }
        if (r == 0)
            return -2;
        got += (size_t)r;
    }
    return 0;
}

/* parent: wait for a specific message kind; child errors are fatal */
static void expect_cmsg(int fd, int kind, int64_t deadline, struct cmsg *out, const char *what)
{
    struct cmsg m;
    int r = read_cmsg(fd, &m, deadline);
    if (r == -1)
        fail(1, "timeout waiting for peer (%s)", what);
    if (r == -2)
        fail(1, "peer exited unexpectedly (%s)", what);
    if (m.kind == M_ERROR) {
        m.err[sizeof m.err - 1] = 0;
        fail(m.code ? m.code : 1, "peer: %s", m.err);
    }
    if (m.kind != kind)
        fail(1, "protocol error: unexpected message %d from peer (%s)", m.kind, what);
    if (out)
        *out = m;
}

/* --zerocopy: one recvmsg(MSG_ERRQUEUE | MSG_DONTWAIT) on fd; counts the completed sends
 * of the notification it finds (a range of send ids, net/core/skbuff.c
 * __msg_zerocopy_callback) and the copied ones.  1: got one, 0: none queued. */
static int zc_reap_one(int fd)
{
    char control[256];
    struct msghdr m;
    memset(&m, 0, sizeof m);
    m.msg_control = control;
    m.msg_controllen = sizeof control;
    ssize_t r;
    do
        r = recvmsg(fd, &m, MSG_ERRQUEUE | MSG_DONTWAIT);
    while (r < 0 && errno == EINTR);
    if (r < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        if (g_is_child)
            child_fail(1, "recvmsg MSG_ERRQUEUE: %s", strerror(errno));
        fail(1, "recvmsg MSG_ERRQUEUE: %s", strerror(errno));
    }
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm)) {
        if (cm->cmsg_level != SOL_IP || cm->cmsg_type != IP_RECVERR)
            continue;
        struct sock_extended_err ee;
        memcpy(&ee, CMSG_DATA(cm), sizeof ee);
        if (ee.ee_errno != 0 || ee.ee_origin != SO_EE_ORIGIN_ZEROCOPY)
            continue;
        int64_t k = (int64_t)(uint32_t)(ee.ee_data - ee.ee_info) + 1;   /* ids lo..hi */
        g_zc_done += k;
        if (ee.ee_code & SO_EE_CODE_ZEROCOPY_COPIED)
            g_zc_copied += k;
    }
    return 1;
}

/* after a send call that sent something: with --zerocopy, count it and reap once */
static void zc_sent(int fd)
{
    if (!g_zc_flag)
        return;
    g_zc_sends++;
    zc_reap_one(fd);
}

/* --zerocopy: wait (poll POLLERR, at most ZC_DRAIN_NS) until every send is completed */
static void zc_drain(int fd)
{
    if (!g_zc_flag)
        return;
    int64_t end = now_ns() + ZC_DRAIN_NS;
    for (int i = 0; i < 10000 && g_zc_done < g_zc_sends && now_ns() < end; i++) {
        if (zc_reap_one(fd))
            continue;
        struct pollfd p = {.fd = fd, .events = 0};
        if (poll(&p, 1, 10) < 0 && errno != EINTR)
            break;
    }
}

/* recv, after waiting in epoll_wait with --epoll (one fd, EPOLLIN level-triggered,
 * maxevents 1, fs/eventpoll.c); timeout_ms -1 waits as a blocking recv does, else a
 * timeout gives -1 with EAGAIN as SO_RCVTIMEO would.  The epoll instance is made on first
 * use in each process (after fork: one per receiving side), for the fd it then watches. */
static ssize_t wait_recv(int fd, void *buf, size_t n, int timeout_ms)
{
    if (g_epoll) {
        if (g_ep_fd != fd) {
            if (g_ep >= 0)
                close(g_ep);
            struct epoll_event add = {.events = EPOLLIN, .data.fd = fd};
            g_ep = epoll_create1(EPOLL_CLOEXEC);
            if (g_ep < 0 || epoll_ctl(g_ep, EPOLL_CTL_ADD, fd, &add) < 0)
                return -1;
            g_ep_fd = fd;
        }
        struct epoll_event ev;
        int k = epoll_wait(g_ep, &ev, 1, timeout_ms);
        if (k < 0)
            return -1;   /* EINTR: the callers retry as for recv */
        if (k == 0) {
            errno = EAGAIN;
            return -1;
        }
    }
    return recv(fd, buf, n, 0);
}

/* full send on a stream socket; returns 0 or -1 */
static int send_full_flags(int fd, const char *buf, size_t n, int flags)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = send(fd, buf + done, n - done, MSG_NOSIGNAL | g_zc_flag | flags);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        done += (size_t)r;
        zc_sent(fd);
    }
    return 0;
}

static int send_full(int fd, const char *buf, size_t n)
{
    return send_full_flags(fd, buf, n, 0);
}

/* full recv on a stream socket: 1 ok, 0 clean EOF, -2 EOF mid-message, -1 error */
static int recv_full(int fd, char *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = wait_recv(fd, buf + got, n - got, -1);
        if (r > 0) {
            got += (size_t)r;
            continue;
        }
        if (r == 0)
            return got == 0 ? 0 : -2;
        if (errno == EINTR)
            continue;
        return -1;
    }
    return 1;
}

/* ---------------------------------------------------------------- counters */

/* Udp RcvbufErrors from /proc/net/snmp, -1 if unavailable */
/* one datagram of n bytes each way, retried on EINTR; any failure ends the run */
static void send_dgram(int fd, const char *buf, size_t n)
{
    ssize_t w;
    do
        w = send(fd, buf, n, MSG_NOSIGNAL | g_zc_flag);
    while (w < 0 && errno == EINTR);
    if (w < 0)
        fail(1, "send: %s", strerror(errno));
    zc_sent(fd);
}

static void recv_dgram(int fd, char *buf, size_t n)
{
    ssize_t r;
    do
        r = wait_recv(fd, buf, n, -1);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        fail(1, "recv: %s", strerror(errno));
    if ((size_t)r != n)
        fail(1, "recv: got %zd bytes, expected %zu", r, n);
}

static long long read_udp_rcvbuf_errors(void)
{
    FILE *f = fopen("/proc/net/snmp", "r");
    if (!f)
        return -1;
    char hdr[2048], val[2048];
    long long res = -1;
    while (fgets(hdr, sizeof hdr, f)) {
        if (strncmp(hdr, "Udp:", 4) != 0)
            continue;
        if (!fgets(val, sizeof val, f) || strncmp(val, "Udp:", 4) != 0)
            break;
        char *sh, *sv;
        char *h = strtok_r(hdr, " \n", &sh);
        char *v = strtok_r(val, " \n", &sv);
        while (h && v) {
            if (strcmp(h, "RcvbufErrors") == 0) {
                res = strtoll(v, NULL, 10);
                break;
            }
            h = strtok_r(NULL, " \n", &sh);
            v = strtok_r(NULL, " \n", &sv);
        }
        break;
    }
    fclose(f);
    return res;
}

/* sum of the 2nd (hex, "dropped") column of /proc/net/softnet_stat, -1 if unavailable */
static long long read_softnet_dropped(void)
{
    FILE *f = fopen("/proc/net/softnet_stat", "r");
    if (!f)
        return -1;
    char line[1024];
    long long sum = 0;
    int any = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long long processed, dropped;
        if (sscanf(line, "%llx %llx", &processed, &dropped) == 2) {
            sum += (long long)dropped;
            any = 1;
        }
    }
    fclose(f);
    return any ? sum : -1;
}

static void print_delta(const char *key, long long before, long long after)
{
    if (before < 0 || after < 0)
        printf(", \"%s\": null", key);
    else
        printf(", \"%s\": %lld", key, after - before);
}

/* ---------------------------------------------------------------- sockets */

struct sockets {
    int cfd, sfd;                /* client (parent) / server (child) */
    int c2fd;                    /* --senders 2: the second sender's socket, else -1 */
    struct sockaddr_un caddr;    /* unix_dgram: client's bound address */
    socklen_t caddr_len;
};

static void fill_un(struct sockaddr_un *a, socklen_t *len, const char *path)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    size_t n = strlen(path);
    if (n >= sizeof a->sun_path)
        fail(1, "unix socket path too long: %s", path);
    memcpy(a->sun_path, path, n + 1);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
}

static void make_tmpdir(void)
{
    const char *cands[2] = {getenv("TMPDIR"), "/tmp"};
    for (int i = 0; i < 2; i++) {
        const char *base = cands[i];
        if (!base || !*base)
            continue;
        /* leave room for "/lbsim-XXXXXX/c" inside sun_path */
        if (strlen(base) + 20 >= sizeof g_path_s)
            continue;
        snprintf(g_dir, sizeof g_dir, "%s/lbsim-XXXXXX", base);
        if (mkdtemp(g_dir))
            return;
        g_dir[0] = 0;
    }
    fail(1, "cannot create temporary directory for UNIX socket paths: %s", strerror(errno));
}

/* --busy-poll on one socket */
static int set_busy_poll(const struct opts *o, int fd)
{
    int v = (int)o->busy_poll;
    /* refused (no CONFIG_NET_RX_BUSY_POLL: ENOPROTOOPT): the setting cannot be run here */
    if (o->busy_poll >= 0 && setsockopt(fd, SOL_SOCKET, SO_BUSY_POLL, &v, sizeof v) < 0)
        fail(2, "SO_BUSY_POLL %ld: %s", o->busy_poll, strerror(errno));
    int one = 1;   /* --zerocopy: SO_ZEROCOPY before listen, so an accepted socket inherits it */
    if (o->zerocopy && fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof one) < 0)
        fail(2, "SO_ZEROCOPY: %s", strerror(errno));
    return fd;
}

/* --rcvbuf/--sndbuf/--busy-poll on one socket (before listen/connect) */
static int set_bufs(const struct opts *o, int fd)
{
    int v;
    if (o->rcvbuf > 0) {
        v = (int)o->rcvbuf;
        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v) < 0)
            fail(1, "SO_RCVBUF %ld: %s", o->rcvbuf, strerror(errno));
    }
    if (o->sndbuf > 0) {
        v = (int)o->sndbuf;
        if (setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v) < 0)
            fail(1, "SO_SNDBUF %ld: %s", o->sndbuf, strerror(errno));
    }
    return set_busy_poll(o, fd);
}

/* the values the kernel kept, for the report */
static void read_bufs(const struct sockets *s)
{
    int fds[2] = {s->cfd, s->sfd};
    for (int i = 0; i < 2; i++) {
        socklen_t l = sizeof(int);
        if (getsockopt(fds[i], SOL_SOCKET, SO_RCVBUF, &g_bufs[i], &l) < 0)
            g_bufs[i] = -1;
        l = sizeof(int);
        if (getsockopt(fds[i], SOL_SOCKET, SO_SNDBUF, &g_bufs[2 + i], &l) < 0)
            g_bufs[2 + i] = -1;
        l = sizeof(int);
        if (getsockopt(fds[i], SOL_SOCKET, SO_BUSY_POLL, &g_busy_poll[i], &l) < 0)
            g_busy_poll[i] = -1;
    }
}

static void setup_sockets_(const struct opts *o, struct sockets *s);
static void setup_sockets(const struct opts *o, struct sockets *s)
{
    setup_sockets_(o, s);
    read_bufs(s);
}

static void setup_sockets_(const struct opts *o, struct sockets *s)
{
    memset(s, 0, sizeof *s);
    s->cfd = s->sfd = s->c2fd = -1;
    int one = 1;

    if (o->transport == T_TCP || o->transport == T_UDP) {
        struct sockaddr_in a;
        socklen_t al = sizeof a;
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = 0;
        int type = o->transport == T_TCP ? SOCK_STREAM : SOCK_DGRAM;

        int l = socket(AF_INET, type | SOCK_CLOEXEC, 0);
        if (l < 0)
            fail(1, "socket: %s", strerror(errno));
        set_bufs(o, l);
        if (bind(l, (struct sockaddr *)&a, sizeof a) < 0)
            fail(1, "bind 127.0.0.1: %s", strerror(errno));
        if (getsockname(l, (struct sockaddr *)&a, &al) < 0)
            fail(1, "getsockname: %s", strerror(errno));

        int c = socket(AF_INET, type | SOCK_CLOEXEC, 0);
        if (c < 0)
            fail(1, "socket: %s", strerror(errno));
        set_bufs(o, c);

        if (o->transport == T_TCP) {
            if (listen(l, 1) < 0)
                fail(1, "listen: %s", strerror(errno));
            if (connect(c, (struct sockaddr *)&a, sizeof a) < 0)
                fail(1, "connect 127.0.0.1:%d: %s", ntohs(a.sin_port), strerror(errno));
            int sfd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
            if (sfd < 0)
                fail(1, "accept: %s", strerror(errno));
            close(l);
            if (!o->nagle && (setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0 ||
                              setsockopt(sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0))
                fail(1, "TCP_NODELAY: %s", strerror(errno));
            s->cfd = c;
            s->sfd = sfd;
        } else {
            struct sockaddr_in ca;
            socklen_t cal = sizeof ca;
            memset(&ca, 0, sizeof ca);
            ca.sin_family = AF_INET;
            ca.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            if (bind(c, (struct sockaddr *)&ca, sizeof ca) < 0)
                fail(1, "bind 127.0.0.1: %s", strerror(errno));
            if (getsockname(c, (struct sockaddr *)&ca, &cal) < 0)
                fail(1, "getsockname: %s", strerror(errno));
            /* two senders: the receiver stays unconnected to take both */
            if (connect(c, (struct sockaddr *)&a, sizeof a) < 0 ||
                (o->senders < 2 && connect(l, (struct sockaddr *)&ca, sizeof ca) < 0))
                fail(1, "udp connect: %s", strerror(errno));
            if (o->senders > 1) {
                int c2 = set_bufs(o, socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
                if (c2 < 0 || connect(c2, (struct sockaddr *)&a, sizeof a) < 0)
                    fail(1, "udp second sender: %s", strerror(errno));
                s->c2fd = c2;
            }
            s->cfd = c;
            s->sfd = l;
        }
        return;
    }

    /* UNIX domain */
    make_tmpdir();
    snprintf(g_path_s, sizeof g_path_s, "%s/s", g_dir);
    struct sockaddr_un sa;
    socklen_t sal;
    fill_un(&sa, &sal, g_path_s);

    if (o->transport == T_USTREAM || o->transport == T_USEQ) {
        /* SOCK_SEQPACKET connects and accepts as a stream (unix_seqpacket_ops: unix_stream_connect,
         * unix_accept): each end is the other's peer, so no max_dgram_qlen wait (af_unix.c) */
        int type = o->transport == T_USEQ ? SOCK_SEQPACKET : SOCK_STREAM;
        int l = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
        if (l < 0)
            fail(1, "socket: %s", strerror(errno));
        set_bufs(o, l);
        if (bind(l, (struct sockaddr *)&sa, sal) < 0)
            fail(1, "bind %s: %s", g_path_s, strerror(errno));
        if (listen(l, 1) < 0)
            fail(1, "listen: %s", strerror(errno));
        int c = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
        if (c < 0)
            fail(1, "socket: %s", strerror(errno));
        set_bufs(o, c);
        if (connect(c, (struct sockaddr *)&sa, sal) < 0)
            fail(1, "connect %s: %s", g_path_s, strerror(errno));
        int sfd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        if (sfd < 0)
            fail(1, "accept: %s", strerror(errno));
        /* unix_stream_connect's new socket starts from sock_init_data, not the listener
         * (a TCP child is cloned from it: sk_clone_lock) */
        set_busy_poll(o, sfd);
        close(l);
        unlink(g_path_s);   /* connection established; path no longer needed */
        g_path_s[0] = 0;
        s->cfd = c;
        s->sfd = sfd;
        return;
    }

    /* unix_dgram: bound server; bound client connect()ed to the server;
     * the server does NOT connect back, so max_dgram_qlen applies to
     * client->server traffic.  Replies use sendto(client path). */
    snprintf(g_path_c, sizeof g_path_c, "%s/c", g_dir);
    int srv = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int c = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (srv < 0 || c < 0)
        fail(1, "socket: %s", strerror(errno));
    set_bufs(o, srv);
    set_bufs(o, c);
    if (bind(srv, (struct sockaddr *)&sa, sal) < 0)
        fail(1, "bind %s: %s", g_path_s, strerror(errno));
    fill_un(&s->caddr, &s->caddr_len, g_path_c);
    if (bind(c, (struct sockaddr *)&s->caddr, s->caddr_len) < 0)
        fail(1, "bind %s: %s", g_path_c, strerror(errno));
    if (connect(c, (struct sockaddr *)&sa, sal) < 0)
        fail(1, "connect %s: %s", g_path_s, strerror(errno));
    if (o->senders > 1) {   /* unbound: it only sends */
        int c2 = set_bufs(o, socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
        if (c2 < 0 || connect(c2, (struct sockaddr *)&sa, sal) < 0)
            fail(1, "unix_dgram second sender: %s", strerror(errno));
        s->c2fd = c2;
    }
    unlink(g_path_s);   /* client holds a reference to the server socket */
    g_path_s[0] = 0;
    s->cfd = c;
    s->sfd = srv;
}

/* datagram size limit check (exit 2) */
static void check_dgram_size(const struct opts *o, const struct sockets *s)
{
    if (o->transport == T_UDP && o->size > UDP_MAX_PAYLOAD)
        fail(2, "size %ld exceeds the UDP/IPv4 maximum payload of %ld bytes", o->size, UDP_MAX_PAYLOAD);
    if (o->transport == T_UDGRAM || o->transport == T_USEQ) {   /* seqpacket: unix_dgram_sendmsg */
        int fds[2] = {s->cfd, s->sfd};
        for (int i = 0; i < 2; i++) {
            int sb = 0;
            socklen_t l = sizeof sb;
            if (getsockopt(fds[i], SOL_SOCKET, SO_SNDBUF, &sb, &l) < 0)
                fail(1, "getsockopt SO_SNDBUF: %s", strerror(errno));
            if (o->size > (long)sb - UNIX_DGRAM_OVERHEAD)
                fail(2, "size %ld exceeds the UNIX datagram limit of %ld bytes (SO_SNDBUF %d - %ld)",
                     o->size, (long)sb - UNIX_DGRAM_OVERHEAD, sb, UNIX_DGRAM_OVERHEAD);
        }
    }
}

/* ---------------------------------------------------------------- spinner */

static void start_spinners(const struct opts *o, int64_t hard_end_ns)
{
    pid_t parent = getpid();
    for (int i = 0; i < o->nbusy; i++) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
            fail(1, "pipe: %s", strerror(errno));
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0)
            fail(1, "fork: %s", strerror(errno));
        if (pid == 0) {
            g_is_child = 1;
            close(p[0]);
            reset_handlers_in_child();
            die_with_parent(parent);
            prctl(PR_SET_NAME, "lbsim-spin");
            struct sched_param sp;
            memset(&sp, 0, sizeof sp);
            char st = 'o';
            if (sched_setscheduler(0, SCHED_OTHER, &sp) < 0 ||
                setpriority(PRIO_PROCESS, 0, 19) < 0 || pin_cpu(o->busy[i]) < 0)
                st = 'e';
            if (write(p[1], &st, 1) != 1 || st != 'o')
                _exit(1);
            close(p[1]);
            /* spin until killed (bounded by hard_end_ns as a safety net) */
            volatile uint64_t x = 0;
            for (;;) {
                for (int k = 0; k < 1000000; k++)
                    x++;
                if (now_ns() > hard_end_ns)
                    _exit(0);
            }
        }
        g_spin[g_nspin++] = pid;
        close(p[1]);
        char st = 0;
        ssize_t r;
        do {
            r = read(p[0], &st, 1);
        } while (r < 0 && errno == EINTR);
        close(p[0]);
        if (r != 1 || st != 'o')
            fail(2, "cannot start busy spinner on CPU %d (invalid CPU?)", o->busy[i]);
    }
    if (o->nbusy) {
        struct timespec ts = {0, 20 * 1000000L};   /* let spinners get going */
        nanosleep(&ts, NULL);
    }
}

/* ---------------------------------------------------------------- child */

struct childctx {
    const struct opts *o;
    struct sockets *s;
    int ctl_rfd;        /* parent -> child control bytes ('w', 'd'), non-blocking */
    char *buf;          /* --batch N datagram receiver: N buffers of --size bytes */
    struct mmsghdr *mv; /* --batch N datagram receiver: recvmmsg's vector, else NULL */
};

static void child_pingpong(struct childctx *c)
{
    const struct opts *o = c->o;
    int fd = c->s->sfd;
    size_t n = (size_t)o->size;
    int64_t rounds = 0, nv0 = nvcsw();
    if (o->transport == T_TCP || o->transport == T_USTREAM) {
        for (;;) {
            int r = recv_full(fd, c->buf, n);
            if (r == 0)
                break;
            if (r == -2)
                child_fail(1, "peer recv: EOF in the middle of a message");
            if (r < 0)
                child_fail(1, "peer recv: %s", strerror(errno));
            if (send_full(fd, c->buf, n) < 0)
                child_fail(1, "peer send: %s", strerror(errno));
            rounds++;
        }
    } else {
        for (;;) {
            ssize_t r = wait_recv(fd, c->buf, n, -1);
            if (r < 0) {
                if (errno == EINTR)
                    continue;
                child_fail(1, "peer recv: %s", strerror(errno));
            }
            if (r == 0)
                break;   /* zero-length datagram = end marker */
            if ((size_t)r != n)
                child_fail(1, "peer recv: got %zd bytes, expected %zu", r, n);
            ssize_t w;
            do {
                if (o->transport == T_UDP || o->transport == T_USEQ)   /* connected back */
                    w = send(fd, c->buf, n, MSG_NOSIGNAL | g_zc_flag);
                else
                    w = sendto(fd, c->buf, n, MSG_NOSIGNAL, (struct sockaddr *)&c->s->caddr,
                               c->s->caddr_len);
            } while (w < 0 && errno == EINTR);
            if (w < 0)
                child_fail(1, "peer send: %s", strerror(errno));
            zc_sent(fd);
            rounds++;
        }
    }
    zc_drain(fd);
    child_send6(M_RESULT, rounds, nvcsw() - nv0, g_zc_sends, g_zc_done, g_zc_copied, 0);
}

static void child_stream(struct childctx *c)
{
    const struct opts *o = c->o;
    int fd = c->s->sfd;
    size_t n = (size_t)o->size;
    int64_t t_last = 0, nv0 = nvcsw(), cpu0 = cpu_ns();   /* cpu0: again once warmed up */

    if (o->transport == T_TCP || o->transport == T_USTREAM) {
        int64_t warm_bytes = (int64_t)o->warmup * o->size;
        int64_t total = warm_bytes + (int64_t)o->count * o->size;
        int64_t got = 0;
        int acked = (o->warmup == 0);
        while (got < total) {
            size_t want = n;
            if ((int64_t)want > total - got)
                want = (size_t)(total - got);
            ssize_t r = wait_recv(fd, c->buf, want, -1);
            if (r > 0) {
                got += r;
                if (got > warm_bytes)
                    t_last = now_ns();
                if (!acked && got >= warm_bytes) {
                    child_send(M_WARM, 0, 0, 0, 0);
                    acked = 1;
                    cpu0 = cpu_ns();
                }
                continue;
            }
            if (r == 0)
                break;   /* sender stopped early (max-seconds) */
            if (errno == EINTR)
                continue;
            child_fail(1, "receiver recv: %s", strerror(errno));
        }
        int64_t meas = got > warm_bytes ? got - warm_bytes : 0;
        child_send6(M_RESULT, meas / o->size, meas, t_last, 0, nvcsw() - nv0, cpu_ns() - cpu0);
        return;
    }

    /* datagrams: count 'W' (warmup) vs 'M' (measured) by the first byte */
    struct timeval tv = {0, DGRAM_POLL_US};
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0)
        child_fail(1, "SO_RCVTIMEO: %s", strerror(errno));
    int64_t warm = 0, meas = 0, bytes = 0, t_any = now_ns(), t_done = 0;
    int acked = (o->warmup == 0), warm_sent = 0, done = 0;
    int64_t hard_end = now_ns() + (int64_t)((o->max_seconds + 10.0) * 1e9);
    for (;;) {
        /* --batch: one recvmmsg takes up to N; MSG_WAITFORONE: block for the first only */
        ssize_t r = c->mv ? recvmmsg(fd, c->mv, (unsigned)o->batch, MSG_WAITFORONE, NULL)
                          : wait_recv(fd, c->buf, n, DGRAM_POLL_US / 1000);
        if (r >= 0) {
            int64_t t = now_ns();
            t_any = t;
            int k = c->mv ? (int)r : 1, stop = 0;
            for (int j = 0; j < k && !stop; j++) {
                size_t len = c->mv ? c->mv[j].msg_len : (size_t)r;
                const char *b = c->buf + (size_t)j * n;
                if (len != n)
                    child_fail(1, "receiver recv: got %zu bytes, expected %zu", len, n);
                if (b[0] == 'W') {
                    warm++;
                    if (!acked && warm >= o->warmup) {
                        child_send(M_WARM, warm, 0, 0, 0);
                        acked = 1;
                        cpu0 = cpu_ns();
                    }
                } else {
                    meas++;
                    bytes += (int64_t)len;
                    t_last = t;
                    if (meas >= o->count * o->senders)
                        stop = 1;
                }
            }
            if (stop)
                break;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            child_fail(1, "receiver recv: %s", strerror(errno));
        /* idle for DGRAM_POLL_US: look at control pipe */
        int64_t t = now_ns();
        char cb[16];
        ssize_t k;
        while ((k = read(c->ctl_rfd, cb, sizeof cb)) > 0) {
            for (ssize_t i = 0; i < k; i++) {
                if (cb[i] == 'w')
                    warm_sent = 1;
                else if (cb[i] == 'd' && !done) {
                    done = 1;
                    t_done = t;
                }
            }
        }
        if (k == 0 && !done) {   /* parent closed the pipe: treat as done */
            done = 1;
            t_done = t;
        }
        if (!acked && warm_sent) {   /* all warmup sent and queue idle: lost ones are lost */
            child_send(M_WARM, warm, 0, 0, 0);
            acked = 1;
            cpu0 = cpu_ns();
        }
        if (done && t - (t_any > t_done ? t_any : t_done) >= DGRAM_IDLE_NS)
            break;
        if (t > hard_end)
            break;
    }
    /* the idle tail after the last datagram (a few DGRAM_POLL_US wake-ups) adds microseconds */
    child_send6(M_RESULT, meas, bytes, t_last, warm, nvcsw() - nv0, cpu_ns() - cpu0);
}

static void run_child(const struct opts *o, struct sockets *s, int res_wfd, int ctl_rfd, pid_t parent)
{
    g_is_child = 1;
    g_res_wfd = res_wfd;
    reset_handlers_in_child();
    die_with_parent(parent);
    prctl(PR_SET_NAME, "lbsim-peer");
    alarm(ceil_secs(o->max_seconds) + 20);   /* default action: terminate */
    close(s->cfd);
    if (s->c2fd >= 0)
        close(s->c2fd);

    if (pin_cpu(o->cpu_b) < 0)
        child_fail(2, "cannot pin peer to CPU %d: %s", o->cpu_b, strerror(errno));
    if (o->fifo && set_fifo() < 0)
        child_fail(3, "cannot set SCHED_FIFO for peer: %s", strerror(errno));
    int fl = fcntl(ctl_rfd, F_GETFL);
    fcntl(ctl_rfd, F_SETFL, fl | O_NONBLOCK);

    struct childctx c = {.o = o, .s = s, .ctl_rfd = ctl_rfd};
    c.buf = malloc((size_t)o->size * (size_t)o->batch);
    if (!c.buf)
        child_fail(1, "out of memory");
    memset(c.buf, 'x', (size_t)o->size * (size_t)o->batch);
    struct mmsghdr mv[MAX_BATCH];
    struct iovec iov[MAX_BATCH];
    if (o->batch > 1 && (o->transport == T_UDP || o->transport == T_UDGRAM)) {
        memset(mv, 0, sizeof mv);
        for (int j = 0; j < o->batch; j++) {
            iov[j].iov_base = c.buf + (size_t)j * (size_t)o->size;
            iov[j].iov_len = (size_t)o->size;
            mv[j].msg_hdr.msg_iov = &iov[j];
            mv[j].msg_hdr.msg_iovlen = 1;
        }
        c.mv = mv;
    }

    child_send(M_READY, 0, 0, 0, 0);
    if (o->workload == W_PINGPONG)
        child_pingpong(&c);
    else
        child_stream(&c);
    _exit(0);
}

/* ---------------------------------------------------------------- parent */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* nearest-rank percentile, p in per-mille */
static int64_t pct(const int64_t *s, uint64_t n, uint64_t permille)
{
    uint64_t rank = (permille * n + 999) / 1000;
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return s[rank - 1];
}

static void print_common(const struct opts *o)
{
    printf("{\"transport\": \"%s\", \"workload\": \"%s\", \"size\": %ld", tnames[o->transport],
           wnames[o->workload], o->size);
}

static void print_tail(const struct opts *o)
{
    printf(", \"warmup\": %ld, \"cpu_a\": %d, \"cpu_b\": %d, \"policy\": \"%s\", \"busy_cpus\": [",
           o->warmup, o->cpu_a, o->cpu_b, o->fifo ? "fifo" : "other");
    for (int i = 0; i < o->nbusy; i++)
        printf("%s%d", i ? ", " : "", o->busy[i]);
    printf("]}\n");
}

/* wait for the child to exit (bounded), then reap/kill */
static void reap_child(int64_t deadline)
{
    pid_t c = g_child;
    if (c <= 0)
        return;
    for (;;) {
        pid_t r = waitpid(c, NULL, WNOHANG);
        if (r == c || (r < 0 && errno != EINTR))
            break;
        if (now_ns() > deadline) {
            kill_wait(c);
            break;
        }
        struct timespec ts = {0, 1000000L};
        nanosleep(&ts, NULL);
    }
    g_child = -1;
}

/* one flow's outcome; with --flows N, N of them live in a shared mapping */
struct flowres {
    int64_t nrec, rec_start, rec_end;               /* pingpong: recorded round trips */
    int64_t sent, send_errors, received, bytes;     /* stream */
    int64_t t0, t_last;                             /* stream: first measured write, last byte */
    int64_t snd_nvcsw, snd_msgs, rcv_nvcsw, rcv_msgs;
    int64_t snd_cpu_ns, rcv_cpu_ns;                 /* stream: each side's CPU time, measured phase */
    int64_t zc_sends, zc_done, zc_copied;           /* --zerocopy: sends, completed, copied */
    int64_t *samples;                               /* pingpong: o->count round-trip times */
};

static void parent_pingpong(const struct opts *o, struct sockets *s, int res_rfd, int ctl_wfd,
                            char *buf, struct flowres *fr)
{
    int fd = s->cfd;
    size_t n = (size_t)o->size;
    int stream = (o->transport == T_TCP || o->transport == T_USTREAM);
    int64_t *samples = fr->samples;

    int64_t start = now_ns();
    int64_t deadline = start + (int64_t)(o->max_seconds * 1e9);
    int64_t rec_start = 0, rec_end = 0, nv0 = 0;
    long total = o->warmup + o->count, nrec = 0;

    for (long i = 0; i < total; i++) {
        int64_t t0 = now_ns();
        if (t0 >= deadline)
            break;
        if (i == o->warmup) {
            rec_start = t0;
            nv0 = nvcsw();
        }
        if (stream) {
            if (send_full(fd, buf, n) < 0)
                fail(1, "send: %s", strerror(errno));
            int r = recv_full(fd, buf, n);
            if (r != 1)
                fail(1, "recv: %s", r == -1 ? strerror(errno) : "unexpected EOF from peer");
        } else {
            send_dgram(fd, buf, n);
            recv_dgram(fd, buf, n);
        }
        int64_t t1 = now_ns();
        if (i >= o->warmup) {
            samples[nrec++] = t1 - t0;
            rec_end = t1;
        }
    }
    fr->snd_nvcsw = nrec ? nvcsw() - nv0 : 0;
    zc_drain(fd);

    /* tell the peer we are done */
    if (stream) {
        shutdown(fd, SHUT_WR);
    } else {
        ssize_t w = send(fd, buf, 0, MSG_NOSIGNAL);
        (void)w;
    }
    if (write(ctl_wfd, "d", 1) < 0) {
        /* peer may already be gone; the result pipe tells */
    }
    /* peer result: its error, or its round trips and sleeps */
    struct cmsg m;
    int r = read_cmsg(res_rfd, &m, now_ns() + 2000000000LL);
    if (r == 0 && m.kind == M_ERROR) {
        m.err[sizeof m.err - 1] = 0;
        fail(m.code ? m.code : 1, "peer: %s", m.err);
    }
    if (r == 0 && m.kind == M_RESULT) {
        fr->rcv_msgs = m.v[0];
        fr->rcv_nvcsw = m.v[1];
        fr->zc_sends = g_zc_sends + m.v[2];
        fr->zc_done = g_zc_done + m.v[3];
        fr->zc_copied = g_zc_copied + m.v[4];
    }
    reap_child(now_ns() + 1000000000LL);

    if (nrec == 0)
        fail(1, "no round trip recorded within max-seconds=%g (warmup %ld)", o->max_seconds,
             o->warmup);
    fr->nrec = nrec;
    fr->rec_start = rec_start;
    fr->rec_end = rec_end;
    fr->snd_msgs = nrec;
}

/* --batch: k (<= MAX_BATCH) messages in one batch: datagrams one sendmmsg (repeated for
 * what it did not take), streams k writes with MSG_MORE on all but the last.  Returns the
 * messages sent; a datagram the kernel refused (ENOBUFS/EAGAIN) counts in *errs. */
static long send_batch(const struct opts *o, int fd, char *buf, long k, int64_t *errs)
{
    size_t n = (size_t)o->size;
    long done = 0;
    if (o->transport == T_TCP || o->transport == T_USTREAM) {
        for (long j = 0; j < k; j++)
            if (send_full_flags(fd, buf, n, j < k - 1 ? MSG_MORE : 0) < 0)
                fail(1, "send: %s", strerror(errno));
        return k;
    }
    struct mmsghdr mv[MAX_BATCH];
    struct iovec iov = {.iov_base = buf, .iov_len = n};
    memset(mv, 0, sizeof mv);
    for (long j = 0; j < k; j++) {
        mv[j].msg_hdr.msg_iov = &iov;
        mv[j].msg_hdr.msg_iovlen = 1;
    }
    long tries = 0;
    while (done < k && tries++ < 4L * MAX_BATCH) {   /* each try takes or refuses >= 1 */
        int r = sendmmsg(fd, mv + done, (unsigned)(k - done), MSG_NOSIGNAL);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno != ENOBUFS && errno != EAGAIN)
                fail(1, "sendmmsg: %s", strerror(errno));
            (*errs)++;
            k--;   /* the refused datagram is dropped, as a plain send's */
            continue;
        }
        done += r;
    }
    return done;
}

/* one datagram stream's send loop: count messages until deadline; sent/errors out */
static void send_loop(const struct opts *o, int fd, char *buf, int64_t deadline, int64_t *sent,
                      int64_t *errs)
{
    if (o->batch > 1) {
        for (long i = 0; i < o->count; i += o->batch) {
            if (now_ns() >= deadline)
                break;
            long k = o->count - i < o->batch ? o->count - i : o->batch;
            *sent += send_batch(o, fd, buf, k, errs);
        }
        return;
    }
    size_t n = (size_t)o->size;
    int stream = (o->transport == T_TCP || o->transport == T_USTREAM);
    for (long i = 0; i < o->count; i++) {
        if (now_ns() >= deadline)
            break;
        if (stream) {
            if (send_full(fd, buf, n) < 0)
                fail(1, "send: %s", strerror(errno));
            (*sent)++;
            continue;
        }
        ssize_t w;
        do
            w = send(fd, buf, n, MSG_NOSIGNAL | g_zc_flag);
        while (w < 0 && errno == EINTR);
        if (w < 0) {
            if (errno == ENOBUFS || errno == EAGAIN) {
                (*errs)++;
                continue;
            }
            fail(1, "send: %s", strerror(errno));
        }
        zc_sent(fd);
        (*sent)++;
    }
    zc_drain(fd);
}

/* --senders 2: a second sending process on CPU C; it waits for 'g' on go_rfd, sends the
 * measured messages and reports (sent, send errors, nvcsw) through res_wfd */
static void start_sender2(const struct opts *o, struct sockets *s, char *buf, int *go_wfd,
                          int *res_rfd)
{
    int go[2], res[2];
    if (pipe2(go, O_CLOEXEC) < 0 || pipe2(res, O_CLOEXEC) < 0)
        fail(1, "pipe: %s", strerror(errno));
    fflush(stdout);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        fail(1, "fork: %s", strerror(errno));
    if (pid == 0) {
        g_is_child = 1;
        g_res_wfd = res[1];
        close(go[1]);
        close(res[0]);
        close(s->cfd);
        if (s->sfd >= 0)
            close(s->sfd);
        reset_handlers_in_child();
        die_with_parent(parent);
        prctl(PR_SET_NAME, "lbsim-sender2");
        alarm(ceil_secs(o->max_seconds) + 20);
        if (pin_cpu(o->cpu_c) < 0)
            child_fail(2, "cannot pin the second sender to CPU %d: %s", o->cpu_c, strerror(errno));
        char g;
        ssize_t r;
        do
            r = read(go[0], &g, 1);
        while (r < 0 && errno == EINTR);
        if (r != 1)
            _exit(0);
        buf[0] = 'M';
        int64_t sent = 0, errs = 0, nv0 = nvcsw(), cpu0 = cpu_ns();
        send_loop(o, s->c2fd, buf, now_ns() + (int64_t)(o->max_seconds * 1e9), &sent, &errs);
        child_send6(M_RESULT, sent, errs, nvcsw() - nv0, g_zc_done, g_zc_copied, cpu_ns() - cpu0);
        _exit(0);
    }
    g_sender2 = pid;
    close(go[0]);
    close(res[1]);
    close(s->c2fd);
    s->c2fd = -1;
    *go_wfd = go[1];
    *res_rfd = res[0];
}

static void parent_stream(const struct opts *o, struct sockets *s, int res_rfd, int ctl_wfd,
                          char *buf, struct flowres *fr)
{
    int fd = s->cfd;
    size_t n = (size_t)o->size;
    int stream = (o->transport == T_TCP || o->transport == T_USTREAM);
    int go2 = -1, res2 = -1;
    if (s->c2fd >= 0)
        start_sender2(o, s, buf, &go2, &res2);
    int64_t start = now_ns();
    int64_t deadline = start + (int64_t)(o->max_seconds * 1e9);
    int64_t sent = 0, send_errors = 0;

    /* warmup */
    buf[0] = 'W';
    for (long i = 0; i < o->warmup; i++) {
        if (now_ns() >= deadline)
            fail(1, "warmup did not finish within max-seconds=%g", o->max_seconds);
        if (o->batch > 1) {   /* warm up the way the measured phase sends */
            long k = o->warmup - i < o->batch ? o->warmup - i : o->batch;
            int64_t warm_errs = 0;   /* refused warm-up datagrams are not counted, as below */
            send_batch(o, fd, buf, k, &warm_errs);
            i += k - 1;
            continue;
        }
        if (stream) {
            if (send_full(fd, buf, n) < 0)
                fail(1, "send: %s", strerror(errno));
        } else {
            ssize_t w;
            do
                w = send(fd, buf, n, MSG_NOSIGNAL | g_zc_flag);
            while (w < 0 && errno == EINTR);
            if (w < 0 && errno != ENOBUFS && errno != EAGAIN)
                fail(1, "send: %s", strerror(errno));
            if (w >= 0)
                zc_sent(fd);
        }
    }
    if (o->warmup > 0) {
        if (write(ctl_wfd, "w", 1) != 1) {
            /* receiver gone: expect_cmsg() reports its error */
        }
        expect_cmsg(res_rfd, M_WARM, deadline, NULL, "warmup drain");
    }

    /* measured phase */
    buf[0] = 'M';
    int64_t t0 = now_ns(), nv0 = nvcsw(), cpu0 = cpu_ns();
    if (go2 >= 0 && write(go2, "g", 1) != 1)
        fail(1, "cannot start the second sender");
    send_loop(o, fd, buf, deadline, &sent, &send_errors);
    fr->snd_nvcsw = nvcsw() - nv0;
    fr->snd_cpu_ns = cpu_ns() - cpu0;
    if (stream)
        shutdown(fd, SHUT_WR);
    if (res2 >= 0) {   /* the receiver may stop once both senders are done */
        struct cmsg m2;
        expect_cmsg(res2, M_RESULT, now_ns() + (int64_t)((o->max_seconds + 5.0) * 1e9), &m2,
                    "second sender");
        sent += m2.v[0];
        send_errors += m2.v[1];
        fr->snd_nvcsw += m2.v[2];
        fr->snd_cpu_ns += m2.v[5];
        fr->zc_sends += g_zc_flag ? m2.v[0] : 0;
        fr->zc_done += m2.v[3];
        fr->zc_copied += m2.v[4];
        pid_t p2 = g_sender2;
        g_sender2 = -1;
        kill_wait(p2);
    }
    /* the receiver may already have everything and be gone (EPIPE): its
     * result (or error) is in the result pipe either way */
    if (write(ctl_wfd, "d", 1) != 1) {
    }

    struct cmsg m;
    expect_cmsg(res_rfd, M_RESULT, now_ns() + (int64_t)((o->max_seconds + 5.0) * 1e9), &m,
                "receiver result");
    reap_child(now_ns() + 1000000000LL);
    fr->sent = sent;
    fr->send_errors = send_errors;
    fr->received = m.v[0];
    fr->bytes = m.v[1];
    fr->t0 = t0;
    fr->t_last = m.v[2];
    fr->snd_msgs = sent;
    fr->rcv_msgs = m.v[0] + m.v[3];   /* measured + warm-up datagrams (streams: measured) */
    fr->rcv_nvcsw = m.v[4];
    fr->rcv_cpu_ns = m.v[5];
    fr->zc_sends += g_zc_sends;
    fr->zc_done += g_zc_done;
    fr->zc_copied += g_zc_copied;
}

static double per_msg(int64_t n, int64_t msgs)
{
    return msgs > 0 ? (double)n / (double)msgs : 0.0;
}

/* the socket options the kernel kept, and the workload's shape */
static void print_bufs(const struct opts *o)
{
    printf(", \"rcvbuf_client\": %d, \"rcvbuf_server\": %d, \"sndbuf_client\": %d, "
           "\"sndbuf_server\": %d, \"tcp_nodelay\": %d, \"flows\": %d, \"senders\": %d, "
           "\"busy_poll_client\": %d, \"busy_poll_server\": %d, \"batch\": %d, \"receiver\": \"%s\"",
           g_bufs[0], g_bufs[1], g_bufs[2], g_bufs[3], o->transport == T_TCP ? !o->nagle : -1,
           o->flows, o->senders, g_busy_poll[0], g_busy_poll[1], o->batch, o->epoll ? "epoll" : "blocking");
}

/* the fields every pingpong/stream result carries after its workload's own */
static void print_extra(const struct opts *o, const struct flowres *fr, int nf)
{
    int64_t sn = 0, sm = 0, rn = 0, rm = 0;
    for (int i = 0; i < nf; i++) {
        sn += fr[i].snd_nvcsw;
        sm += fr[i].snd_msgs;
        rn += fr[i].rcv_nvcsw;
        rm += fr[i].rcv_msgs;
    }
    printf(", \"sleeps_per_msg_sender\": %.4f, \"sleeps_per_msg_receiver\": %.4f", per_msg(sn, sm),
           per_msg(rn, rm));
    print_bufs(o);
    int64_t zs = 0, zd = 0, zk = 0;
    for (int i = 0; i < nf; i++) {
        zs += fr[i].zc_sends;
        zd += fr[i].zc_done;
        zk += fr[i].zc_copied;
    }
    printf(", \"zerocopy\": %d, \"zc_sends\": %lld, \"zc_completed\": %lld, \"zc_copied\": %lld",
           o->zerocopy, (long long)zs, (long long)zd, (long long)zk);
    printf(", \"flow_received\": [");
    for (int i = 0; i < nf; i++)
        printf("%s%lld", i ? ", " : "",
               (long long)(o->workload == W_PINGPONG ? fr[i].nrec : fr[i].received));
    printf("]");
}

static void report_pingpong(const struct opts *o, struct flowres *fr, int nf)
{
    int64_t nrec = 0, first = 0, last = 0;
    for (int i = 0; i < nf; i++) {
        nrec += fr[i].nrec;
        if (i == 0 || fr[i].rec_start < first)
            first = fr[i].rec_start;
        if (i == 0 || fr[i].rec_end > last)
            last = fr[i].rec_end;
    }
    int64_t *all = fr[0].samples;
    if (nf > 1) {   /* merge every flow's round trips before the percentiles */
        all = malloc(sizeof(int64_t) * (size_t)nrec);
        if (!all)
            fail(1, "out of memory for %lld samples", (long long)nrec);
        int64_t k = 0;
        for (int i = 0; i < nf; i++)
            for (int64_t j = 0; j < fr[i].nrec; j++)
                all[k++] = fr[i].samples[j];
    }
    double sum = 0;
    for (int64_t i = 0; i < nrec; i++)
        sum += (double)all[i];
    qsort(all, (size_t)nrec, sizeof(int64_t), cmp_i64);
    int64_t el = last - first;
    print_common(o);
    printf(", \"count\": %lld, \"mean_ns\": %.1f, \"p50_ns\": %lld, \"p90_ns\": %lld, "
           "\"p99_ns\": %lld, \"p999_ns\": %lld, \"min_ns\": %lld, \"max_ns\": %lld, "
           "\"elapsed_ns\": %lld, \"round_trips_per_s\": %.1f",
           (long long)nrec, sum / (double)nrec, (long long)pct(all, nrec, 500),
           (long long)pct(all, nrec, 900), (long long)pct(all, nrec, 990),
           (long long)pct(all, nrec, 999), (long long)all[0], (long long)all[nrec - 1],
           (long long)el, el > 0 ? (double)nrec * 1e9 / (double)el : 0.0);
    print_extra(o, fr, nf);
    print_tail(o);
    if (all != fr[0].samples)
        free(all);
}

static void report_stream(const struct opts *o, const struct flowres *fr, int nf, long long rb0,
                          long long rb1, long long sd0, long long sd1)
{
    int64_t sent = 0, received = 0, bytes = 0, errs = 0, t0 = 0, tl = 0, sc = 0, rc = 0;
    for (int i = 0; i < nf; i++) {
        sent += fr[i].sent;
        sc += fr[i].snd_cpu_ns;
        rc += fr[i].rcv_cpu_ns;
        received += fr[i].received;
        bytes += fr[i].bytes;
        errs += fr[i].send_errors;
        if (i == 0 || fr[i].t0 < t0)
            t0 = fr[i].t0;
        if (fr[i].t_last > tl)
            tl = fr[i].t_last;
    }
    int64_t elapsed = (bytes > 0 && tl > t0) ? tl - t0 : 0;
    double secs = (double)elapsed / 1e9;
    double thr = secs > 0 ? (double)bytes / secs : 0.0;
    double mps = secs > 0 ? (double)received / secs : 0.0;
    print_common(o);
    printf(", \"sent\": %lld, \"received\": %lld, \"bytes_received\": %lld, \"elapsed_ns\": %lld, "
           "\"throughput_Bps\": %.1f, \"msgs_per_s\": %.1f",
           (long long)sent, (long long)received, (long long)bytes, (long long)elapsed, thr, mps);
    print_delta("rcvbuf_errors", rb0, rb1);
    print_delta("softnet_dropped", sd0, sd1);
    printf(", \"send_errors\": %lld", (long long)errs);
    /* each side's CPU time over the measured window: with one CPU per side, that CPU's busy
     * share (every flow's and sender's summed); the slower side is near 1 */
    printf(", \"cpu_busy_sender\": %.4f, \"cpu_busy_receiver\": %.4f",
           elapsed > 0 ? (double)sc / (double)elapsed : 0.0, elapsed > 0 ? (double)rc / (double)elapsed : 0.0);
    print_extra(o, fr, nf);
    print_tail(o);
}

static void parent_split(const struct opts *o, struct sockets *s, char *buf)
{
    size_t n = (size_t)o->size;
    int stream = (o->transport == T_TCP || o->transport == T_USTREAM);
    int64_t *ws = malloc(sizeof(int64_t) * (size_t)o->count);
    int64_t *rs = malloc(sizeof(int64_t) * (size_t)o->count);
    char *rbuf = malloc(n);
    if (!ws || !rs || !rbuf)
        fail(1, "out of memory for %ld samples", o->count);
    memset(rbuf, 0, n);
    int64_t deadline = now_ns() + (int64_t)(o->max_seconds * 1e9);
    long total = o->warmup + o->count, nrec = 0;
    for (long i = 0; i < total; i++) {
        int64_t t0 = now_ns();
        if (t0 >= deadline)
            break;
        if (stream) {
            if (send_full(s->cfd, buf, n) < 0)
                fail(1, "send: %s", strerror(errno));
        } else {
            send_dgram(s->cfd, buf, n);
        }
        int64_t t1 = now_ns();
        if (stream) {
            int r = recv_full(s->sfd, rbuf, n);
            if (r != 1)
                fail(1, "recv: %s", r == -1 ? strerror(errno) : "unexpected EOF");
        } else {
            recv_dgram(s->sfd, rbuf, n);
        }
        int64_t t2 = now_ns();
        if (i >= o->warmup) {
            ws[nrec] = t1 - t0;
            rs[nrec] = t2 - t1;
            nrec++;
        }
    }
    if (nrec == 0)
        fail(1, "no write/read recorded within max-seconds=%g (warmup %ld)", o->max_seconds, o->warmup);
    double wsum = 0, rsum = 0;
    for (long i = 0; i < nrec; i++) {
        wsum += (double)ws[i];
        rsum += (double)rs[i];
    }
    qsort(ws, (size_t)nrec, sizeof(int64_t), cmp_i64);
    qsort(rs, (size_t)nrec, sizeof(int64_t), cmp_i64);
    cleanup();
    print_common(o);
    printf(", \"count\": %ld, \"write_mean_ns\": %.1f, \"write_p50_ns\": %lld, \"write_p90_ns\": %lld, "
           "\"read_mean_ns\": %.1f, \"read_p50_ns\": %lld, \"read_p90_ns\": %lld",
           nrec, wsum / (double)nrec, (long long)pct(ws, nrec, 500), (long long)pct(ws, nrec, 900),
           rsum / (double)nrec, (long long)pct(rs, nrec, 500), (long long)pct(rs, nrec, 900));
    print_bufs(o);
    print_tail(o);
    free(ws);
    free(rs);
    free(rbuf);
}

static void usage_fail(const char *msg) __attribute__((noreturn));
static void usage_fail(const char *msg)
{
    fail(2, "%s; usage: lbsim-harness --transport tcp|udp|unix_stream|unix_dgram|unix_seqpacket "
            "--workload pingpong|stream|split --size BYTES --count N --warmup N --cpu-a A --cpu-b B "
            "[--max-seconds S] [--busy-cpu C]... [--policy other|fifo] [--rcvbuf N] [--sndbuf N] "
            "[--nagle] [--flows N] [--senders 1|2] [--cpu-c C] [--busy-poll US] "
            "[--zerocopy] [--batch N] [--epoll]; or lbsim-harness --micro-epoll N; "
            "or lbsim-harness --micro-unix-lookup N; or lbsim-harness --micro-hrtimer N",
         msg);
}

static void parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option lo[] = {
        {"transport", required_argument, 0, 't'}, {"workload", required_argument, 0, 'w'},
        {"size", required_argument, 0, 's'},      {"count", required_argument, 0, 'n'},
        {"warmup", required_argument, 0, 'W'},    {"cpu-a", required_argument, 0, 'a'},
        {"cpu-b", required_argument, 0, 'b'},     {"max-seconds", required_argument, 0, 'm'},
        {"busy-cpu", required_argument, 0, 'B'},  {"policy", required_argument, 0, 'p'},
        {"rcvbuf", required_argument, 0, 'R'},    {"sndbuf", required_argument, 0, 'S'},
        {"nagle", no_argument, 0, 'N'},           {"flows", required_argument, 0, 'F'},
        {"senders", required_argument, 0, 'E'},   {"cpu-c", required_argument, 0, 'c'},
        {"busy-poll", required_argument, 0, 'P'}, {"help", no_argument, 0, 'h'},
        {"zerocopy", no_argument, 0, 'Z'},
        {"batch", required_argument, 0, 'K'},
        {"epoll", no_argument, 0, 'e'},
        {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    o->transport = o->workload = -1;
    o->size = o->count = o->warmup = -1;
    o->cpu_a = o->cpu_b = -1;
    o->max_seconds = 10.0;
    o->flows = o->senders = 1;
    o->batch = 1;
    o->cpu_c = -1;
    o->busy_poll = -1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 't':
            o->transport = -1;
            for (int i = 0; i < NTRANSPORTS; i++)
                if (strcmp(optarg, tnames[i]) == 0)
                    o->transport = i;
            if (o->transport < 0)
                usage_fail("invalid --transport");
            break;
        case 'w':
            o->workload = -1;
            for (int i = 0; i < 3; i++)
                if (strcmp(optarg, wnames[i]) == 0)
                    o->workload = i;
            if (o->workload < 0)
                usage_fail("invalid --workload");
            break;
        case 's': o->size = parse_long("size", optarg, 1, MAX_SIZE); break;
        case 'n': o->count = parse_long("count", optarg, 1, MAX_COUNT); break;
        case 'W': o->warmup = parse_long("warmup", optarg, 0, MAX_COUNT); break;
        case 'a': o->cpu_a = (int)parse_long("cpu-a", optarg, 0, CPU_SETSIZE - 1); break;
        case 'b': o->cpu_b = (int)parse_long("cpu-b", optarg, 0, CPU_SETSIZE - 1); break;
        case 'm': {
            char *end;
            errno = 0;
            double v = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(v > 0) || v > 3600)
                fail(2, "invalid value '%s' for --max-seconds (expected 0 < S <= 3600)", optarg);
            o->max_seconds = v;
            break;
        }
        case 'B':
            if (o->nbusy >= MAX_BUSY)
                fail(2, "at most %d --busy-cpu options", MAX_BUSY);
            o->busy[o->nbusy++] = (int)parse_long("busy-cpu", optarg, 0, CPU_SETSIZE - 1);
            break;
        case 'p':
            if (strcmp(optarg, "other") == 0)
                o->fifo = 0;
            else if (strcmp(optarg, "fifo") == 0)
                o->fifo = 1;
            else
                usage_fail("invalid --policy");
            break;
        case 'R': o->rcvbuf = parse_long("rcvbuf", optarg, 1, 1L << 30); break;
        case 'S': o->sndbuf = parse_long("sndbuf", optarg, 1, 1L << 30); break;
        case 'N': o->nagle = 1; break;
        case 'F': o->flows = (int)parse_long("flows", optarg, 1, MAX_FLOWS); break;
        case 'E': o->senders = (int)parse_long("senders", optarg, 1, 2); break;
        case 'c': o->cpu_c = (int)parse_long("cpu-c", optarg, 0, CPU_SETSIZE - 1); break;
        case 'P': o->busy_poll = parse_long("busy-poll", optarg, 0, 2147483647L); break;
        case 'Z': o->zerocopy = 1; break;
        case 'K': o->batch = (int)parse_long("batch", optarg, 1, MAX_BATCH); break;
        case 'e': o->epoll = 1; break;
        case 'h': usage_fail("help requested");
        default: usage_fail("unknown or incomplete option");
        }
    }
    if (optind < argc)
        usage_fail("unexpected positional argument");
    if (o->transport < 0 || o->workload < 0 || o->size < 0 || o->count < 0 || o->warmup < 0 ||
        o->cpu_a < 0 || o->cpu_b < 0)
        usage_fail("missing required option");
    if (o->cpu_c < 0)
        o->cpu_c = o->cpu_a;
    if (o->senders > 1 && !(o->workload == W_STREAM &&
                            (o->transport == T_UDP || o->transport == T_UDGRAM)))
        fail(2, "--senders 2 needs a udp or unix_dgram stream");
    if (o->batch > 1 && o->workload != W_STREAM)
        fail(2, "--batch needs --workload stream (pingpong and split move one message per call)");
    if (o->workload == W_SPLIT && o->flows > 1)
        fail(2, "--flows needs pingpong or stream (split is one thread)");
    /* SO_ZEROCOPY is refused on AF_UNIX (net/core/sock.c sk_setsockopt: EOPNOTSUPP) */
    if (o->zerocopy && !((o->transport == T_TCP || o->transport == T_UDP) && o->workload != W_SPLIT))
        fail(2, "--zerocopy needs tcp or udp and pingpong or stream");
    if (o->epoll && o->batch > 1)
        fail(2, "--epoll and --batch N > 1: not supported together (recvmmsg does not wait in epoll_wait)");
    if (o->zerocopy && o->batch > 1)
        fail(2, "--zerocopy and --batch N > 1: not supported together (batches are sent without MSG_ZEROCOPY)");
    g_zc_flag = o->zerocopy ? MSG_ZEROCOPY : 0;
    g_epoll = o->epoll;
}

/* median ns per iteration of 31 batches of `batch` iterations of `body` */
#define MEDIAN31(out, batch, body)                                                     \
    do {                                                                               \
        int64_t per_[31];                                                              \
        for (int b_ = 0; b_ < 31; b_++) {                                              \
            int64_t t0_ = now_ns();                                                    \
            for (long i_ = 0; i_ < (batch); i_++) {                                    \
                body;                                                                  \
            }                                                                          \
            per_[b_] = now_ns() - t0_;                                                 \
        }                                                                              \
        qsort(per_, 31, sizeof per_[0], cmp_i64);                                      \
        (out) = (double)per_[15] / (double)(batch);                                    \
    } while (0)

/* lbsim-harness --null-syscalls N: the cost of a syscall that does nothing (getppid),
 * i.e. entry_SYSCALL_64 .. sysret with this kernel's mitigations: median of 31 batches. */
static int null_syscalls(long n)
{
    if (n < 1000 || n > 100000000L) {
        printf("{\"error\": \"--null-syscalls needs 1000..100000000\"}\n");
        return 2;
    }
    long batch = n / 31;
    double ns;
    MEDIAN31(ns, batch, syscall(SYS_getppid));
    printf("{\"null_syscall_ns\": %.2f, \"calls\": %ld}\n", ns, batch * 31);
    return 0;
}

/* lbsim-harness --micro-epoll N: the cost epoll adds to a receive, at default settings, on
 * an AF_UNIX datagram socketpair (its poll is unix_dgram_poll; the read wakes peer_wait and
 * the writer's sk_wq, never the watched socket's, so no other epoll callback runs):
 *   epoll_wait_ns: epoll_wait(maxevents 1, timeout 0) on a socket that always holds a
 *     datagram, level-triggered: entry/exit + ep_poll + ep_send_events (ep_item_poll -> the
 *     socket's poll, the event copied out, the item put back on rdllist);
 *   write_read_ns: send + recv of one 1-byte datagram, the socket not watched;
 *   write_wait_read_ns: the same with the socket watched edge-triggered and one
 *     epoll_wait(timeout 0) between: the send's sk_data_ready now runs ep_poll_callback
 *     (the item is linked on rdllist, nobody sleeps on ep->wq), epoll_wait takes it off.
 * ep_poll_callback_ns = write_wait_read_ns - write_read_ns - epoll_wait_ns.  Medians of 31
 * batches; N iterations in all per loop (1000..100000000). */
static int micro_epoll(long n)
{
    if (n < 1000 || n > 100000000L) {
        printf("{\"error\": \"--micro-epoll needs 1000..100000000\"}\n");
        return 2;
    }
    int sv[2], ep_lt, ep_et;
    char c = 'x', r;
    struct epoll_event ev;
    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) < 0 || (ep_lt = epoll_create1(0)) < 0 ||
        (ep_et = epoll_create1(0)) < 0) {
        printf("{\"error\": \"micro-epoll setup: %s\"}\n", strerror(errno));
        return 1;
    }
    long batch = n / 31;
    double null_ns, wait_ns, wr_ns, wwr_ns;
    MEDIAN31(null_ns, batch, syscall(SYS_getppid));
    MEDIAN31(wr_ns, batch, if (send(sv[0], &c, 1, 0) != 1 || recv(sv[1], &r, 1, 0) != 1) goto bad);
    struct epoll_event add = {.events = EPOLLIN, .data.fd = sv[1]};
    if (send(sv[0], &c, 1, 0) != 1 || epoll_ctl(ep_lt, EPOLL_CTL_ADD, sv[1], &add) < 0)
        goto bad;
    MEDIAN31(wait_ns, batch, if (epoll_wait(ep_lt, &ev, 1, 0) != 1) goto bad);
    if (recv(sv[1], &r, 1, 0) != 1 || epoll_ctl(ep_lt, EPOLL_CTL_DEL, sv[1], NULL) < 0)
        goto bad;
    add.events = EPOLLIN | EPOLLET;
    if (epoll_ctl(ep_et, EPOLL_CTL_ADD, sv[1], &add) < 0)
        goto bad;
    MEDIAN31(wwr_ns, batch, if (send(sv[0], &c, 1, 0) != 1 || epoll_wait(ep_et, &ev, 1, 0) != 1 ||
                                recv(sv[1], &r, 1, 0) != 1) goto bad);
    printf("{\"null_syscall_ns\": %.2f, \"epoll_wait_ns\": %.2f, \"write_read_ns\": %.2f, "
           "\"write_wait_read_ns\": %.2f, \"ep_send_events_ns\": %.2f, \"ep_poll_callback_ns\": %.2f, "
           "\"calls\": %ld}\n", null_ns, wait_ns, wr_ns, wwr_ns, wait_ns - null_ns,
           wwr_ns - wr_ns - wait_ns, batch * 31);
    return 0;
bad:
    printf("{\"error\": \"micro-epoll: %s\"}\n", strerror(errno));
    return 1;
}

/* lbsim-harness --micro-unix-lookup N: what a unix_dgram send to a path (the ping-pong server's
 * reply, sendto(client path)) costs more than the same send on a connected socket, at default
 * settings, on one CPU with nobody asleep: net/unix/af_unix.c unix_dgram_sendmsg ->
 * unix_find_other (the path walk, the inode's permission, the bound socket held, put after the
 * send) and __sys_sendto's copy of the address.  The client is bound and connected to the server,
 * as in the ping-pong (its peer is the sender: no max_dgram_qlen test either way):
 *   sendto_recv_ns: the server's sendto(client path) + the client's recv of one 64-byte datagram;
 *   send_recv_ns: the same after connect(server, client path): send + recv, no lookup.
 * unix_find_other_ns = the difference; medians of 31 batches, the addressed loop run before and
 * after the connected one (its two medians averaged).  N iterations per loop (1000..100000000). */
/* micro_unix_lookup's loop body: one 64-byte datagram sent (to `to`, or on the connected socket
 * when `to` is NULL) and received; 0 when both calls moved the whole datagram */
static int send_recv64(int srv, int c, const struct sockaddr_un *to, socklen_t tolen)
{
    char buf[64], r[64];
    memset(buf, 'x', sizeof buf);
    ssize_t w = to ? sendto(srv, buf, sizeof buf, 0, (const struct sockaddr *)to, tolen)
                   : send(srv, buf, sizeof buf, 0);
    return w != (ssize_t)sizeof buf || recv(c, r, sizeof r, 0) != (ssize_t)sizeof r;
}

static int micro_unix_lookup(long n)
{
    if (n < 1000 || n > 100000000L) {
        printf("{\"error\": \"--micro-unix-lookup needs 1000..100000000\"}\n");
        return 2;
    }
    struct sockaddr_un sa, ca;
    socklen_t sal, cal;
    make_tmpdir();
    snprintf(g_path_s, sizeof g_path_s, "%s/s", g_dir);
    snprintf(g_path_c, sizeof g_path_c, "%s/c", g_dir);
    fill_un(&sa, &sal, g_path_s);
    fill_un(&ca, &cal, g_path_c);
    int srv = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int c = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (srv < 0 || c < 0 || bind(srv, (struct sockaddr *)&sa, sal) < 0 ||
        bind(c, (struct sockaddr *)&ca, cal) < 0 || connect(c, (struct sockaddr *)&sa, sal) < 0)
        goto bad;
    long batch = n / 31;
    double before_ns, after_ns, conn_ns;
    MEDIAN31(before_ns, batch, if (send_recv64(srv, c, &ca, cal)) goto bad);
    if (connect(srv, (struct sockaddr *)&ca, cal) < 0)
        goto bad;
    MEDIAN31(conn_ns, batch, if (send_recv64(srv, c, NULL, 0)) goto bad);
    MEDIAN31(after_ns, batch, if (send_recv64(srv, c, &ca, cal)) goto bad);
    close(srv);
    close(c);
    cleanup();
    double addr_ns = (before_ns + after_ns) / 2;
    printf("{\"sendto_recv_ns\": %.2f, \"sendto_recv_before_ns\": %.2f, \"sendto_recv_after_ns\": %.2f, "
           "\"send_recv_ns\": %.2f, \"unix_find_other_ns\": %.2f, \"calls\": %ld}\n",
           addr_ns, before_ns, after_ns, conn_ns, addr_ns - conn_ns, batch * 31);
    return 0;
bad:
    printf("{\"error\": \"micro-unix-lookup: %s\"}\n", strerror(errno));
    cleanup();
    return 1;
}

/* one client/peer pair: sockets, peer, (barrier), the measured exchange into fr.
 * ready_wfd/go_rfd >= 0 (--flows): say ready, then wait until go_rfd reaches EOF. */
static void run_flow(const struct opts *o, struct flowres *fr, int ready_wfd, int go_rfd)
{
    struct sockets s;
    setup_sockets(o, &s);
    check_dgram_size(o, &s);
    char *buf = malloc((size_t)o->size);
    if (!buf)
        fail(1, "out of memory for a %ld-byte buffer", o->size);
    memset(buf, 'x', (size_t)o->size);

    int res[2], ctl[2];
    if (pipe2(res, O_CLOEXEC) < 0 || pipe2(ctl, O_CLOEXEC) < 0)
        fail(1, "pipe: %s", strerror(errno));
    fflush(stdout);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        fail(1, "fork: %s", strerror(errno));
    if (pid == 0) {
        close(res[0]);
        close(ctl[1]);
        run_child(o, &s, res[1], ctl[0], parent);
        _exit(0);
    }
    g_child = pid;
    close(res[1]);
    close(ctl[0]);
    close(s.sfd);
    s.sfd = -1;   /* its number is reused: the second sender must not close it again */

    expect_cmsg(res[0], M_READY, now_ns() + 5000000000LL, NULL, "startup");
    if (ready_wfd >= 0) {
        char g;
        if (write(ready_wfd, "r", 1) != 1)
            fail(1, "flow barrier: %s", strerror(errno));
        while (read(go_rfd, &g, 1) < 0 && errno == EINTR)
            ;
    }
    if (o->workload == W_PINGPONG)
        parent_pingpong(o, &s, res[0], ctl[1], buf, fr);
    else
        parent_stream(o, &s, res[0], ctl[1], buf, fr);
    cleanup();
    free(buf);
}

/* --flows N > 1: fork N flow processes into a shared result mapping, start them together,
 * wait for all; a failed flow's error JSON (its stdout) becomes the run's error */
static void run_flows(const struct opts *o, struct flowres *fr)
{
    int ready[2], go[2];
    int outs[MAX_FLOWS];
    if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(go, O_CLOEXEC) < 0)
        fail(1, "pipe: %s", strerror(errno));
    pid_t top = getpid();
    for (int i = 0; i < o->flows; i++) {
        int out[2];
        if (pipe2(out, O_CLOEXEC) < 0)
            fail(1, "pipe: %s", strerror(errno));
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0)
            fail(1, "fork: %s", strerror(errno));
        if (pid == 0) {
            g_nflow = 0;
            g_nspin = 0;   /* the spinners are the top's */
            die_with_parent(top);
            prctl(PR_SET_NAME, "lbsim-flow");
            dup2(out[1], 1);
            close(ready[0]);
            close(go[1]);
            run_flow(o, &fr[i], ready[1], go[0]);
            fflush(stdout);
            _exit(0);
        }
        g_flowpid[g_nflow++] = pid;
        close(out[1]);
        outs[i] = out[0];
    }
    close(ready[1]);
    close(go[0]);
    int64_t deadline = now_ns() + 10000000000LL;
    for (int got = 0; got < o->flows;) {
        struct pollfd p = {.fd = ready[0], .events = POLLIN};
        int pr = poll(&p, 1, 100);
        char c;
        if (pr > 0 && read(ready[0], &c, 1) == 1)
            got++;
        else if (pr > 0 || now_ns() > deadline)
            break;   /* a flow died before its barrier (its error is in its stdout) */
    }
    close(go[1]);   /* EOF: every flow starts */
    int bad = -1, code = 0;
    for (int i = 0; i < o->flows; i++) {
        int st = 0;
        while (waitpid(g_flowpid[i], &st, 0) < 0 && errno == EINTR)
            ;
        if (bad < 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
            bad = i;
            code = WIFEXITED(st) ? WEXITSTATUS(st) : 1;
        }
    }
    g_nflow = 0;
    if (bad >= 0) {
        char msg[1024];
        ssize_t r = read(outs[bad], msg, sizeof msg - 1);
        msg[r > 0 ? r : 0] = 0;
        char *nl = strchr(msg, '\n');
        if (nl)
            *nl = 0;
        fail(code ? code : 1, "flow %d failed: %s", bad, msg[0] ? msg : "no output");
    }
    for (int i = 0; i < o->flows; i++)
        close(outs[i]);
}

/* lbsim-harness --micro-hrtimer N: what an hrtimer costs the CPU it runs on, at default settings,
 * pinned to the last CPU with nothing else on it (TCP's pacing timer, lbsim/model/tcp_pacing.py):
 *   hrtimer_reprogram_ns: a timerfd armed 100 us ahead and disarmed, against the same 1 s ahead.  The near
 *     one becomes the CPU's earliest hrtimer (hrtimer_reprogram -> clockevents_program_event, on
 *     x86 lapic_next_deadline: one write of MSR_IA32_TSC_DEADLINE) and its removal programs the
 *     next event again (hrtimer_force_reprogram: one more); the far one is never the earliest
 *     (the tick comes first).  Half the difference is one programming of the clock event (in a
 *     KVM guest a trapped WRMSR).  Medians of 31 batches of N/31 pairs, near run before and after
 *     far (the two averaged).
 *   hrtimer_interrupt_ns: the process spins reading CLOCK_MONOTONIC and sums the gaps between two reads
 *     longer than 300 ns (its CPU was taken), for 0.25 s with a sampling cpu-clock perf event on
 *     itself (perf_swevent_hrtimer: a pinned hrtimer that re-arms from its own handler every
 *     100 us, with no ring buffer to write a sample to) and 0.25 s without, 9 times interleaved.
 *     Each expiry takes the timer interrupt (in a guest, the host's timer exit and the injection),
 *     hrtimer_interrupt with a handler that does almost nothing, and the programming of the next
 *     event.  Median over the 9 of (loss with - loss without) / expiries.
 * User-space only (exclude_kernel): perf_event_paranoid 2, the default, allows it. */
static int arm_disarm(int fd, int64_t ahead_ns)
{
    struct itimerspec on = {{0, 0}, {ahead_ns / 1000000000, ahead_ns % 1000000000}};
    struct itimerspec off = {{0, 0}, {0, 0}};
    return timerfd_settime(fd, 0, &on, NULL) < 0 || timerfd_settime(fd, 0, &off, NULL) < 0;
}

/* the time lost (gaps over 300 ns between two clock reads) while spinning for `ns` */
static int64_t spin_lost(int64_t ns)
{
    int64_t t = now_ns(), prev = t, end = t + ns, lost = 0;
    while (t < end) {
        t = now_ns();
        if (t - prev > 300)
            lost += t - prev;
        prev = t;
    }
    return lost;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int micro_hrtimer(long n)
{
    if (n < 1000 || n > 10000000L) {
        printf("{\"error\": \"--micro-hrtimer needs 1000..10000000\"}\n");
        return 2;
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (pin_cpu(ncpu > 1 ? (int)ncpu - 1 : 0) < 0)
        goto bad;
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    if (fd < 0)
        goto bad;
    long batch = n / 31;
    double near1_ns, far_ns, near2_ns;
    MEDIAN31(near1_ns, batch, if (arm_disarm(fd, 100000)) goto bad);
    MEDIAN31(far_ns, batch, if (arm_disarm(fd, 1000000000)) goto bad);
    MEDIAN31(near2_ns, batch, if (arm_disarm(fd, 100000)) goto bad);
    close(fd);
    struct perf_event_attr pa;
    memset(&pa, 0, sizeof pa);
    pa.size = sizeof pa;
    pa.type = PERF_TYPE_SOFTWARE;
    pa.config = PERF_COUNT_SW_CPU_CLOCK;
    pa.sample_period = 100000;  /* ns */
    pa.sample_type = PERF_SAMPLE_IP;
    pa.disabled = 1;
    pa.exclude_kernel = 1;
    pa.exclude_hv = 1;
    int pfd = (int)syscall(SYS_perf_event_open, &pa, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
    if (pfd < 0) {
        /* exit 3: no perf events here (perf_event_paranoid 3, a seccomp filter): not measured */
        printf("{\"error\": \"micro-hrtimer: perf_event_open (cpu-clock): %s\"}\n", strerror(errno));
        return 3;
    }
    const int64_t span = 250000000;  /* ns per stretch */
    double per[9];
    for (int r = 0; r < 9; r++) {
        int64_t quiet = spin_lost(span);
        if (ioctl(pfd, PERF_EVENT_IOC_ENABLE, 0) < 0)
            goto bad;
        int64_t t0 = now_ns();
        int64_t busy = spin_lost(span);
        int64_t took = now_ns() - t0;
        if (ioctl(pfd, PERF_EVENT_IOC_DISABLE, 0) < 0)
            goto bad;
        per[r] = (double)(busy - quiet) / ((double)took / (double)pa.sample_period);
    }
    close(pfd);
    qsort(per, 9, sizeof per[0], cmp_double);
    double near_ns = (near1_ns + near2_ns) / 2;
    printf("{\"near_pair_ns\": %.2f, \"far_pair_ns\": %.2f, \"hrtimer_reprogram_ns\": %.2f, "
           "\"hrtimer_interrupt_ns\": %.2f, \"interrupt_min_ns\": %.2f, \"interrupt_max_ns\": %.2f, "
           "\"calls\": %ld}\n", near_ns, far_ns, (near_ns - far_ns) / 2, per[4], per[0], per[8], batch * 31);
    return 0;
bad:
    printf("{\"error\": \"micro-hrtimer: %s\"}\n", strerror(errno));
    return 1;
}

int main(int argc, char **argv)
{
    struct opts o;
    if (argc == 3 && strcmp(argv[1], "--null-syscalls") == 0)
        return null_syscalls(strtol(argv[2], NULL, 10));
    if (argc == 3 && strcmp(argv[1], "--micro-epoll") == 0)
        return micro_epoll(strtol(argv[2], NULL, 10));
    if (argc == 3 && strcmp(argv[1], "--micro-unix-lookup") == 0) {
        install_handlers();  /* the socket paths go on a signal too */
        return micro_unix_lookup(strtol(argv[2], NULL, 10));
    }
    if (argc == 3 && strcmp(argv[1], "--micro-hrtimer") == 0)
        return micro_hrtimer(strtol(argv[2], NULL, 10));
    install_handlers();
    parse_args(argc, argv, &o);

    /* absolute watchdog: everything (setup, warmup, measuring, drain) */
    unsigned budget = ceil_secs(o.max_seconds) + 15;
    alarm(budget);
    int64_t hard_end = now_ns() + (int64_t)budget * 1000000000LL + 5000000000LL;

    if (o.transport == T_UDP && o.size > UDP_MAX_PAYLOAD)
        fail(2, "size %ld exceeds the UDP/IPv4 maximum payload of %ld bytes", o.size,
             UDP_MAX_PAYLOAD);

    if (o.workload == W_SPLIT) {
        if (o.size > SPLIT_MAX_SIZE)
            fail(2, "split: size %ld exceeds %ld bytes (one thread cannot write more than the "
                    "default socket buffers hold before it reads)", o.size, SPLIT_MAX_SIZE);
        struct sockets s;
        setup_sockets(&o, &s);
        check_dgram_size(&o, &s);
        char *buf = malloc((size_t)o.size);
        if (!buf)
            fail(1, "out of memory for a %ld-byte buffer", o.size);
        memset(buf, 'x', (size_t)o.size);
        start_spinners(&o, hard_end);
        if (pin_cpu(o.cpu_a) < 0)
            fail(2, "cannot pin to CPU %d: %s", o.cpu_a, strerror(errno));
        if (o.fifo && set_fifo() < 0)
            fail(3, "cannot set SCHED_FIFO priority 1: %s", strerror(errno));
        parent_split(&o, &s, buf);
        cleanup();
        free(buf);
        fflush(stdout);
        return 0;
    }

    start_spinners(&o, hard_end);

    if (pin_cpu(o.cpu_a) < 0)
        fail(2, "cannot pin client to CPU %d: %s", o.cpu_a, strerror(errno));
    if (o.fifo && set_fifo() < 0)
        fail(3, "cannot set SCHED_FIFO priority 1: %s", strerror(errno));

    /* results (and pingpong samples) in a shared mapping: flow processes fill it */
    size_t per = sizeof(int64_t) * (size_t)(o.workload == W_PINGPONG ? o.count : 1);
    size_t len = (sizeof(struct flowres) + per) * (size_t)o.flows;
    char *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED)
        fail(1, "out of memory for %d flows' results", o.flows);
    struct flowres *fr = (struct flowres *)map;
    for (int i = 0; i < o.flows; i++)
        fr[i].samples = (int64_t *)(map + sizeof(struct flowres) * (size_t)o.flows + per * (size_t)i);

    long long rb0 = read_udp_rcvbuf_errors(), sd0 = read_softnet_dropped();
    if (o.flows == 1)
        run_flow(&o, fr, -1, -1);
    else
        run_flows(&o, fr);
    long long rb1 = read_udp_rcvbuf_errors(), sd1 = read_softnet_dropped();
    if (o.flows > 1) {   /* the buffers the kernel kept: the same on every flow's sockets */
        struct sockets s;
        setup_sockets(&o, &s);
        close(s.cfd);
        close(s.sfd);
        if (s.c2fd >= 0)
            close(s.c2fd);
        cleanup();
    }

    if (o.workload == W_PINGPONG)
        report_pingpong(&o, fr, o.flows);
    else
        report_stream(&o, fr, o.flows, rb0, rb1, sd0, sd1);
    cleanup();
    fflush(stdout);
    return 0;
}
