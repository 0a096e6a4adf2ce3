/* hn-worker: a memory worker for the QEMU multi-node tests.
 *
 * It allocates --mib MiB of anonymous memory in 4 KiB pages (MADV_NOHUGEPAGE), first-touches
 * every page (optionally while bound to --touch-cpus, so the memory lands on that node), then
 * loops over the pages for ever: each page's content is checked against the checksum kept for
 * it, then rewritten with the next generation's pattern and its new checksum stored.  A page
 * moved by the kernel (move_pages, migrate_pages, NUMA balancing) must come back bit for bit:
 * any mismatch is counted in "errors".
 *
 * It also measures whether it ever stalls: the longest gap between two consecutive chunks of
 * CHUNK_PAGES pages ("max_gap_ms"), and how much of each gap it spent *not* running
 * (wall time less its own thread CPU time: "max_wait_ms").  A gap with more than STALL_MS of
 * waiting counts as a stall ("stalls"): the worker was blocked (on a page being migrated,
 * say) or kept off the CPU.  Under emulation a vCPU starved by a busy host makes wall-clock
 * gaps too, but the guest charges that time to the running worker, so it is not waiting.
 *
 * Every --report-ms it writes a one-line JSON report to --report (atomically, via rename), and a
 * last one on SIGTERM/SIGINT or after --seconds.  Exit status: 0 clean, 3 checksum errors,
 * 2 bad usage or setup failure.
 *
 * Usage: hn-worker --mib N [--touch-cpus LIST] [--touch-node N] [--run-cpus LIST|all]
 *                  [--seconds S] [--report FILE] [--report-ms MS] [--tag WORD] [--idle]
 * --touch-node N: first-touch under a memory policy bound to node N (set_mempolicy(2)), then
 * back to the default policy: the memory lands on N without narrowing the CPU affinity, so a
 * balancer never sees the worker as "bound by someone else".
 * --idle: sleep IDLE_SLEEP_US after every chunk and only check the pages, never rewrite them (a
 * worker that holds memory but uses little CPU).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define WORDS (PAGE / 8)
#define CHUNK_PAGES 256      /* the stall clock ticks once per 1 MiB */
#define STALL_MS 1000.0      /* a gap with more waiting than this counts as a stall */
#define IDLE_SLEEP_US 10000  /* --idle: 1 MiB checked per 10 ms, a few % of one CPU */

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig) { (void)sig; stop_flag = 1; }

static double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}
static double now_s(void) { return clock_s(CLOCK_MONOTONIC); }
static double cpu_s(void) { return clock_s(CLOCK_THREAD_CPUTIME_ID); }

/* The pattern of page i at generation g: a xorshift64 stream seeded by both, so a page
 * swapped with another, or a stale copy of itself, fails the check. */
static uint64_t fill(uint64_t *p, uint64_t i, uint64_t g) {
    uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ull ^ (g + 1) * 0xC2B2AE3D27D4EB4Full, sum = 0;
    for (int w = 0; w < WORDS; w++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        p[w] = x;
        sum = (sum ^ x) * 0x100000001B3ull;
    }
    return sum;
}

static uint64_t checksum(const uint64_t *p) {
    uint64_t sum = 0;
    for (int w = 0; w < WORDS; w++) sum = (sum ^ p[w]) * 0x100000001B3ull;
    return sum;
}

#define MPOL_DEFAULT 0
#define MPOL_BIND 2

static int set_mempolicy_node(int node) {
    unsigned long mask = node >= 0 ? 1ul << node : 0;
    /* maxnode is one more than the bits passed: the kernel's get_nodes() decrements it */
    return (int)syscall(SYS_set_mempolicy, node >= 0 ? MPOL_BIND : MPOL_DEFAULT,
                        node >= 0 ? &mask : NULL, node >= 0 ? 8 * sizeof mask + 1 : 0);
}

static int parse_cpus(const char *s, cpu_set_t *set) {
    CPU_ZERO(set);
    if (strcmp(s, "all") == 0) {
        long n = sysconf(_SC_NPROCESSORS_CONF);
        for (long c = 0; c < n && c < CPU_SETSIZE; c++) CPU_SET(c, set);
        return 0;
    }
    while (*s) {
        char *end;
        long a = strtol(s, &end, 10), b = a;
        if (end == s) return -1;
        if (*end == '-') { s = end + 1; b = strtol(s, &end, 10); if (end == s) return -1; }
        for (long c = a; c <= b && c < CPU_SETSIZE; c++) CPU_SET(c, set);
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return -1;
    }
    return 0;
}

struct state {
    const char *report, *tag, *phase;
    long mib, pages;
    uintptr_t addr;
    uint64_t passes, pages_done, errors;
    long first_error_page;
    double t0, touch_s, max_gap_ms, max_wait_ms;
    uint64_t stalls;
};

static void write_report(const struct state *st) {
    if (!st->report) return;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", st->report);
    FILE *f = fopen(tmp, "w");
    if (!f) return;
    fprintf(f, "{\"pid\": %d, \"tag\": \"%s\", \"phase\": \"%s\", \"mib\": %ld, \"pages\": %ld, "
               "\"addr\": %lu, \"touch_s\": %.4f, \"t\": %.4f, \"passes\": %lu, "
               "\"pages_done\": %lu, \"errors\": %lu, \"first_error_page\": %ld, "
               "\"max_gap_ms\": %.2f, \"max_wait_ms\": %.2f, \"stalls\": %lu}\n",
            (int)getpid(), st->tag, st->phase, st->mib, st->pages, (unsigned long)st->addr,
            st->touch_s, now_s() - st->t0, (unsigned long)st->passes,
            (unsigned long)st->pages_done, (unsigned long)st->errors, st->first_error_page,
            st->max_gap_ms, st->max_wait_ms, (unsigned long)st->stalls);
    fclose(f);
    rename(tmp, st->report);
}

static void usage(void) {
    fprintf(stderr, "usage: hn-worker --mib N [--touch-cpus LIST] [--touch-node N] "
                    "[--run-cpus LIST|all] [--seconds S] [--report FILE] [--report-ms MS] "
                    "[--tag WORD] [--idle]\n");
    exit(2);
}

int main(int argc, char **argv) {
    struct state st = {.tag = "", .phase = "touching", .first_error_page = -1};
    const char *touch_cpus = NULL, *run_cpus = NULL;
    double seconds = 0, report_ms = 200;
    int idle = 0, touch_node = -1;
    for (int a = 1; a < argc; a++) {
        const char *k = argv[a], *v = a + 1 < argc ? argv[a + 1] : NULL;
        if (strcmp(k, "--idle") == 0) { idle = 1; continue; }
        if (!v) usage();
        if (strcmp(k, "--mib") == 0) st.mib = atol(v);
        else if (strcmp(k, "--touch-cpus") == 0) touch_cpus = v;
        else if (strcmp(k, "--run-cpus") == 0) run_cpus = v;
        else if (strcmp(k, "--touch-node") == 0) touch_node = atoi(v);
        else if (strcmp(k, "--seconds") == 0) seconds = atof(v);
        else if (strcmp(k, "--report") == 0) st.report = v;
        else if (strcmp(k, "--report-ms") == 0) report_ms = atof(v);
        else if (strcmp(k, "--tag") == 0) st.tag = v;
        else usage();
        a++;
    }
    if (st.mib <= 0) usage();
    cpu_set_t set;
    if (touch_cpus && (parse_cpus(touch_cpus, &set) || sched_setaffinity(0, sizeof set, &set))) {
        perror("hn-worker: --touch-cpus");
        return 2;
    }
    if (touch_node >= 0 && (touch_node >= 64 || set_mempolicy_node(touch_node))) {
        perror("hn-worker: --touch-node");
        return 2;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    st.t0 = now_s();
    st.pages = st.mib * (1024 * 1024 / PAGE);
    size_t len = (size_t)st.pages * PAGE;
    uint64_t *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) { perror("hn-worker: mmap"); return 2; }
    /* 4 KiB pages: huge pages would make numa_maps and migration counts coarse */
    madvise(mem, len, MADV_NOHUGEPAGE);
    uint64_t *sums = calloc(st.pages, sizeof *sums);
    uint32_t *gen = calloc(st.pages, sizeof *gen);
    if (!sums || !gen) { perror("hn-worker: calloc"); return 2; }
    st.addr = (uintptr_t)mem;
    for (long i = 0; i < st.pages; i++) sums[i] = fill(mem + i * WORDS, i, 0);
    st.touch_s = now_s() - st.t0;
    if (touch_node >= 0 && set_mempolicy_node(-1)) { perror("hn-worker: set_mempolicy"); return 2; }

    if (run_cpus && (parse_cpus(run_cpus, &set) || sched_setaffinity(0, sizeof set, &set))) {
        perror("hn-worker: --run-cpus");
        return 2;
    }
    st.phase = "running";
    write_report(&st);

    double last_report = now_s(), last_chunk = last_report, last_cpu = cpu_s();
    long i = 0;
    while (!stop_flag && !(seconds > 0 && now_s() - st.t0 >= seconds)) {
        uint64_t *p = mem + i * WORDS;
        if (checksum(p) != sums[i]) {
            if (st.first_error_page < 0) st.first_error_page = i;
            st.errors++;
        }
        if (!idle) sums[i] = fill(p, i, ++gen[i]);
        st.pages_done++;
        if (++i == st.pages) { i = 0; st.passes++; }
        if (i % CHUNK_PAGES == 0) {
            double t = now_s(), c = cpu_s(), gap = (t - last_chunk) * 1000.0;
            double wait = gap - (c - last_cpu) * 1000.0;
            if (gap > st.max_gap_ms) st.max_gap_ms = gap;
            if (wait > st.max_wait_ms) st.max_wait_ms = wait;
            if (wait > STALL_MS) st.stalls++;
            if ((t - last_report) * 1000.0 >= report_ms) { write_report(&st); last_report = t; }
            /* an idle worker's sleep is on purpose: the stall clock restarts after it */
            if (idle) { usleep(IDLE_SLEEP_US); t = now_s(); c = cpu_s(); }
            last_chunk = t;
            last_cpu = c;
        }
    }
    st.phase = "done";
    write_report(&st);
    return st.errors ? 3 : 0;
}
